"""Zeek's view of a connection: its ``conn_state`` and ``history``, as ``conn.log`` has them.

The definition is Zeek's TCP analyzer (``src/packet_analysis/protocol/tcp/
TCPSessionAdapter.cc``, ``src/analyzer/protocol/tcp/TCP_Endpoint.cc`` and its reassembler)
and ``conn_state()`` of ``base/protocols/conn/main.zeek``: each endpoint's state (inactive,
SYN sent, SYN-ACK sent, partial, established, closed, reset) moved packet by packet as Zeek
moves it, and the history letters added as Zeek adds them:

- ``a d i q`` at most once per direction; ``s h f r`` again only when the sequence number
  differs from the last packet of that kind; ``t w g`` at the 1st, 10th, 100th... time
  (upper case: the originator; lower case: the responder);
- ``^`` when Zeek flips the roles: a connection first seen mid-stream or by its SYN-ACK from a
  likely server port (Zeek's list of ports its analyzers register), a SYN-ACK answered by an
  ACK or data (``H`` becomes ``^h``), a SYN answering a SYN-ACK.

Zeek's originator is the sender of the first packet (but for those flips), which is usually
tcpview's client; the history is written from Zeek's side. Not reproduced: ``c`` (bad
checksums: the store keeps no payload, and captures of a host's own traffic carry offloaded
checksums anyway, which Zeek users skip with ``-C``) and ``x``. A content gap (``g``) is
counted as Zeek's reassembler counts it, keeping one span of undelivered data per direction
rather than its list of blocks: several holes acknowledged by one ACK count once.

Nothing is stored: :mod:`tcpview.engine.timeline.zeek_history` replays the stored segments of a range of
connections (a SYN flood's million one-packet connections in pieces) when a summary, the
table or a filter asks.
"""

from __future__ import annotations

import numpy as np

from ...jit import helper, kernel
from .columns import LONG_LEN, seg_dir, seg_flags
from .tcp import ACK, FIN, RST, SYN
from .zeek_endpoint import (
    ACKS,
    AWR,
    BS,
    CLOSED,
    CW,
    ESTABLISHED,
    FINC,
    FINSEQ,
    FPS,
    HLEN,
    INACTIVE,
    LAST,
    NF,
    PARTIAL,
    PARTIAL_,
    PST,
    REASM,
    RESET,
    ST,
    START,
    SWR,
    SYN_ACK_SENT,
    SYN_SENT,
    TG,
    TOO_LARGE_SEQ_DELTA,
    TRIM,
    TT,
    TW,
    ZO,
    M,
    ack_received,
    data_sent,
    flip,
    history,
    init_endpoint,
    rel_seq,
    scaled_letter,
    seq_delta,
    set_state,
    update_last_seq,
)

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH = range(13)
CONN_STATE_HELP = {
    "S0": "connection attempt seen, no reply",
    "S1": "established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, originator closed, no reply from the responder",
    "S3": "established, responder closed, no reply from the originator",
    "RSTO": "established, the originator aborted (RST)",
    "RSTR": "the responder sent a RST",
    "RSTOS0": "the originator sent a SYN then a RST, no SYN-ACK seen",
    "RSTRH": "the responder sent a SYN-ACK then a RST, no SYN seen",
    "SH": "the originator sent a SYN then a FIN, no SYN-ACK seen",
    "SHR": "the responder sent a SYN-ACK then a FIN, no SYN seen",
    "OTH": "no SYN seen, mid-stream traffic",
}

# Ports Zeek's base analyzers register (its likely_server_ports), for its role flip.
LIKELY_SERVER_PORTS = (
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587, 614, 631, 636,
    989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222, 5223, 5269, 5432, 6379, 6666,
    6667, 6668, 6669, 8000, 8080, 8888, 20000)
SERVER_PORTS = np.zeros(65536, dtype=np.uint8)
SERVER_PORTS[list(LIKELY_SERVER_PORTS)] = 1



@helper
def _state_machine(W, HB, k, e, is_orig, flags, base, ack, ln):
    p = 1 - e
    st = W[k, ST + e]
    if st == INACTIVE:
        if flags & SYN:
            if is_orig:
                set_state(W, k, e, SYN_ACK_SENT if flags & ACK else SYN_SENT)
            else:
                if not flags & ACK and W[k, ST + p] == SYN_ACK_SENT and base == W[k, START + e]:
                    W[k, PARTIAL_] = 0
                    flip(W, HB, k)  # a SYN answering a SYN-ACK: the roles were the other way
                    set_state(W, k, p, ESTABLISHED)
                    W[k, FPS] |= 1
                if W[k, ST + p] == SYN_SENT:
                    set_state(W, k, p, ESTABLISHED)
                set_state(W, k, e, ESTABLISHED)
        if flags & FIN:
            set_state(W, k, e, CLOSED)
        if flags & RST:
            set_state(W, k, e, RESET)
        if W[k, ST + e] == INACTIVE:
            if not is_orig and ln == 0 and W[k, ST + W[k, ZO]] == SYN_SENT:
                pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
            elif flags & ACK and W[k, ST + p] == ESTABLISHED:
                set_state(W, k, e, ESTABLISHED)
                W[k, PARTIAL_] = 0
                W[k, FPS] |= 1 if is_orig else 2
            else:
                set_state(W, k, e, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if flags & FIN:
            set_state(W, k, e, CLOSED)
        if flags & RST:
            set_state(W, k, e, RESET)
    elif st == ESTABLISHED or st == PARTIAL:
        if flags & SYN and st == PARTIAL and W[k, ST + p] == INACTIVE and not flags & ACK:
            set_state(W, k, e, SYN_SENT)
        if flags & FIN and not flags & RST:
            set_state(W, k, e, CLOSED)
            if W[k, ST + p] == RESET and W[k, PST + p] == CLOSED:
                set_state(W, k, p, CLOSED)  # a FIN then a RST: a normal close after all
        if flags & RST:
            set_state(W, k, e, RESET)
    elif st == CLOSED:
        if flags & RST and W[k, ST + p] != CLOSED:
            set_state(W, k, e, RESET)


@helper
def _packet(W, HB, SP, k, d, flags, base, ack, win, ln, sport, dport):
    """Zeek's TCPSessionAdapter::Process for one packet of direction d."""
    if W[k, ZO] < 0:  # the connection's first packet (WantConnection)
        W[k, ZO] = d
        if not flags & SYN or flags & ACK:
            if SP[sport]:
                if (SP[dport] and not flags & SYN and sport < dport) or not SP[dport]:
                    flip(W, HB, k)
    e = d
    p = 1 - d
    is_orig = W[k, ZO] == e
    # SetPartialStatus
    if is_orig:
        if not W[k, FPS] & 1:
            W[k, PARTIAL_] = 1 if (not flags & SYN or flags & ACK) else 0
    elif not W[k, FPS] & 2 and not W[k, PARTIAL_]:
        W[k, PARTIAL_] = 0 if flags & SYN else 1
    seg_len = ln + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    if flags & RST:
        seg_len -= ln
    past = (base + seg_len) & M
    init_endpoint(W, k, e, flags, base, past)
    rel, under = rel_seq(W, k, e, base, W[k, LAST + e], W[k, SWR + e])
    history(W, HB, k, e, flags, rel, ln)
    if win == 0 and not flags & RST and W[k, ST + p] != CLOSED and W[k, ST + e] != RESET:
        scaled_letter(W, HB, k, e, CW, TW, 87)  # 'W'
    if flags & FIN:
        W[k, FINC + e] += 1
        W[k, FINSEQ + e] = rel + seg_len
    rel_ack = 0
    if flags & ACK:
        if W[k, ST + p] == INACTIVE:
            rel_ack = 1
            W[k, START + p] = (ack - 1) & M
            W[k, ACKS + p] = (ack - 1) & M
            W[k, LAST + p] = (ack - 1) & M
        else:
            rel_ack, aunder = rel_seq(W, k, p, ack, W[k, ACKS + p], W[k, AWR + p])
            if aunder:
                rel_ack = 0
            elif not flags & RST:
                da = seq_delta(ack, W[k, ACKS + p])
                if ack == 0 and da > TOO_LARGE_SEQ_DELTA:
                    pass
                elif da > 0:
                    if ack < W[k, ACKS + p]:
                        W[k, AWR + p] += 1
                    W[k, ACKS + p] = ack
    update_last_seq(W, HB, k, e, past, flags, ln)
    _state_machine(W, HB, k, e, is_orig, flags, base, ack, ln)
    if flags & ACK:
        ack_received(W, HB, k, p, rel_ack)
    if ln > 0 and not flags & RST and not under:
        data_sent(W, k, e, rel + 1 if flags & SYN else rel, ln)
    W[k, FPS] |= 1 if is_orig else 2


@helper
def _size_zero(W, k, e):
    """Whether Zeek's TCP_Endpoint::Size() of endpoint e is 0."""
    p = 1 - e
    start = W[k, START + e]
    ack_full = (W[k, AWR + e] << 32) + W[k, ACKS + e]
    if (W[k, PST + e] == SYN_SENT and W[k, ST + e] == RESET and W[k, ST + p] == INACTIVE
            and not (ack_full == start or ack_full == start + 1)):
        return True
    last_full = (W[k, SWR + e] << 32) + W[k, LAST + e]
    size = (last_full if last_full > ack_full else ack_full) - start
    if size != 0:
        size -= 1
    if W[k, FINC + e] > 0 and size != 0:
        size -= 1
    return size == 0


@helper
def _rstos0(HB, k, n):
    """Whether the history is ``^?S[^HAFGIQ]*R.*``."""
    i = 0
    if n > 0 and HB[k, 0] == 94:
        i = 1
    if i >= n or HB[k, i] != 83:
        return False
    for j in range(i + 1, n):
        c = HB[k, j]
        if c == 82:
            return True
        if c == 72 or c == 65 or c == 70 or c == 71 or c == 73 or c == 81:
            return False
    return False


@helper
def _conn_state(W, HB, k):
    """conn_state() of Zeek's base/protocols/conn/main.zeek."""
    o = W[k, ZO]
    if o < 0:
        return OTH
    r = 1 - o
    os = W[k, ST + o]
    rs = W[k, ST + r]
    o_inactive = os == INACTIVE or os == PARTIAL
    r_inactive = rs == INACTIVE or rs == PARTIAL
    if rs == RESET:
        if os == SYN_SENT or os == SYN_ACK_SENT or (os == RESET and _size_zero(W, k, o) and _size_zero(W, k, r)):
            return REJ
        return RSTRH if o_inactive else RSTR
    if os == RESET:
        if r_inactive:
            return RSTOS0 if _rstos0(HB, k, W[k, HLEN]) else OTH
        return RSTO
    if rs == CLOSED and os == CLOSED:
        return SF
    if os == CLOSED:
        return SH if r_inactive else S2
    if rs == CLOSED:
        return SHR if o_inactive else S3
    if os == SYN_SENT and rs == INACTIVE:
        return S0
    if os == ESTABLISHED and rs == ESTABLISHED:
        return S1
    return OTH


@helper
def _start(W, HB, m, bk, bW, bHB):
    """Fresh working state for connections 0..m-1, but those carried over from before the
    horizon (base entry i goes to connection bk[i], -1: not here)."""
    for k in range(m):
        for f in range(NF):
            W[k, f] = 0
        W[k, ZO] = -1
        for e in range(2):
            W[k, TT + e] = 1
            W[k, TW + e] = 1
            W[k, TG + e] = 1
            W[k, REASM + e] = 1
            W[k, TRIM + e] = 1
            W[k, BS + e] = -1
    for i in range(len(bk)):
        k = bk[i]
        if k >= 0:
            for f in range(NF):
                W[k, f] = bW[i, f]
            for c in range(min(bHB.shape[1], HB.shape[1])):
                HB[k, c] = bHB[i, c]


@helper
def _feed(S, row, k, li, long_rows, long_lens, ports, SP, W, HB):
    """Segment ``row`` to connection k (``ports`` its row of ports); returns where the next
    look into the long-segment table starts."""
    s = S[row]
    fl = np.int64(s.fl)
    ln = np.int64(s.len)
    if ln == LONG_LEN:
        while li < len(long_rows) and long_rows[li] < row:
            li += 1
        if li < len(long_rows) and long_rows[li] == row:
            ln = long_lens[li]
    d = seg_dir(fl)
    _packet(W, HB, SP, k, d, seg_flags(fl), np.int64(s.seq), np.int64(s.ack), np.int64(s.win), ln,
            ports[k, d], ports[k, 1 - d])
    return li


@helper
def _finish(W, HB, out):
    most = 0
    for k in range(len(out)):
        out[k] = _conn_state(W, HB, k)
        if W[k, HLEN] > most:
            most = W[k, HLEN]
    return most


@kernel
def scan(S, kmap, lo, start, stop, long_rows, long_lens, ports, SP, W, HB, out, bk, bW, bHB):
    """Replay segments start..stop-1 for connections lo..lo+len(out)-1 (or, when ``kmap`` is
    not empty, connection c as number kmap[c] when that is not -1); out gets each one's
    conn_state. Returns the longest history (HB holds the first HB.shape[1] letters)."""
    m = len(out)
    _start(W, HB, m, bk, bW, bHB)
    li = 0
    mapped = len(kmap) > 0
    for row in range(start, stop):
        c = np.int64(S[row].conn)
        k = kmap[c] if mapped else c - lo
        if 0 <= k < m:
            li = _feed(S, row, k, li, long_rows, long_lens, ports, SP, W, HB)
    return _finish(W, HB, out)


@kernel
def scan_rows(S, rows, long_rows, long_lens, ports, SP, W, HB, out, bk, bW, bHB):
    """Replay one connection's segments ``rows`` (out and W have one row)."""
    _start(W, HB, 1, bk, bW, bHB)
    li = 0
    for i in range(len(rows)):
        li = _feed(S, rows[i], 0, li, long_rows, long_lens, ports, SP, W, HB)
    return _finish(W, HB, out)
