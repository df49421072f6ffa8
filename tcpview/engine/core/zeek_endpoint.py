"""Zeek's TCP endpoint, compiled: its states, the history letters it adds, and the working
columns each connection keeps for both endpoints while the analyzer replays its segments
(``TCP_Endpoint.cc`` and the parts of ``TCPSessionAdapter.cc`` that move one endpoint). The
connection-level state machine and ``conn_state`` are :mod:`.zeek_analyzer`'s.
"""

from __future__ import annotations

from ...jit import helper, inlined
from .tcp import ACK, FIN, RST, SYN

# Zeek's endpoint states, in its order
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
# history mask bits (Zeek's HIST_*; the responder's are << 16)
H_SYN, H_FIN, H_RST, H_FIN_RST, H_DATA, H_ACK, H_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
TOO_LARGE_SEQ_DELTA = 1048576
M = 0xFFFFFFFF
HIST_ROOM = 32  # history bytes per connection in a first pass (longer ones are done again)

# the working columns of a connection (per-endpoint ones are pairs, indexed by tcpview's
# direction: 0 = what the client sends)
ZO = 0  # the direction that is Zeek's originator (-1: no packet yet)
SEEN = 1  # history letters already added (HIST_* bits)
PARTIAL_ = 2  # Zeek's is_partial
FPS = 3  # first_packet_seen: 1 originator, 2 responder
HLEN = 4
ST, PST = 5, 7  # state, previous state
START, LAST, SWR, ACKS, AWR = 9, 11, 13, 15, 17  # start/last seq, their wraps, ack seq and wraps
HSYN, HFIN, HRST = 19, 21, 23  # relative seq of the last SYN / FIN / RST (history repeats)
CT, TT, CW, TW, CG, TG = 25, 27, 29, 31, 33, 35  # retransmit / zero window / gap: count, next threshold
FINC, FINSEQ = 37, 39
REASM, TRIM, BS, BE = 41, 43, 45, 47  # the reassembler: delivered up to, trimmed to, undelivered span
NF = 49


@inlined
def seq_delta(a, b):
    """Zeek's seq_delta: a - b as a signed 32-bit number."""
    d = (a - b) & M
    return d - (1 << 32) if d >= (1 << 31) else d


@inlined
def add_letter(W, HB, k, code):
    n = W[k, HLEN]
    if n < HB.shape[1]:
        HB[k, n] = code
    W[k, HLEN] = n + 1


@inlined
def is_orig(W, k, e):
    return W[k, ZO] == e


@helper
def flip(W, HB, k):
    """Zeek's FlipRoles: the other side is the originator now."""
    W[k, ZO] = 1 - W[k, ZO]
    f = W[k, FPS]
    W[k, FPS] = (2 if f & 1 else 0) | (1 if f & 2 else 0)
    W[k, PARTIAL_] = 0
    add_letter(W, HB, k, 94)  # '^'


@inlined
def check_letter(W, HB, k, e, mask, code):
    """Zeek's TCP_Endpoint::CheckHistory: add the letter unless already seen; True if it was."""
    if (code == 65 or code == 68) and W[k, HLEN] == 1 and HB[k, 0] == 72:  # 'A'/'D' after just "H"
        flip(W, HB, k)
        HB[k, 0] = 94  # the history becomes "^h"
        HB[k, 1] = 104
        W[k, HLEN] = 2
        W[k, FPS] |= 1
    if not is_orig(W, k, e):
        mask <<= 16
        code += 32
    if W[k, SEEN] & mask:
        return True
    W[k, SEEN] |= mask
    add_letter(W, HB, k, code)
    return False


@inlined
def letter(W, HB, k, e, code):
    add_letter(W, HB, k, code if is_orig(W, k, e) else code + 32)


@inlined
def scaled_letter(W, HB, k, e, cnt, thr, code):
    """Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th... time."""
    W[k, cnt + e] += 1
    if W[k, cnt + e] == W[k, thr + e]:
        letter(W, HB, k, e, code)
        W[k, thr + e] *= 10


@inlined
def set_state(W, k, e, s):
    if W[k, ST + e] != s:
        W[k, PST + e] = W[k, ST + e]
        W[k, ST + e] = s


@inlined
def rel_seq(W, k, e, cur, last, wraps):
    """Zeek's get_relative_seq: (cur relative to e's start, underflow)."""
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = seq_delta(cur, W[k, START + e])
        return d, d < 0
    return (wraps << 32) + cur - W[k, START + e], False


@inlined
def clean(W, k, e):
    s = W[k, ST + e]
    return s == ESTABLISHED or (s == CLOSED and W[k, PST + e] == ESTABLISHED)


@helper
def gap(W, HB, k, e):
    if clean(W, k, e) and clean(W, k, 1 - e):
        scaled_letter(W, HB, k, e, CG, TG, 71)  # 'G'


@helper
def ack_received(W, HB, k, e, seq):
    """Endpoint e's reassembler hears the peer acknowledge up to relative seq."""
    if W[k, FINC + e] > 0 and seq >= W[k, FINSEQ + e]:
        seq = W[k, FINSEQ + e] - 1
    if seq <= W[k, TRIM + e]:
        return
    if seq > W[k, REASM + e] and not (seq <= 2 and W[k, PARTIAL_]):
        bs = W[k, BS + e]
        if bs >= 0 and bs < seq:  # a hole below undelivered data, which then goes up
            gap(W, HB, k, e)
            if W[k, BE + e] > W[k, REASM + e]:
                W[k, REASM + e] = W[k, BE + e]
            W[k, BS + e] = -1
        if seq > W[k, REASM + e]:
            gap(W, HB, k, e)
            W[k, REASM + e] = seq
    bs = W[k, BS + e]
    if bs >= 0 and W[k, BE + e] <= seq:
        W[k, BS + e] = -1
    elif bs >= 0 and bs <= W[k, REASM + e]:
        W[k, REASM + e] = max(W[k, REASM + e], W[k, BE + e])
        W[k, BS + e] = -1
    W[k, TRIM + e] = seq


@inlined
def data_sent(W, k, e, s, ln):
    """Endpoint e's reassembler gets bytes s..s+ln (relative)."""
    t = s + ln
    if t <= W[k, TRIM + e]:
        return
    if s <= W[k, REASM + e]:
        if t > W[k, REASM + e]:
            W[k, REASM + e] = t
        bs = W[k, BS + e]
        if bs >= 0 and bs <= W[k, REASM + e]:
            if W[k, BE + e] > W[k, REASM + e]:
                W[k, REASM + e] = W[k, BE + e]
            W[k, BS + e] = -1
    elif W[k, BS + e] < 0:
        W[k, BS + e] = s
        W[k, BE + e] = t
    else:
        W[k, BS + e] = min(W[k, BS + e], s)
        W[k, BE + e] = max(W[k, BE + e], t)


@inlined
def init_endpoint(W, k, e, flags, first, last):
    st = W[k, ST + e]
    if st == INACTIVE:
        if flags & SYN:
            W[k, ACKS + e] = first
            W[k, START + e] = first
        else:
            W[k, ACKS + e] = (first - 1) & M
            W[k, START + e] = (first - 1) & M
            last = first
        W[k, LAST + e] = last
    elif st == SYN_SENT or st == SYN_ACK_SENT or st == ESTABLISHED or st == PARTIAL:
        if flags & SYN and (first != W[k, START + e] or st == ESTABLISHED or st == PARTIAL):
            W[k, START + e] = first
            W[k, ACKS + e] = first
            W[k, LAST + e] = last
    elif st == RESET:
        if flags & SYN and W[k, PST + e] == INACTIVE:
            W[k, START + e] = first
            W[k, ACKS + e] = first
            W[k, LAST + e] = last


@inlined
def history(W, HB, k, e, flags, rel, ln):
    """Zeek's update_history."""
    bits = (1 if flags & SYN else 0) + (1 if flags & FIN else 0) + (1 if flags & RST else 0)
    if bits > 1:
        if flags & FIN and flags & RST:
            check_letter(W, HB, k, e, H_FIN_RST, 73)  # 'I'
        else:
            check_letter(W, HB, k, e, H_MULTI, 81)  # 'Q'
    elif bits == 1:
        if flags & SYN:
            code = 72 if flags & ACK else 83  # 'H' / 'S'
            if check_letter(W, HB, k, e, H_SYN, code) and rel != W[k, HSYN + e]:
                letter(W, HB, k, e, code)
            W[k, HSYN + e] = rel
        if flags & FIN:
            if check_letter(W, HB, k, e, H_FIN, 70) and rel + ln != W[k, HFIN + e]:
                letter(W, HB, k, e, 70)
            W[k, HFIN + e] = rel + ln
        if flags & RST:
            if check_letter(W, HB, k, e, H_RST, 82) and rel != W[k, HRST + e]:
                letter(W, HB, k, e, 82)
            W[k, HRST + e] = rel
    else:
        if ln:
            check_letter(W, HB, k, e, H_DATA, 68)
        elif flags & ACK:
            check_letter(W, HB, k, e, H_ACK, 65)


@inlined
def update_last_seq(W, HB, k, e, last, flags, ln):
    d = seq_delta(last, W[k, LAST + e])
    if flags & (SYN | RST) and (d > TOO_LARGE_SEQ_DELTA or d < -TOO_LARGE_SEQ_DELTA):
        pass
    elif flags & FIN and W[k, LAST + e] == ((W[k, START + e] + 1) & M):
        if last < W[k, LAST + e]:
            W[k, SWR + e] += 1
        W[k, LAST + e] = last
    elif W[k, ST + e] == RESET:
        pass
    elif d > 0:
        if last < W[k, LAST + e]:
            W[k, SWR + e] += 1
        W[k, LAST + e] = last
    elif ln > 0:
        scaled_letter(W, HB, k, e, CT, TT, 84)  # 'T'
