"""Compiled passes the readers make over published rows: "the world as of t".

Each takes the tables and the range of rows to go through, so a reader can start from what it
computed for an earlier cursor and go on from there.
"""

from __future__ import annotations

import numpy as np

from ...jit import array_kernel, helper, kernel
from .columns import SEG_ANA_SHIFT, SEG_DIR_SHIFT, TR_NEW_SHIFT, TR_OLD_SHIFT


@helper
def _trans_key(T, S, TT: np.ndarray, n_tt: int, k: int) -> float:  # type: ignore[no-untyped-def]
    """The (never decreasing) time of transition k: its own in ``TT`` (a timer's deadline, or
    one the clock rule moved), else its segment's."""
    lo, hi = 0, n_tt
    while lo < hi:
        mid = (lo + hi) >> 1
        if TT[mid, 0] < k:
            lo = mid + 1
        else:
            hi = mid
    if lo < n_tt and TT[lo, 0] == k:
        return TT[lo, 1]
    return S[T[k].seg].ts


@kernel
def trans_count_at(T, S, TT: np.ndarray, n_tt: int, n: int, t: float) -> int:  # type: ignore[no-untyped-def]
    """How many of the first n transitions happened at or before t."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if _trans_key(T, S, TT, n_tt, mid) <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@array_kernel
def trans_times(T, S, TT: np.ndarray, n_tt: int, rows: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The times of transitions ``rows``."""
    out = np.empty(len(rows), dtype=np.float64)
    for j in range(len(rows)):
        out[j] = _trans_key(T, S, TT, n_tt, rows[j])
    return out


@kernel
def seg_count_at(S, n: int, t: float) -> int:  # type: ignore[no-untyped-def]
    """How many of the first n segments were captured at or before t."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if S[mid].ts <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def seg_count_before(S, n: int, t: float) -> int:  # type: ignore[no-untyped-def]
    """How many of the first n segments were captured before t."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if S[mid].ts < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def state_counts(T, k0: int, k: int, counts: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Add transitions ``k0 .. k-1`` to endpoint counts per state."""
    for i in range(k0, k):
        code = np.int64(T[i].code)
        counts[(code >> TR_OLD_SHIFT) & 15] -= 1
        counts[(code >> TR_NEW_SHIFT) & 15] += 1


@array_kernel
def state_series(T, S, TT: np.ndarray, n_tt: int, n: int, state: int, times: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Endpoints in ``state`` at each of ``times`` (increasing), after the first n transitions."""
    out = np.zeros(len(times), dtype=np.int64)
    cur = 0
    i = 0
    for j in range(len(times)):
        while i < n and _trans_key(T, S, TT, n_tt, i) <= times[j]:
            code = np.int64(T[i].code)
            if (code >> TR_OLD_SHIFT) & 15 == state:
                cur -= 1
            if (code >> TR_NEW_SHIFT) & 15 == state:
                cur += 1
            i += 1
        out[j] = cur
    return out


@kernel
def states_after(T, k0: int, k: int, states: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Apply transitions ``k0 .. k-1`` to ``states`` (shape ``(n_conn, 2)``)."""
    for i in range(k0, k):
        t = T[i]
        code = np.int64(t.code)
        states[t.conn, code & 1] = (code >> TR_NEW_SHIFT) & 15


@kernel
def conn_stats(S, k0: int, k: int, packets: np.ndarray, nbytes: np.ndarray, last: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Add segments ``k0 .. k-1`` to each connection's segment count, bytes and latest row."""
    for i in range(k0, k):
        s = S[i]
        c = s.conn
        packets[c] += 1
        nbytes[c] += s.len
        last[c] = i


@array_kernel
def conn_rows(conn_of, cid: int, k0: int, k: int) -> np.ndarray:  # type: ignore[no-untyped-def]
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
def seg_states(T, trows: np.ndarray, srows: np.ndarray, out: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Both endpoints' states after each of a connection's segments ``srows``, from its
    transitions ``trows`` (both in order): a transition with ``seg <= row`` came before."""
    cs = 0
    ss = 0
    j = 0
    for i in range(len(srows)):
        r = srows[i]
        while j < len(trows) and T[trows[j]].seg <= r:
            code = np.int64(T[trows[j]].code)
            if code & 1:
                ss = (code >> TR_NEW_SHIFT) & 15
            else:
                cs = (code >> TR_NEW_SHIFT) & 15
            j += 1
        out[i, 0] = cs
        out[i, 1] = ss


@kernel
def seg_fields(S, rows: np.ndarray, out: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """``(frame, seq, ack, len, raw window, flags, dir, window shift, analysis)`` of segment rows."""
    for j in range(len(rows)):
        s = S[rows[j]]
        fl = np.int64(s.fl)
        out[j, 0] = s.frame
        out[j, 1] = s.seq
        out[j, 2] = s.ack
        out[j, 3] = s.len
        out[j, 4] = s.win
        out[j, 5] = fl & 0xFF
        out[j, 6] = (fl >> SEG_DIR_SHIFT) & 1
        out[j, 7] = (fl >> 9) & 15
        out[j, 8] = (fl >> SEG_ANA_SHIFT) & 0xFFFF
