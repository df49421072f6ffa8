"""The compiled hot loop: decode every frame of a batch and run both endpoints' state machines.

This is the passive TCP state machine of DESIGN.md ("Passive state inference"), as an
observer between the hosts sees it (RFC 9293 names):

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

Relative sequence numbers keep Wireshark's bases; analysis bits follow Wireshark's
definitions (retransmission, duplicate ACK, zero window, keep-alive, zero-window probe, ACK
to a keep-alive).

:func:`track` is the one entry point for frames; it works through a batch until it ends or a
table is full, and says which (``cnt[STATUS]``), so the caller grows that table and calls
again from where it stopped. :func:`expire` lets capture time pass (timers fire).
Connections are found by their 4-tuple in an open-addressing hash table of row numbers.
"""

from __future__ import annotations

import numpy as np

from ..jit import helper, kernel
from .columns import (
    F_ACKED_PEER_SYN,
    F_BASE_HIST,
    F_BASE_SET,
    F_HAVE_FIN,
    F_HAVE_LACK,
    F_HAVE_LWIN,
    F_HAVE_MSS,
    F_HAVE_NXT,
    F_HAVE_SYN,
    F_IN_TABLE,
    F_KA,
    F_PARTIAL,
    F_REFUSED,
    F_RESET,
    F_SACK_PERM,
    F_SYN_ACKED,
    F_SYN_OPTS,
    FIRST_TS,
    LAST_TS,
    LONG_LEN,
    N_ADDR6,
    N_ANOM,
    N_BASE_HIST,
    N_CONN,
    N_LONG,
    N_SEG,
    N_SEG_BACK,
    N_TIMERS,
    N_TRANS,
    N_TRANS_BACK,
    N_TRANS_TS,
    NEED_NOTHING,
    NEXT_ID,
    PACKETS,
    SEG_ANA_SHIFT,
    SEG_CLOCK,
    SEG_DIR_SHIFT,
    SEG_WSHIFT_SHIFT,
    STATUS,
    TCP_PACKETS,
    TR_NEW_SHIFT,
    TR_OLD_SHIFT,
    TR_WHY_SHIFT,
    TRANS_CLOCK,
)
from .decode import (
    O_ACK,
    O_DPORT,
    O_DST_HI,
    O_DST_LO,
    O_FAM,
    O_FLAGS,
    O_LINKTYPE,
    O_PLEN,
    O_SEQ,
    O_SPORT,
    O_SRC_HI,
    O_SRC_LO,
    O_THL,
    O_TOFF,
    O_WIN,
    OUT_SIZE,
    UNSUPPORTED_LINK,
    decode_frame,
    syn_options,
)
from .model import (
    A_DUPACK,
    A_KAACK,
    A_KEEPALIVE,
    A_RETRANS,
    A_WINPROBE,
    A_ZEROWIN,
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
    WHY_FW2_EXPIRED,
    WHY_GOT_FIN,
    WHY_HANDSHAKE_ACK,
    WHY_MIDSTREAM,
    WHY_REFUSED,
    WHY_REUSED,
    WHY_RST,
    WHY_SIMCLOSE,
    WHY_SIMOPEN,
    WHY_SYN,
    WHY_SYNACK,
    WHY_TW_EXPIRED,
    XMAS,
    M,
)

ROOM = 8  # transitions (and timers) one segment can add at most: a reuse, a handshake, a close


# -- small pieces ---------------------------------------------------------------------------------
@helper
def _ge(a: int, b: int) -> bool:
    """a >= b in 32-bit sequence space."""
    return ((a - b) & M) < HALF


@helper
def _has(fl: int, bit: int, side: int) -> bool:
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


# -- the connection table ---------------------------------------------------------------------------
_H47 = 0x7FFFFFFFFFFF  # hashes stay below 2**47: no product or sum below overflows 64 bits


@helper
def _ep_hash(hi: int, lo: int, port: int) -> int:
    h = (((lo & 0xFFFFFFFF) * 0x5BD1E995) & _H47) + ((((lo >> 32) & 0xFFFFFFFF) * 0x1B873593) & _H47)
    h += ((((hi & 0xFFFFFFFF) * 0x27D4EB2F) & _H47) + ((((hi >> 32) & 0xFFFFFFFF) * 0x165667B1) & _H47)
          + port * 0x3C6EF372)
    return h & _H47


@helper
def _slot(nslots: int, fam: int, a_hi: int, a_lo: int, a_port: int, b_hi: int, b_lo: int, b_port: int) -> int:
    """The first slot to look at: the same for both directions (the endpoints' hashes add up)."""
    h = (_ep_hash(a_hi, a_lo, a_port) + _ep_hash(b_hi, b_lo, b_port) + fam) & _H47
    h ^= h >> 23
    h = ((h & 0x7FFFFFFF) * 0x5BD1E995 + ((h >> 31) & 0xFFFF) * 0x1B873593) & _H47
    h ^= h >> 19
    return h & (nslots - 1)


@helper
def _is(C, A6: np.ndarray, c: int, fam: int, c_hi: int, c_lo: int, cp: int, s_hi: int, s_lo: int, sp: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether connection c has this client and server."""
    r = C[c]
    if r.fam != fam or r.port[0] != cp or r.port[1] != sp:
        return False
    if fam == 4:
        return r.caddr == c_lo and r.saddr == s_lo
    a = r.caddr
    return A6[a, 0] == c_hi and A6[a, 1] == c_lo and A6[a, 2] == s_hi and A6[a, 3] == s_lo


@helper
def find(H: np.ndarray, C, A6: np.ndarray, fam: int, s_hi: int, s_lo: int, sp: int, d_hi: int, d_lo: int,  # type: ignore[no-untyped-def]
         dp: int) -> tuple:
    """``(slot, row, dir)`` of the newest connection with this 4-tuple; row -1 when none (then
    ``slot`` is where to put it). ``dir`` is 0 when the sender is the client."""
    mask = len(H) - 1
    i = _slot(len(H), fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    while True:
        v = np.int64(H[i])
        if v == 0:
            return i, np.int64(-1), np.int64(0)
        c = v - 1
        if _is(C, A6, c, fam, s_hi, s_lo, sp, d_hi, d_lo, dp):
            return i, c, np.int64(0)
        if _is(C, A6, c, fam, d_hi, d_lo, dp, s_hi, s_lo, sp):
            return i, c, np.int64(1)
        i = (i + 1) & mask


@kernel
def rebuild_hash(H: np.ndarray, C, A6: np.ndarray, n: int) -> None:  # type: ignore[no-untyped-def]
    """Fill an empty hash table with the connections that own their 4-tuple."""
    for c in range(n):
        r = C[c]
        if r.fl & F_IN_TABLE:
            if r.fam == 4:
                ch, cl, sh, sl = 0, np.int64(r.caddr), 0, np.int64(r.saddr)
            else:
                a = r.caddr
                ch, cl, sh, sl = A6[a, 0], A6[a, 1], A6[a, 2], A6[a, 3]
            mask = len(H) - 1
            i = _slot(len(H), np.int64(r.fam), ch, cl, np.int64(r.port[0]), sh, sl, np.int64(r.port[1]))
            while H[i] != 0:
                i = (i + 1) & mask
            H[i] = c + 1


# -- timers (a binary heap) ----------------------------------------------------------------------------
@helper
def _before(Q, i: int, j: int) -> bool:  # type: ignore[no-untyped-def]
    a = Q[i]
    b = Q[j]
    if a.deadline != b.deadline:
        return a.deadline < b.deadline
    if a.conn != b.conn:
        return a.conn < b.conn
    if a.side != b.side:
        return a.side < b.side
    return a.state < b.state


@helper
def _swap(Q, i: int, j: int) -> None:  # type: ignore[no-untyped-def]
    a = Q[i]
    b = Q[j]
    a.deadline, b.deadline = b.deadline, a.deadline
    a.conn, b.conn = b.conn, a.conn
    a.side, b.side = b.side, a.side
    a.state, b.state = b.state, a.state
    a.gen, b.gen = b.gen, a.gen


@helper
def _push(Q, cnt: np.ndarray, deadline: float, c: int, side: int, state: int, gen: int) -> None:  # type: ignore[no-untyped-def]
    i = cnt[N_TIMERS]
    cnt[N_TIMERS] = i + 1
    q = Q[i]
    q.deadline = deadline
    q.conn = c
    q.side = side
    q.state = state
    q.gen = gen
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(Q, i, parent):
            break
        _swap(Q, i, parent)
        i = parent


@helper
def _pop(Q, cnt: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    n = cnt[N_TIMERS] - 1
    cnt[N_TIMERS] = n
    if n == 0:
        return
    _swap(Q, 0, n)
    i = 0
    while True:
        lft = 2 * i + 1
        if lft >= n:
            break
        best = lft
        if lft + 1 < n and _before(Q, lft + 1, lft):
            best = lft + 1
        if not _before(Q, best, i):
            break
        _swap(Q, i, best)
        i = best


# -- the rare things, kept as (row, value) pairs --------------------------------------------------------
@helper
def _note(table: np.ndarray, cnt: np.ndarray, counter: int, row: int, value: float) -> None:
    """Append (row, value) to one of the pair tables."""
    j = cnt[counter]
    cnt[counter] = j + 1
    table[j, 0] = row
    table[j, 1] = value


@helper
def _clamp(clk: np.ndarray, clock: int, ts: float, back: np.ndarray, cnt: np.ndarray, counter: int, row: int) -> float:
    """The time to store for ``row``: ``ts``, or the latest time seen when the capture's clock
    stepped back (then the real time goes into ``back``)."""
    key = ts
    if ts < clk[clock]:
        key = clk[clock]
        _note(back, cnt, counter, row, ts)
    clk[clock] = key
    return key


# -- state changes -------------------------------------------------------------------------------------
@helper
def add_transition(C, T, TB: np.ndarray, cnt: np.ndarray, c: int, side: int, new: int, why: int) -> int:  # type: ignore[no-untyped-def]
    """Record that side ``side`` of connection c is now in ``new``; returns the row (-1: no change).

    Its time is that of the segment about to be stored (the row it names); a timer's caller
    records its deadline.
    """
    r = C[c]
    old = np.int64(r.state[side])
    if old == new:
        return -1
    r.state[side] = new
    r.gen[side] += 1
    k = cnt[N_TRANS]
    cnt[N_TRANS] = k + 1
    t = T[k]
    t.seg = cnt[N_SEG]
    t.conn = c
    t.code = side | (old << TR_OLD_SHIFT) | (new << TR_NEW_SHIFT) | (why << TR_WHY_SHIFT)
    return k


@kernel
def expire(C, T, Q, TB: np.ndarray, TT: np.ndarray, cnt: np.ndarray, clk: np.ndarray, now: float) -> bool:  # type: ignore[no-untyped-def]
    """Let capture time pass to ``now``: fire every timer due by then, stamped with its deadline.

    False when a table filled first (``cnt[STATUS]`` says which; grow it and call again).
    """
    while cnt[N_TIMERS] > 0 and Q[0].deadline <= now:
        if cnt[N_TRANS] + 1 > len(T):
            cnt[STATUS] = N_TRANS
            return False
        if cnt[N_TRANS_TS] + 1 > len(TT):
            cnt[STATUS] = N_TRANS_TS
            return False
        if cnt[N_TRANS_BACK] + 1 > len(TB):
            cnt[STATUS] = N_TRANS_BACK
            return False
        q = Q[0]
        deadline = q.deadline
        c = np.int64(q.conn)
        side = np.int64(q.side)
        state = q.state
        gen = q.gen
        _pop(Q, cnt)
        r = C[c]
        if r.state[side] == state and r.gen[side] == gen:
            why = WHY_TW_EXPIRED if state == TIME_WAIT else WHY_FW2_EXPIRED
            k = add_transition(C, T, TB, cnt, c, side, CLOSED, why)
            # the log stays in time order even where the capture's clock stepped back
            _note(TT, cnt, N_TRANS_TS, k, _clamp(clk, TRANS_CLOCK, deadline, TB, cnt, N_TRANS_BACK, k))
    return True


@helper
def _last_of_side(T, k: int, n: int, c: int, side: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether transition k is the last one of (c, side) among rows k .. n-1."""
    for j in range(k + 1, n):
        if T[j].conn == c and np.int64(T[j].code) & 1 == side:
            return False
    return True


# -- the state machine --------------------------------------------------------------------------------
@helper
def _established(C, T, TB, cnt, c: int, why: int) -> None:  # type: ignore[no-untyped-def]
    for x in range(2):
        r = C[c]
        st = r.state[x]
        if (st == SYN_SENT or st == SYN_RECEIVED) and _has(r.fl, F_SYN_ACKED, x) and _has(r.fl, F_ACKED_PEER_SYN, x):
            add_transition(C, T, TB, cnt, c, x, ESTABLISHED, why)


@helper
def _peer_fin_acked(C, T, TB, cnt, c: int, p: int) -> None:  # type: ignore[no-untyped-def]
    st = C[c].state[p]
    if st == FIN_WAIT_1:
        add_transition(C, T, TB, cnt, c, p, FIN_WAIT_2, WHY_FIN_ACKED)
    elif st == CLOSING:
        add_transition(C, T, TB, cnt, c, p, TIME_WAIT, WHY_FIN_ACKED)
    elif st == LAST_ACK:
        add_transition(C, T, TB, cnt, c, p, CLOSED, WHY_FIN_ACKED)


@helper
def _apply(C, T, TB, cnt, c: int, s: int, seq: int, ack: int, flags: int, plen: int) -> int:  # type: ignore[no-untyped-def]
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
            add_transition(C, T, TB, cnt, c, p, CLOSED, WHY_REFUSED)
            add_transition(C, T, TB, cnt, c, s, CLOSED, WHY_REFUSED)
            return 0
        # in-window check against what the sender has sent so far
        if _has(r.fl, F_HAVE_NXT, s) and _has(r.fl, F_BASE_SET, s):
            lw = np.int64(r.lwin[p]) if _has(r.fl, F_HAVE_LWIN, p) else np.int64(0)
            w = max(lw << np.int64(r.shift[p]), 65535)
            dist = (seq - np.int64(r.nxt[s])) & M
            if dist > w and (M + 1 - dist) > w:
                return RST_OUT_OF_WINDOW
        r.fl |= F_RESET
        add_transition(C, T, TB, cnt, c, s, CLOSED, WHY_RST)
        add_transition(C, T, TB, cnt, c, p, CLOSED, WHY_RST)
        return 0

    if flags & SYN:
        if flags & ACK:
            # SYN+ACK
            if _has(r.fl, F_HAVE_SYN, p) and ack != ((np.int64(r.syn[p]) + 1) & M):
                return BAD_HANDSHAKE_ACK
            if _has(r.fl, F_HAVE_SYN, s) and seq == r.syn[s] and _has(r.fl, F_ACKED_PEER_SYN, s):
                return 0  # retransmitted SYN+ACK
            r.syn[s] = seq
            r.fl |= (F_HAVE_SYN << s) | (F_SYN_ACKED << p) | (F_ACKED_PEER_SYN << s)
            if not _has(r.fl, F_HAVE_SYN, p):
                r.syn[p] = (ack - 1) & M  # the client's SYN was not captured
                r.fl |= (F_HAVE_SYN << p) | F_PARTIAL
            if S == CLOSED or S == LISTEN:
                add_transition(C, T, TB, cnt, c, s, SYN_RECEIVED, WHY_SYNACK)
            if C[c].state[p] == CLOSED:
                add_transition(C, T, TB, cnt, c, p, SYN_SENT, WHY_SYN)
            _established(C, T, TB, cnt, c, WHY_HANDSHAKE_ACK)
            return 0
        # SYN without ACK
        if S == SYN_SENT or (_has(r.fl, F_HAVE_SYN, s) and seq == r.syn[s]):
            return 0  # retransmitted SYN
        r.syn[s] = seq
        r.fl |= F_HAVE_SYN << s
        if S == CLOSED and R == CLOSED:
            add_transition(C, T, TB, cnt, c, s, SYN_SENT, WHY_SYN)
            add_transition(C, T, TB, cnt, c, p, LISTEN, WHY_SYN)
        elif R == SYN_SENT:
            add_transition(C, T, TB, cnt, c, p, SYN_RECEIVED, WHY_SIMOPEN)
            add_transition(C, T, TB, cnt, c, s, SYN_RECEIVED, WHY_SIMOPEN)
        return 0

    # the ACK of the peer's SYN completes the handshake for whoever is ready
    if (flags & ACK and _has(r.fl, F_HAVE_SYN, p) and not _has(r.fl, F_SYN_ACKED, p)
            and (R == SYN_RECEIVED or R == SYN_SENT)):
        isn1 = (np.int64(r.syn[p]) + 1) & M
        hi = np.int64(r.nxt[p]) if _has(r.fl, F_HAVE_NXT, p) else isn1
        if _ge(ack, isn1) and _ge(hi, ack):
            r.fl |= (F_SYN_ACKED << p) | (F_ACKED_PEER_SYN << s)
            _established(C, T, TB, cnt, c, WHY_HANDSHAKE_ACK)
        elif not flags & FIN:
            return BAD_HANDSHAKE_ACK

    acks_peer_fin = (flags & ACK) != 0 and _has(r.fl, F_HAVE_FIN, p) and _ge(ack, (np.int64(r.fin[p]) + 1) & M)
    S = r.state[s]
    R = r.state[p]
    if flags & FIN:
        fseq = (seq + plen) & M
        if _has(r.fl, F_HAVE_FIN, s) and fseq == r.fin[s]:
            # retransmitted FIN; it may still ack the peer's FIN
            if acks_peer_fin:
                _peer_fin_acked(C, T, TB, cnt, c, p)
            return 0
        r.fin[s] = fseq
        r.fl |= F_HAVE_FIN << s
        if S == ESTABLISHED or S == SYN_RECEIVED:
            add_transition(C, T, TB, cnt, c, s, FIN_WAIT_1, WHY_FIN)
            if R == ESTABLISHED or R == SYN_RECEIVED or R == SYN_SENT:
                add_transition(C, T, TB, cnt, c, p, CLOSE_WAIT, WHY_GOT_FIN)
            elif R == FIN_WAIT_1:
                add_transition(C, T, TB, cnt, c, p, CLOSING, WHY_SIMCLOSE)
                add_transition(C, T, TB, cnt, c, s, CLOSING, WHY_SIMCLOSE)
        elif S == CLOSE_WAIT:
            if acks_peer_fin or R == FIN_WAIT_2:
                add_transition(C, T, TB, cnt, c, s, LAST_ACK, WHY_FIN)
                add_transition(C, T, TB, cnt, c, p, TIME_WAIT, WHY_GOT_FIN)
            else:
                # our FIN left before the peer's FIN arrived: the FINs crossed
                add_transition(C, T, TB, cnt, c, s, CLOSING, WHY_SIMCLOSE)
                add_transition(C, T, TB, cnt, c, p, CLOSING, WHY_SIMCLOSE)
        return 0
    if acks_peer_fin:
        _peer_fin_acked(C, T, TB, cnt, c, p)
    return 0


@helper
def _syn_starts_new(C, c: int, dr: int, seq: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether a SYN (no ACK) on a known 4-tuple begins a new connection (tcp.stream).

    The same ISN again is a retransmission. A different ISN starts a new connection when the
    old one is over (both ends CLOSED or TIME_WAIT, as Linux reuses a 4-tuple in TIME_WAIT),
    or when the sender's earlier SYN went unanswered.
    """
    r = C[c]
    if _has(r.fl, F_HAVE_SYN, dr) and seq == r.syn[dr]:
        return False
    s0 = r.state[0]
    s1 = r.state[1]
    if (s0 == CLOSED or s0 == TIME_WAIT) and (s1 == CLOSED or s1 == TIME_WAIT):
        return True
    return r.state[dr] == SYN_SENT


@helper
def _new_conn(C, H: np.ndarray, A6: np.ndarray, cnt: np.ndarray, slot: int, old: int, fam: int, s_hi: int,  # type: ignore[no-untyped-def]
              s_lo: int, sp: int, d_hi: int, d_lo: int, dp: int, flags: int, ts: float) -> tuple:
    if flags & SYN:
        sender_is_client = not flags & ACK
    elif (sp < 1024) != (dp < 1024):
        # picked up mid-stream: the client is the side with the ephemeral port
        sender_is_client = dp < 1024
    else:
        sender_is_client = sp >= dp
    c = cnt[N_CONN]
    cnt[N_CONN] = c + 1
    r = C[c]
    r.cid = cnt[NEXT_ID]
    cnt[NEXT_ID] += 1
    r.fam = fam
    if sender_is_client:
        ch, cl, cp, sh, sl, spt = s_hi, s_lo, sp, d_hi, d_lo, dp
        dr = 0
    else:
        ch, cl, cp, sh, sl, spt = d_hi, d_lo, dp, s_hi, s_lo, sp
        dr = 1
    if fam == 4:
        r.caddr = cl
        r.saddr = sl
    else:
        a = cnt[N_ADDR6]
        cnt[N_ADDR6] = a + 1
        A6[a, 0] = ch
        A6[a, 1] = cl
        A6[a, 2] = sh
        A6[a, 3] = sl
        r.caddr = a
        r.saddr = a
    r.port[0] = cp
    r.port[1] = spt
    r.fl = F_IN_TABLE
    r.first_ts = ts
    r.anom = 0
    for x in range(2):
        r.state[x] = CLOSED
        r.seqbase[x] = 0
        r.nxt[x] = 0
        r.fin[x] = 0
        r.syn[x] = 0
        r.lack[x] = 0
        r.lwin[x] = 0
        r.wscale[x] = -1
        r.shift[x] = 0
        r.gen[x] = 0
        r.mss[x] = 0
        r.ws[x] = -1
    if old >= 0:
        C[old].fl &= ~np.uint32(F_IN_TABLE)
    H[slot] = c + 1
    return c, dr


@helper
def _segment(b: np.ndarray, d: np.ndarray, C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, H, cnt: np.ndarray,  # type: ignore[no-untyped-def]
             clk: np.ndarray, params: np.ndarray, frame: int, ts: float, fend: int) -> None:
    """Apply one decoded TCP segment (its fields in ``d``) and store it."""
    cnt[TCP_PACKETS] += 1
    fam = d[O_FAM]
    s_hi = d[O_SRC_HI]
    s_lo = d[O_SRC_LO]
    d_hi = d[O_DST_HI]
    d_lo = d[O_DST_LO]
    sp = d[O_SPORT]
    dp = d[O_DPORT]
    seq = d[O_SEQ]
    ack = d[O_ACK]
    flags = d[O_FLAGS]
    win = d[O_WIN]
    plen = d[O_PLEN]
    slot, c, dr = find(H, C, A6, fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    found = c >= 0
    if not found:
        c, dr = _new_conn(C, H, A6, cnt, slot, -1, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, flags, ts)
    elif (flags & (SYN | ACK)) == SYN and _syn_starts_new(C, c, dr, seq):
        # a new connection takes over the 4-tuple: the old one's sockets are gone on both
        # hosts (Linux kills a TIME_WAIT socket that a new SYN reuses), as ss shows
        for side in range(2):
            add_transition(C, T, TB, cnt, c, side, CLOSED, WHY_REUSED)
        c, dr = _new_conn(C, H, A6, cnt, slot, c, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, flags, ts)
    rcv = 1 - dr
    r = C[c]
    bits = 0
    row = cnt[N_SEG]  # the row this segment gets
    first_tr = cnt[N_TRANS]

    # relative sequence bases, as Wireshark sets them
    if not _has(r.fl, F_BASE_SET, dr) or (flags & SYN and not _has(r.fl, F_HAVE_SYN, dr)):
        # a SYN sets the base even after earlier non-SYN segments (e.g. an injected RST)
        nb = seq if flags & SYN else (seq - 1) & M
        if _has(r.fl, F_BASE_SET, dr) and nb != r.seqbase[dr]:
            h = cnt[N_BASE_HIST]
            cnt[N_BASE_HIST] = h + 1
            BH[h, 0] = c
            BH[h, 1] = row
            BH[h, 2] = dr
            BH[h, 3] = r.seqbase[dr]
            r.fl |= F_BASE_HIST
        r.seqbase[dr] = nb
        r.fl |= F_BASE_SET << dr
    if flags & ACK and not _has(r.fl, F_BASE_SET, rcv):
        r.seqbase[rcv] = (ack - 1) & M
        r.fl |= F_BASE_SET << rcv

    if flags & SYN:
        thl = d[O_THL]
        o_start = d[O_TOFF] + 20
        o_end = min(d[O_TOFF] + thl, fend)
        if thl > 20:
            shift, mss, ows, sack = syn_options(b, o_start, o_end)
        else:
            shift, mss, ows, sack = np.int64(-2), np.int64(-1), np.int64(-1), False
        r.wscale[dr] = shift
        r.ws[dr] = ows
        keep = ~np.uint32((F_SACK_PERM | F_SYN_OPTS | F_HAVE_MSS) << dr)
        r.fl &= keep
        if mss >= 0:
            r.mss[dr] = mss
            r.fl |= F_HAVE_MSS << dr
        if sack:
            r.fl |= F_SACK_PERM << dr
        if thl > 20 and o_end > o_start:
            r.fl |= F_SYN_OPTS << dr
        # Wireshark: a direction scales by its SYN's shift unless the peer's SYN had none
        for x in range(2):
            wsx = r.wscale[x]
            r.shift[x] = wsx if wsx >= 0 and r.wscale[1 - x] != -2 else 0

    anomaly = flag_anomaly(flags)

    # sequence analysis (retransmission etc.)
    fl = r.fl
    have_nxt = _has(fl, F_HAVE_NXT, dr)
    nxt = np.int64(r.nxt[dr])
    seg_len = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    end = (seq + seg_len) & M
    plain = (flags & 0x17) == ACK  # data or a pure ACK
    if plain and plen == 1 and have_nxt and seq == nxt and _has(fl, F_HAVE_LWIN, rcv) and r.lwin[rcv] == 0:
        bits |= A_WINPROBE  # a zero-window probe's byte is not consumed: nxt stays
    elif not have_nxt or (_ge(end, nxt) and end != nxt and not flags & RST):
        # a RST must not move nxt: the in-window check measures it against nxt
        r.nxt[dr] = end
        r.fl |= F_HAVE_NXT << dr
    elif plain:
        if plen > 1 or (plen == 1 and end != nxt):
            bits |= A_RETRANS
        elif seq == ((nxt - 1) & M):
            bits |= A_KEEPALIVE
            r.fl |= F_KA << dr
    elif seg_len > 0 and not flags & RST:
        bits |= A_RETRANS
    if win == 0 and not flags & (RST | SYN | FIN):
        bits |= A_ZEROWIN
    same_ack = _has(r.fl, F_HAVE_LACK, dr) and ack == r.lack[dr]
    if _has(r.fl, F_KA, rcv):
        r.fl &= ~np.uint32(F_KA << rcv)
        if plain and plen == 0 and bits == 0 and same_ack:
            bits |= A_KAACK
    if plain and plen == 0 and bits == 0 and same_ack and _has(r.fl, F_HAVE_LWIN, dr) and win == r.lwin[dr]:
        bits |= A_DUPACK
    r.lack[dr] = ack
    r.lwin[dr] = win
    r.fl |= (F_HAVE_LACK | F_HAVE_LWIN) << dr

    if anomaly:
        r.anom |= anomaly
    elif not found and not flags & SYN:
        if flags & RST:
            r.fl |= F_PARTIAL | F_RESET
        else:
            # picked up mid-stream
            r.fl |= F_PARTIAL
            add_transition(C, T, TB, cnt, c, 0, ESTABLISHED, WHY_MIDSTREAM)
            add_transition(C, T, TB, cnt, c, 1, ESTABLISHED, WHY_MIDSTREAM)
            _apply(C, T, TB, cnt, c, dr, seq, ack, flags, plen)
    else:
        anomaly = _apply(C, T, TB, cnt, c, dr, seq, ack, flags, plen)
        if anomaly:
            r.anom |= anomaly

    # a side that this segment left in TIME_WAIT or FIN_WAIT_2 gets its timer
    for k in range(first_tr, cnt[N_TRANS]):
        tk = T[k]
        if tk.conn == c:
            side = np.int64(tk.code) & 1
            st = C[c].state[side]
            if (np.int64(tk.code) >> TR_NEW_SHIFT) & 15 == st and _last_of_side(T, k, cnt[N_TRANS], c, side):
                if st == TIME_WAIT:
                    _push(Q, cnt, ts + params[0], c, side, TIME_WAIT, np.int64(C[c].gen[side]))
                elif st == FIN_WAIT_2:
                    _push(Q, cnt, ts + params[1], c, side, FIN_WAIT_2, np.int64(C[c].gen[side]))

    # the segment's row: times never go back in the table (the real one is kept aside)
    key = _clamp(clk, SEG_CLOCK, ts, SB, cnt, N_SEG_BACK, row)
    cnt[N_SEG] = row + 1
    s = S[row]
    s.ts = key
    s.frame = frame
    s.conn = c
    s.seq = seq
    s.ack = ack
    if plen >= LONG_LEN:
        s.len = LONG_LEN
        _note(LG, cnt, N_LONG, row, plen)
    else:
        s.len = plen
    s.win = win
    wshift = 0 if flags & SYN else np.int64(r.shift[dr])
    s.fl = flags | (dr << SEG_DIR_SHIFT) | (wshift << SEG_WSHIFT_SHIFT) | (bits << SEG_ANA_SHIFT)
    if anomaly:
        _note(AN, cnt, N_ANOM, row, anomaly)
    # the transitions it caused happened at its time, kept in order against the transitions
    # before them only (a stray future time stamp elsewhere in the capture does not move them)
    for k in range(first_tr, cnt[N_TRANS]):
        tkey = ts if ts >= clk[TRANS_CLOCK] else clk[TRANS_CLOCK]
        clk[TRANS_CLOCK] = tkey
        if tkey != key:
            _note(TT, cnt, N_TRANS_TS, k, tkey)


@helper
def _count_unsupported(skip: np.ndarray, linktype: int) -> None:
    """Count a frame of a link type the decoder does not read: ``skip[16:]`` holds
    (link type + 1, count) pairs."""
    for i in range(16, len(skip) - 1, 2):
        if skip[i] == 0 or skip[i] == linktype + 1:
            skip[i] = linktype + 1
            skip[i + 1] += 1
            return
    skip[UNSUPPORTED_LINK] += 1  # more kinds than there are pairs: counted without its number


@helper
def _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, H: np.ndarray, cnt: np.ndarray) -> int:  # type: ignore[no-untyped-def]
    """Which table lacks room for one more frame (its counter's index), or NEED_NOTHING."""
    if cnt[N_CONN] + 2 > len(C):
        return N_CONN
    if (cnt[N_CONN] + 2) * 2 > len(H):
        return -2
    if cnt[N_SEG] + 1 > len(S):
        return N_SEG
    if cnt[N_TRANS] + ROOM > len(T):
        return N_TRANS
    if cnt[N_TIMERS] + ROOM > len(Q):
        return N_TIMERS
    if cnt[N_ADDR6] + 2 > len(A6):
        return N_ADDR6
    if cnt[N_SEG_BACK] + 1 > len(SB):
        return N_SEG_BACK
    if cnt[N_TRANS_BACK] + 1 > len(TB):
        return N_TRANS_BACK
    if cnt[N_BASE_HIST] + 2 > len(BH):
        return N_BASE_HIST
    if cnt[N_LONG] + 1 > len(LG):
        return N_LONG
    if cnt[N_ANOM] + 1 > len(AN):
        return N_ANOM
    if cnt[N_TRANS_TS] + ROOM > len(TT):
        return N_TRANS_TS
    return NEED_NOTHING


@kernel
def track(b: np.ndarray, F, i: int, C, S, T, Q, A6: np.ndarray, SB: np.ndarray, TB: np.ndarray,  # type: ignore[no-untyped-def]
          BH: np.ndarray, LG: np.ndarray, AN: np.ndarray, TT: np.ndarray, H: np.ndarray, cnt: np.ndarray,
          clk: np.ndarray, skip: np.ndarray, params: np.ndarray) -> int:
    """Decode and track frames ``i ..`` of a batch; returns where it stopped.

    ``F`` describes the frames (:data:`tcpview.engine.tracker.FRAME`): frame k is
    ``b[F[k].off : F[k].off + F[k].caplen]``. It stops early when a table is full
    (``cnt[STATUS]`` says which; -2 the hash table); frames before the returned index are
    done. ``params`` is ``(2*MSL, FIN timeout)`` in seconds.
    """
    d = np.zeros(OUT_SIZE, dtype=np.int64)
    n = len(F)
    while i < n:
        need = _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, H, cnt)
        if need != NEED_NOTHING:
            cnt[STATUS] = need
            return i
        f = F[i]
        o = np.int64(f.off)
        cl = np.int64(f.caplen)
        ts = f.ts
        code = decode_frame(b, o, cl, np.int64(f.origlen), np.int64(f.linktype), d)
        if code == 0 and cnt[N_TIMERS] > 0 and Q[0].deadline <= ts:
            if not expire(C, T, Q, TB, TT, cnt, clk, ts):
                return i
            need = _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, H, cnt)
            if need != NEED_NOTHING:
                cnt[STATUS] = need
                return i
        cnt[PACKETS] += 1
        if cnt[PACKETS] == 1:
            clk[FIRST_TS] = ts
            clk[LAST_TS] = ts
        elif ts > clk[LAST_TS]:
            clk[LAST_TS] = ts
        if code == UNSUPPORTED_LINK:
            _count_unsupported(skip, d[O_LINKTYPE])
        elif code != 0:
            skip[code] += 1
        else:
            _segment(b, d, C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, H, cnt, clk, params, np.int64(f.frame), ts, o + cl)
        i += 1
    cnt[STATUS] = NEED_NOTHING
    return i
