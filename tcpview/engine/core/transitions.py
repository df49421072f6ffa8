"""The writer's side of the transition log and the timers: a state change is appended as a
transition; TIME_WAIT and FIN_WAIT_2 expiries wait in a binary heap and fire when capture
time passes them (:func:`expire`); the rare values (a clock that stepped back, long lengths)
are kept as (row, value) pairs."""

from __future__ import annotations

import numpy as np

from ...jit import helper, kernel
from .columns import (
    N_SEG,
    N_TIMERS,
    N_TRANS,
    N_TRANS_BACK,
    N_TRANS_TS,
    STATUS,
    TRANS_CLOCK,
    trans_code,
    trans_side,
)
from .tcp import CLOSED, TIME_WAIT, WHY_FW2_EXPIRED, WHY_TW_EXPIRED


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
def push_timer(Q, cnt: np.ndarray, deadline: float, c: int, side: int, state: int, gen: int) -> None:  # type: ignore[no-untyped-def]
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
def note_pair(table: np.ndarray, cnt: np.ndarray, counter: int, row: int, value: float) -> None:
    """Append (row, value) to one of the pair tables."""
    j = cnt[counter]
    cnt[counter] = j + 1
    table[j, 0] = row
    table[j, 1] = value


@helper
def clamp_time(clk: np.ndarray, clock: int, ts: float, back: np.ndarray, cnt: np.ndarray, counter: int, row: int) -> float:
    """The time to store for ``row``: ``ts``, or the latest time seen when the capture's clock
    stepped back (then the real time goes into ``back``)."""
    key = ts
    if ts < clk[clock]:
        key = clk[clock]
        note_pair(back, cnt, counter, row, ts)
    clk[clock] = key
    return key


# -- state changes -------------------------------------------------------------------------------------
@helper
def add_transition(C, T, cnt: np.ndarray, c: int, side: int, new: int, why: int) -> int:  # type: ignore[no-untyped-def]
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
    t.code = trans_code(side, old, new, why)
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
            k = add_transition(C, T, cnt, c, side, CLOSED, why)
            # the log stays in time order even where the capture's clock stepped back
            note_pair(TT, cnt, N_TRANS_TS, k, clamp_time(clk, TRANS_CLOCK, deadline, TB, cnt, N_TRANS_BACK, k))
    return True


@helper
def last_of_side(T, k: int, n: int, c: int, side: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether transition k is the last one of (c, side) among rows k .. n-1."""
    for j in range(k + 1, n):
        if T[j].conn == c and trans_side(np.int64(T[j].code)) == side:
            return False
    return True
