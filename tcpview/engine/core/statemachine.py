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

from ...jit import Int, helper
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
from .transitions import TransitionLog, add_transition


# -- small pieces ---------------------------------------------------------------------------------
@helper
def seq_ge(a: Int, b: Int) -> bool:
    """a >= b in 32-bit sequence space."""
    return ((a - b) & M) < HALF


@helper
def has_bit(fl: Int, bit: Int, side: Int) -> bool:
    """Whether connection flag word ``fl`` has per-side bit ``bit`` set for ``side``."""
    return (fl & (bit << side)) != 0


@helper
def flag_anomaly(flags: Int) -> Int:
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
def _established(log: TransitionLog, c: Int, why: Int) -> None:
    """Each side whose SYN was acked and that has acked its peer's SYN is ESTABLISHED."""
    for side in range(2):
        conn = log.conns[c]
        state = conn.state[side]
        if ((state == SYN_SENT or state == SYN_RECEIVED) and has_bit(conn.fl, F_SYN_ACKED, side)
                and has_bit(conn.fl, F_ACKED_PEER_SYN, side)):
            add_transition(log, c, side, ESTABLISHED, why)


@helper
def _peer_fin_acked(log: TransitionLog, c: Int, peer: Int) -> None:
    """The peer's FIN was acked: FIN_WAIT_1 -> FIN_WAIT_2, CLOSING -> TIME_WAIT, LAST_ACK -> CLOSED."""
    state = log.conns[c].state[peer]
    if state == FIN_WAIT_1:
        add_transition(log, c, peer, FIN_WAIT_2, WHY_FIN_ACKED)
    elif state == CLOSING:
        add_transition(log, c, peer, TIME_WAIT, WHY_FIN_ACKED)
    elif state == LAST_ACK:
        add_transition(log, c, peer, CLOSED, WHY_FIN_ACKED)


@helper
def apply_segment(log: TransitionLog, c: Int, sender: Int, seq: Int, ack: Int, flags: Int, plen: Int) -> Int:
    """Move connection c's states for a valid segment from side ``sender``; returns anomaly
    bits (0 when it fits the states)."""
    peer = 1 - sender  # it receives the segment
    conn = log.conns[c]
    sender_state = conn.state[sender]
    peer_state = conn.state[peer]
    if flags & RST:
        if sender_state == CLOSED and peer_state == CLOSED:
            conn.fl |= F_RESET
            return 0
        if peer_state == SYN_SENT and sender_state == LISTEN:
            # RST answering a SYN: refused (it must ack the SYN, or carry no ACK)
            if flags & ACK and ack != ((np.int64(conn.syn[peer]) + 1) & M):
                return RST_OUT_OF_WINDOW
            conn.fl |= F_REFUSED
            add_transition(log, c, peer, CLOSED, WHY_REFUSED)
            add_transition(log, c, sender, CLOSED, WHY_REFUSED)
            return 0
        # in-window check against what the sender has sent so far
        if has_bit(conn.fl, F_HAVE_NXT, sender) and has_bit(conn.fl, F_BASE_SET, sender):
            last_win = np.int64(conn.lwin[peer]) if has_bit(conn.fl, F_HAVE_LWIN, peer) else np.int64(0)
            window = max(last_win << np.int64(conn.shift[peer]), np.int64(65535))
            dist = (seq - np.int64(conn.nxt[sender])) & M
            if dist > window and (M + 1 - dist) > window:
                return RST_OUT_OF_WINDOW
        conn.fl |= F_RESET
        add_transition(log, c, sender, CLOSED, WHY_RST)
        add_transition(log, c, peer, CLOSED, WHY_RST)
        return 0

    if flags & SYN:
        if flags & ACK:
            # SYN+ACK
            if has_bit(conn.fl, F_HAVE_SYN, peer) and ack != ((np.int64(conn.syn[peer]) + 1) & M):
                return BAD_HANDSHAKE_ACK
            if (has_bit(conn.fl, F_HAVE_SYN, sender) and seq == conn.syn[sender]
                    and has_bit(conn.fl, F_ACKED_PEER_SYN, sender)):
                return 0  # retransmitted SYN+ACK
            conn.syn[sender] = seq
            conn.fl |= (F_HAVE_SYN << sender) | (F_SYN_ACKED << peer) | (F_ACKED_PEER_SYN << sender)
            if not has_bit(conn.fl, F_HAVE_SYN, peer):
                conn.syn[peer] = (ack - 1) & M  # the client's SYN was not captured
                conn.fl |= (F_HAVE_SYN << peer) | F_PARTIAL
            if sender_state == CLOSED or sender_state == LISTEN:
                add_transition(log, c, sender, SYN_RECEIVED, WHY_SYNACK)
            if conn.state[peer] == CLOSED:
                add_transition(log, c, peer, SYN_SENT, WHY_SYN)
            _established(log, c, WHY_HANDSHAKE_ACK)
            return 0
        # SYN without ACK
        if sender_state == SYN_SENT or (has_bit(conn.fl, F_HAVE_SYN, sender) and seq == conn.syn[sender]):
            return 0  # retransmitted SYN
        conn.syn[sender] = seq
        conn.fl |= F_HAVE_SYN << sender
        if sender_state == CLOSED and peer_state == CLOSED:
            add_transition(log, c, sender, SYN_SENT, WHY_SYN)
            add_transition(log, c, peer, LISTEN, WHY_SYN)
        elif peer_state == SYN_SENT:
            add_transition(log, c, peer, SYN_RECEIVED, WHY_SIMOPEN)
            add_transition(log, c, sender, SYN_RECEIVED, WHY_SIMOPEN)
        return 0

    # the ACK of the peer's SYN completes the handshake for whoever is ready
    if (flags & ACK and has_bit(conn.fl, F_HAVE_SYN, peer) and not has_bit(conn.fl, F_SYN_ACKED, peer)
            and (peer_state == SYN_RECEIVED or peer_state == SYN_SENT)):
        isn1 = (np.int64(conn.syn[peer]) + 1) & M
        highest = np.int64(conn.nxt[peer]) if has_bit(conn.fl, F_HAVE_NXT, peer) else isn1
        if seq_ge(ack, isn1) and seq_ge(highest, ack):
            conn.fl |= (F_SYN_ACKED << peer) | (F_ACKED_PEER_SYN << sender)
            _established(log, c, WHY_HANDSHAKE_ACK)
        elif not flags & FIN:
            return BAD_HANDSHAKE_ACK

    acks_peer_fin = ((flags & ACK) != 0 and has_bit(conn.fl, F_HAVE_FIN, peer)
                     and seq_ge(ack, (np.int64(conn.fin[peer]) + 1) & M))
    sender_state = conn.state[sender]
    peer_state = conn.state[peer]
    if flags & FIN:
        fin_seq = (seq + plen) & M
        if has_bit(conn.fl, F_HAVE_FIN, sender) and fin_seq == conn.fin[sender]:
            # retransmitted FIN; it may still ack the peer's FIN
            if acks_peer_fin:
                _peer_fin_acked(log, c, peer)
            return 0
        conn.fin[sender] = fin_seq
        conn.fl |= F_HAVE_FIN << sender
        if sender_state == ESTABLISHED or sender_state == SYN_RECEIVED:
            add_transition(log, c, sender, FIN_WAIT_1, WHY_FIN)
            if peer_state == ESTABLISHED or peer_state == SYN_RECEIVED or peer_state == SYN_SENT:
                add_transition(log, c, peer, CLOSE_WAIT, WHY_GOT_FIN)
            elif peer_state == FIN_WAIT_1:
                add_transition(log, c, peer, CLOSING, WHY_SIMCLOSE)
                add_transition(log, c, sender, CLOSING, WHY_SIMCLOSE)
        elif sender_state == CLOSE_WAIT:
            if acks_peer_fin or peer_state == FIN_WAIT_2:
                add_transition(log, c, sender, LAST_ACK, WHY_FIN)
                add_transition(log, c, peer, TIME_WAIT, WHY_GOT_FIN)
            else:
                # our FIN left before the peer's FIN arrived: the FINs crossed
                add_transition(log, c, sender, CLOSING, WHY_SIMCLOSE)
                add_transition(log, c, peer, CLOSING, WHY_SIMCLOSE)
        return 0
    if acks_peer_fin:
        _peer_fin_acked(log, c, peer)
    return 0


@helper
def syn_starts_new(conn, sender: Int, seq: Int) -> bool:
    """Whether a SYN (no ACK) from ``sender`` on a known 4-tuple (its connection row ``conn``)
    begins a new connection (tcp.stream).

    The same ISN again is a retransmission. A different ISN starts a new connection when the
    old one is over (both ends CLOSED or TIME_WAIT, as Linux reuses a 4-tuple in TIME_WAIT),
    or when the sender's earlier SYN went unanswered.
    """
    if has_bit(conn.fl, F_HAVE_SYN, sender) and seq == conn.syn[sender]:
        return False
    client = conn.state[0]
    server = conn.state[1]
    if (client == CLOSED or client == TIME_WAIT) and (server == CLOSED or server == TIME_WAIT):
        return True
    return conn.state[sender] == SYN_SENT
