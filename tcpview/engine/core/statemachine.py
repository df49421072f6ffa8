"""Both endpoints' state machines: what one segment does to the states (compiled helpers of
:func:`tcpview.engine.core.loop.track`).

This is the passive TCP state machine of the README ("How tcpview decides each endpoint's
state"), as an observer between the hosts sees it (RFC 9293 names):

- SYN: sender SYN_SENT, receiver LISTEN. SYN crossing SYN: both SYN_RECEIVED.
- SYN+ACK acking the SYN's ISN+1: sender SYN_RECEIVED. An endpoint becomes ESTABLISHED once
  its SYN was acked and it has acked the peer's SYN (so the ACK of the SYN+ACK makes both).
- FIN: sender FIN_WAIT_1 (or LAST_ACK from CLOSE_WAIT), receiver CLOSE_WAIT. The ACK of a FIN
  (seq+1): FIN_WAIT_1 -> FIN_WAIT_2, CLOSING -> TIME_WAIT, LAST_ACK -> CLOSED. A FIN received
  in FIN_WAIT_2, or a FIN that also acks ours in FIN_WAIT_1 -> TIME_WAIT. FINs that cross:
  both CLOSING.
- RST in window: both CLOSED; a RST answering a SYN marks the connection refused.
- TIME_WAIT ends after 2*MSL; an orphaned FIN_WAIT_2 after the FIN timeout; both on capture
  time, stamped with their deadline.
- Retransmitted SYN/FIN do not move states again. Invalid flag combinations and wrong
  handshake ACKs are anomalies and move nothing.
- First segment not a SYN: picked up mid-stream, both ESTABLISHED, ``partial``; the client is
  guessed from the ports.
- A SYN on a 4-tuple whose connection is over starts a new connection (Wireshark tcp.stream).
"""

from __future__ import annotations

import numpy as np

from ...jit import helper
from .columns import (
    F_ACKED_PEER_SYN,
    F_BASE_SET,
    F_HAVE_FIN,
    F_HAVE_LWIN,
    F_HAVE_NXT,
    F_HAVE_SYN,
    F_PARTIAL,
    F_REFUSED,
    F_RESET,
    F_SYN_ACKED,
)
from .tcp import (
    ACK,
    BAD_HANDSHAKE_ACK,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN,
    FIN_NO_ACK,
    FIN_WAIT_1,
    FIN_WAIT_2,
    HALF,
    LAST_ACK,
    LISTEN,
    NO_FLAGS,
    PSH,
    RST,
    RST_OUT_OF_WINDOW,
    SYN,
    SYN_FIN,
    SYN_RECEIVED,
    SYN_RST,
    SYN_SENT,
    TIME_WAIT,
    URG,
    WHY_FIN,
    WHY_FIN_ACKED,
    WHY_GOT_FIN,
    WHY_HANDSHAKE_ACK,
    WHY_REFUSED,
    WHY_RST,
    WHY_SIMCLOSE,
    WHY_SIMOPEN,
    WHY_SYN,
    WHY_SYNACK,
    XMAS,
    M,
)
from .transitions import add_transition


# -- small pieces ---------------------------------------------------------------------------------
@helper
def seq_ge(a: int, b: int) -> bool:
    """a >= b in 32-bit sequence space."""
    return ((a - b) & M) < HALF


@helper
def has_bit(fl: int, bit: int, side: int) -> bool:
    return (fl & (bit << side)) != 0


@helper
def flag_anomaly(flags: int) -> int:
    """Anomaly bits for an invalid flag combination (0 when the combination is valid)."""
    a = 0
    if flags & SYN and flags & FIN:
        a |= SYN_FIN
    if flags & SYN and flags & RST:
        a |= SYN_RST
    if flags & 0x3F == 0:
        a |= NO_FLAGS
    if flags & (FIN | PSH | URG) == (FIN | PSH | URG):
        a |= XMAS
    elif flags & FIN and not flags & ACK and not flags & SYN:
        a |= FIN_NO_ACK
    return a




# -- the state machine --------------------------------------------------------------------------------
@helper
def _established(C, T, cnt, c: int, why: int) -> None:  # type: ignore[no-untyped-def]
    for x in range(2):
        r = C[c]
        st = r.state[x]
        if (st == SYN_SENT or st == SYN_RECEIVED) and has_bit(r.fl, F_SYN_ACKED, x) and has_bit(r.fl, F_ACKED_PEER_SYN, x):
            add_transition(C, T, cnt, c, x, ESTABLISHED, why)


@helper
def _peer_fin_acked(C, T, cnt, c: int, p: int) -> None:  # type: ignore[no-untyped-def]
    st = C[c].state[p]
    if st == FIN_WAIT_1:
        add_transition(C, T, cnt, c, p, FIN_WAIT_2, WHY_FIN_ACKED)
    elif st == CLOSING:
        add_transition(C, T, cnt, c, p, TIME_WAIT, WHY_FIN_ACKED)
    elif st == LAST_ACK:
        add_transition(C, T, cnt, c, p, CLOSED, WHY_FIN_ACKED)


@helper
def apply_segment(C, T, cnt, c: int, s: int, seq: int, ack: int, flags: int, plen: int) -> int:  # type: ignore[no-untyped-def]
    """Move the states for a valid segment from side ``s``; returns anomaly bits."""
    p = 1 - s  # the peer, which receives it
    r = C[c]
    S = r.state[s]
    R = r.state[p]
    if flags & RST:
        if S == CLOSED and R == CLOSED:
            r.fl |= F_RESET
            return 0
        if R == SYN_SENT and S == LISTEN:
            # RST answering a SYN: refused (it must ack the SYN, or carry no ACK)
            if flags & ACK and ack != ((np.int64(r.syn[p]) + 1) & M):
                return RST_OUT_OF_WINDOW
            r.fl |= F_REFUSED
            add_transition(C, T, cnt, c, p, CLOSED, WHY_REFUSED)
            add_transition(C, T, cnt, c, s, CLOSED, WHY_REFUSED)
            return 0
        # in-window check against what the sender has sent so far
        if has_bit(r.fl, F_HAVE_NXT, s) and has_bit(r.fl, F_BASE_SET, s):
            lw = np.int64(r.lwin[p]) if has_bit(r.fl, F_HAVE_LWIN, p) else np.int64(0)
            w = max(lw << np.int64(r.shift[p]), 65535)
            dist = (seq - np.int64(r.nxt[s])) & M
            if dist > w and (M + 1 - dist) > w:
                return RST_OUT_OF_WINDOW
        r.fl |= F_RESET
        add_transition(C, T, cnt, c, s, CLOSED, WHY_RST)
        add_transition(C, T, cnt, c, p, CLOSED, WHY_RST)
        return 0

    if flags & SYN:
        if flags & ACK:
            # SYN+ACK
            if has_bit(r.fl, F_HAVE_SYN, p) and ack != ((np.int64(r.syn[p]) + 1) & M):
                return BAD_HANDSHAKE_ACK
            if has_bit(r.fl, F_HAVE_SYN, s) and seq == r.syn[s] and has_bit(r.fl, F_ACKED_PEER_SYN, s):
                return 0  # retransmitted SYN+ACK
            r.syn[s] = seq
            r.fl |= (F_HAVE_SYN << s) | (F_SYN_ACKED << p) | (F_ACKED_PEER_SYN << s)
            if not has_bit(r.fl, F_HAVE_SYN, p):
                r.syn[p] = (ack - 1) & M  # the client's SYN was not captured
                r.fl |= (F_HAVE_SYN << p) | F_PARTIAL
            if S == CLOSED or S == LISTEN:
                add_transition(C, T, cnt, c, s, SYN_RECEIVED, WHY_SYNACK)
            if C[c].state[p] == CLOSED:
                add_transition(C, T, cnt, c, p, SYN_SENT, WHY_SYN)
            _established(C, T, cnt, c, WHY_HANDSHAKE_ACK)
            return 0
        # SYN without ACK
        if S == SYN_SENT or (has_bit(r.fl, F_HAVE_SYN, s) and seq == r.syn[s]):
            return 0  # retransmitted SYN
        r.syn[s] = seq
        r.fl |= F_HAVE_SYN << s
        if S == CLOSED and R == CLOSED:
            add_transition(C, T, cnt, c, s, SYN_SENT, WHY_SYN)
            add_transition(C, T, cnt, c, p, LISTEN, WHY_SYN)
        elif R == SYN_SENT:
            add_transition(C, T, cnt, c, p, SYN_RECEIVED, WHY_SIMOPEN)
            add_transition(C, T, cnt, c, s, SYN_RECEIVED, WHY_SIMOPEN)
        return 0

    # the ACK of the peer's SYN completes the handshake for whoever is ready
    if (flags & ACK and has_bit(r.fl, F_HAVE_SYN, p) and not has_bit(r.fl, F_SYN_ACKED, p)
            and (R == SYN_RECEIVED or R == SYN_SENT)):
        isn1 = (np.int64(r.syn[p]) + 1) & M
        hi = np.int64(r.nxt[p]) if has_bit(r.fl, F_HAVE_NXT, p) else isn1
        if seq_ge(ack, isn1) and seq_ge(hi, ack):
            r.fl |= (F_SYN_ACKED << p) | (F_ACKED_PEER_SYN << s)
            _established(C, T, cnt, c, WHY_HANDSHAKE_ACK)
        elif not flags & FIN:
            return BAD_HANDSHAKE_ACK

    acks_peer_fin = (flags & ACK) != 0 and has_bit(r.fl, F_HAVE_FIN, p) and seq_ge(ack, (np.int64(r.fin[p]) + 1) & M)
    S = r.state[s]
    R = r.state[p]
    if flags & FIN:
        fseq = (seq + plen) & M
        if has_bit(r.fl, F_HAVE_FIN, s) and fseq == r.fin[s]:
            # retransmitted FIN; it may still ack the peer's FIN
            if acks_peer_fin:
                _peer_fin_acked(C, T, cnt, c, p)
            return 0
        r.fin[s] = fseq
        r.fl |= F_HAVE_FIN << s
        if S == ESTABLISHED or S == SYN_RECEIVED:
            add_transition(C, T, cnt, c, s, FIN_WAIT_1, WHY_FIN)
            if R == ESTABLISHED or R == SYN_RECEIVED or R == SYN_SENT:
                add_transition(C, T, cnt, c, p, CLOSE_WAIT, WHY_GOT_FIN)
            elif R == FIN_WAIT_1:
                add_transition(C, T, cnt, c, p, CLOSING, WHY_SIMCLOSE)
                add_transition(C, T, cnt, c, s, CLOSING, WHY_SIMCLOSE)
        elif S == CLOSE_WAIT:
            if acks_peer_fin or R == FIN_WAIT_2:
                add_transition(C, T, cnt, c, s, LAST_ACK, WHY_FIN)
                add_transition(C, T, cnt, c, p, TIME_WAIT, WHY_GOT_FIN)
            else:
                # our FIN left before the peer's FIN arrived: the FINs crossed
                add_transition(C, T, cnt, c, s, CLOSING, WHY_SIMCLOSE)
                add_transition(C, T, cnt, c, p, CLOSING, WHY_SIMCLOSE)
        return 0
    if acks_peer_fin:
        _peer_fin_acked(C, T, cnt, c, p)
    return 0


@helper
def syn_starts_new(C, c: int, dr: int, seq: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether a SYN (no ACK) on a known 4-tuple begins a new connection (tcp.stream).

    The same ISN again is a retransmission. A different ISN starts a new connection when the
    old one is over (both ends CLOSED or TIME_WAIT, as Linux reuses a 4-tuple in TIME_WAIT),
    or when the sender's earlier SYN went unanswered.
    """
    r = C[c]
    if has_bit(r.fl, F_HAVE_SYN, dr) and seq == r.syn[dr]:
        return False
    s0 = r.state[0]
    s1 = r.state[1]
    if (s0 == CLOSED or s0 == TIME_WAIT) and (s1 == CLOSED or s1 == TIME_WAIT):
        return True
    return r.state[dr] == SYN_SENT
