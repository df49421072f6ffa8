"""Compiled passes the readers make over published rows: "the world as of t".

Each takes the tables and the range of rows to go through, so a reader can start from what it
computed for an earlier cursor and go on from there.
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, array_kernel, helper, inlined, kernel
from .columns import (
    F_PARTIAL,
    NOTE_ANOMALY,
    NOTE_PARTIAL,
    NOTE_REFUSED,
    NOTE_RESET,
    NOTE_SEEN,
    NOTE_SYNACK,
    seg_analysis,
    seg_dir,
    seg_flags,
    seg_wshift,
    trans_new,
    trans_old,
    trans_side,
    trans_why,
)
from .statemachine import flag_anomaly
from .tcp import A_RETRANS, A_REUSED, ACK, CLOSED, RST, SYN, WHY_REFUSED, WHY_REUSED


@inlined
def _pairs_before(pairs: np.ndarray, n: Int, row: Int) -> Int:
    """How many of the first n (row, value) pairs (sorted by row) are of rows before ``row``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if pairs[mid, 0] < row:
            lo = mid + 1
        else:
            hi = mid
    return lo


@helper
def _trans_key(trans, segs, trans_ts: np.ndarray, n_tt: Int, k: Int) -> float:
    """The (never decreasing) time of transition k: its own in ``trans_ts`` (a timer's deadline, or
    one the clock rule moved), else its segment's."""
    lo = _pairs_before(trans_ts, n_tt, k)
    if lo < n_tt and trans_ts[lo, 0] == k:
        return trans_ts[lo, 1]
    return segs[trans[k].seg].ts


@kernel
def trans_count_at(trans, segs, trans_ts: np.ndarray, n_tt: Int, n: Int, t: float) -> Int:
    """How many of the first n transitions happened at or before t."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if _trans_key(trans, segs, trans_ts, n_tt, mid) <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@array_kernel
def trans_times(trans, segs, trans_ts: np.ndarray, n_tt: Int, rows: np.ndarray) -> np.ndarray:
    """The times of transitions ``rows``."""
    out = np.empty(len(rows), dtype=np.float64)
    for j in range(len(rows)):
        out[j] = _trans_key(trans, segs, trans_ts, n_tt, rows[j])
    return out


@helper
def _segs_upto(segs, n: Int, t: float, before: bool) -> Int:
    """How many of the first n segments were captured at or before t (before t if ``before``):
    a binary search, their times never decrease."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        ts = segs[mid].ts
        if ts < t or (ts == t and not before):
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def seg_count_at(segs, n: Int, t: float) -> Int:
    """How many of the first n segments were captured at or before t."""
    return _segs_upto(segs, n, t, False)


@kernel
def seg_count_before(segs, n: Int, t: float) -> Int:
    """How many of the first n segments were captured before t."""
    return _segs_upto(segs, n, t, True)


@kernel
def state_counts(trans, k0: Int, k: Int, counts: np.ndarray) -> None:
    """Add transitions ``k0 .. k-1`` to endpoint counts per state."""
    for i in range(k0, k):
        code = np.int64(trans[i].code)
        counts[trans_old(code)] -= 1
        counts[trans_new(code)] += 1


@kernel
def states_after(trans, k0: Int, k: Int, states: np.ndarray) -> None:
    """Apply transitions ``k0 .. k-1`` to ``states`` (shape ``(n_conn, 2)``)."""
    for i in range(k0, k):
        t = trans[i]
        code = np.int64(t.code)
        states[t.conn, trans_side(code)] = trans_new(code)


@kernel
def conn_stats(segs, k0: Int, k: Int, packets: np.ndarray, nbytes: np.ndarray, last: np.ndarray) -> None:
    """Add segments ``k0 .. k-1`` to each connection's segment count, bytes and latest row."""
    for i in range(k0, k):
        s = segs[i]
        c = s.conn
        packets[c] += 1
        nbytes[c] += s.len
        last[c] = i


@array_kernel
def conn_rows(conn_of, cid: Int, k0: Int, k: Int) -> np.ndarray:
    """The rows among ``k0 .. k-1`` whose connection is ``cid``, in order."""
    n = 0
    for i in range(k0, k):
        if conn_of[i].conn == cid:
            n += 1
    out = np.empty(n, dtype=np.int64)
    j = 0
    for i in range(k0, k):
        if conn_of[i].conn == cid:
            out[j] = i
            j += 1
    return out


@kernel
def seg_states(trans, trows: np.ndarray, srows: np.ndarray, out: np.ndarray) -> None:
    """Both endpoints' states after each of a connection's segments ``srows``, from its
    transitions ``trows`` (both in order): a transition with ``seg <= row`` came before."""
    cs = 0
    ss = 0
    j = 0
    for i in range(len(srows)):
        r = srows[i]
        while j < len(trows) and trans[trows[j]].seg <= r:
            code = np.int64(trans[trows[j]].code)
            if trans_side(code):
                ss = trans_new(code)
            else:
                cs = trans_new(code)
            j += 1
        out[i, 0] = cs
        out[i, 1] = ss


@kernel
def seg_fields(segs, rows: np.ndarray, out: np.ndarray) -> None:
    """``(frame, seq, ack, len, raw window, flags, dir, window shift, analysis)`` of segment rows."""
    for j in range(len(rows)):
        s = segs[rows[j]]
        fl = np.int64(s.fl)
        out[j, 0] = s.frame
        out[j, 1] = s.seq
        out[j, 2] = s.ack
        out[j, 3] = s.len
        out[j, 4] = s.win
        out[j, 5] = seg_flags(fl)
        out[j, 6] = seg_dir(fl)
        out[j, 7] = seg_wshift(fl)
        out[j, 8] = seg_analysis(fl)


# -- what each connection's segments said up to a cursor: notes, analysis, the initial RTT --------------
# The loop keeps these in working fields (the connection's flag word, its analysis row) that say
# them as of the newest segment; the readers replay them from the rows for any cursor. Each
# rule below is the loop's own, read from the rows it leaves:
# - partial: its first segment has valid flags and no SYN, or its first valid SYN+ACK found the
#   SYN missing (that SYN+ACK set the flag-word bit, the only one read here: it is never cleared);
# - refused: a transition why "refused"; reset: a valid RST after which both ends are CLOSED
#   (the state machine's only other answers to a RST move nothing);
# - anomaly: a segment with anomaly bits; retransmissions and analysis bits: the segments';
# - the initial RTT as Wireshark's analysis sets it (seqanalysis.after): from the last SYN
#   without ACK to the next segment with ACK and no SYN; a SYN with a new ISN on the same stream
#   starts again; a connection's first SYN counts from its stored (never decreasing) time, as the
#   loop replays a first segment, the others from their time as captured.


@inlined
def _first_pair(pairs: np.ndarray, row: Int) -> Int:
    """The index of the first (row, value) pair at or after ``row`` (pairs sorted by row)."""
    return _pairs_before(pairs, len(pairs), row)


@inlined
def _progress_trans(trans, j: Int, slot: Int, states: np.ndarray, progress, reuse: np.ndarray) -> None:
    """Apply transition j to the connection in ``slot`` of ``states`` and ``progress``."""
    t = trans[j]
    code = np.int64(t.code)
    states[slot, trans_side(code)] = trans_new(code)
    why = trans_why(code)
    if why == WHY_REFUSED:
        progress[slot].notes |= NOTE_REFUSED
    elif why == WHY_REUSED:  # a SYN made a new connection of its 4-tuple at segment t.seg
        reuse[0] = slot
        reuse[1] = t.seg


@inlined
def _progress_seg(segs, i: Int, slot: Int, real: float, anomaly: Int, cfl, states: np.ndarray, progress,
                  reuse: np.ndarray) -> None:
    """Replay segment i (the connection in ``slot``; ``real`` its time as captured, ``anomaly``
    its anomaly bits)."""
    s = segs[i]
    fl = np.int64(s.fl)
    flags = seg_flags(fl)
    bits = seg_analysis(fl)
    p = progress[slot]
    first = (p.notes & NOTE_SEEN) == 0
    p.notes |= NOTE_SEEN
    if bits & A_RETRANS:
        p.retr += 1
    p.ana |= bits
    if anomaly:
        p.notes |= NOTE_ANOMALY
        p.anom |= anomaly
    if flag_anomaly(flags) == 0:
        if first and not flags & SYN:
            p.notes |= NOTE_PARTIAL
        if flags & SYN and flags & ACK and not p.notes & NOTE_SYNACK:
            p.notes |= NOTE_SYNACK
            if np.int64(cfl[s.conn]) & F_PARTIAL:
                p.notes |= NOTE_PARTIAL
        if flags & RST and states[slot, 0] == CLOSED and states[slot, 1] == CLOSED:
            p.notes |= NOTE_RESET
    pure_syn = (flags & (SYN | ACK)) == SYN
    carried = False
    if first and pure_syn and reuse[1] == i and reuse[0] != slot and not bits & A_REUSED:
        # the state machine made a new connection but Wireshark's stream goes on (seqanalysis.carry)
        p.syn_ts = progress[reuse[0]].syn_ts
        p.irtt = progress[reuse[0]].irtt
        carried = True
    elif pure_syn and bits & A_REUSED:
        p.syn_ts = 0.0
        p.irtt = 0.0
    if pure_syn:
        p.syn_ts = s.ts if first and not carried else real
    elif (flags & (SYN | ACK)) == ACK and p.syn_ts != 0.0 and p.irtt == 0.0:
        p.irtt = real - p.syn_ts


@kernel
def conn_progress(segs, trans, cfl, back: np.ndarray, anom: np.ndarray, k0: Int, k: Int, j: Int, n_trans: Int,
                  states: np.ndarray, progress, reuse: np.ndarray) -> Int:
    """Replay segments ``k0 .. k-1`` into every connection's :data:`~.columns.PROGRESS` ``progress``.

    ``states`` (``(n_conn, 2)``) are both ends' states after the transitions before ``j``; the
    transitions up to segment k-1's go in as they come. ``cfl`` is the connections' flag words,
    ``back`` and ``anom`` the clock-step and anomaly (row, value) pairs, ``reuse`` the last
    transition that reused a 4-tuple (connection, segment; kept between calls). Returns the
    first transition not applied.
    """
    b = _first_pair(back, k0)
    a = _first_pair(anom, k0)
    for i in range(k0, k):
        while j < n_trans and trans[j].seg <= i:
            _progress_trans(trans, j, np.int64(trans[j].conn), states, progress, reuse)
            j += 1
        while b < len(back) and back[b, 0] < i:
            b += 1
        real = back[b, 1] if b < len(back) and back[b, 0] == i else segs[i].ts
        while a < len(anom) and anom[a, 0] < i:
            a += 1
        bad = anom[a, 1] if a < len(anom) and anom[a, 0] == i else 0
        _progress_seg(segs, i, np.int64(segs[i].conn), real, bad, cfl, states, progress, reuse)
    return j


@kernel
def one_conn_progress(segs, trans, cfl, back: np.ndarray, anom: np.ndarray, srows: np.ndarray, trows: np.ndarray,
                      states: np.ndarray, progress, reuse: np.ndarray) -> None:
    """:func:`conn_progress` for one connection: its segment rows ``srows`` and transition rows
    ``trows`` (both in order) into ``states[0]`` and ``progress[0]`` (a 4-tuple's reuse is not followed:
    a connection the state machine made anew on a stream Wireshark goes on with starts afresh;
    ``reuse`` is two int64 of room)."""
    reuse[0] = -1
    reuse[1] = -1
    j = 0
    b = 0
    a = 0
    for x in range(len(srows)):
        i = srows[x]
        while j < len(trows) and trans[trows[j]].seg <= i:
            _progress_trans(trans, trows[j], 0, states, progress, reuse)
            j += 1
        b = b + _first_pair(back[b:], i)
        real = back[b, 1] if b < len(back) and back[b, 0] == i else segs[i].ts
        a = a + _first_pair(anom[a:], i)
        bad = anom[a, 1] if a < len(anom) and anom[a, 0] == i else 0
        _progress_seg(segs, i, 0, real, bad, cfl, states, progress, reuse)
