"""The writer's side of the transition log and the timers: a state change is appended as a
transition; TIME_WAIT and FIN_WAIT_2 expiries wait in a binary heap and fire when capture
time passes them (:func:`expire`); the rare values (a clock that stepped back, long lengths)
are kept as (row, value) pairs.

:func:`expire` takes the tables as one :class:`~tcpview.engine.core.columns.TableArrays`;
the helpers the loop calls take only what they use, since numba passes every field of a
tuple at each call of a function it compiles apart: a state change, a :class:`TransitionLog`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...jit import Int, helper, kernel
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

NO_TRANSITION = -1
"""What :func:`add_transition` gives when the side was in that state already."""


class TransitionLog(NamedTuple):
    """What a state change reads and writes: the connections (their current states), the
    transition log, and the counters (its rows in use, and the segment row it is stamped with)."""

    conns: np.ndarray
    trans: np.ndarray
    counts: np.ndarray


# -- timers (a binary heap) ----------------------------------------------------------------------------
@helper
def _before(timers, i: Int, j: Int) -> bool:
    a = timers[i]
    b = timers[j]
    if a.deadline != b.deadline:
        return a.deadline < b.deadline
    if a.conn != b.conn:
        return a.conn < b.conn
    if a.side != b.side:
        return a.side < b.side
    return a.state < b.state


@helper
def _swap(timers, i: Int, j: Int) -> None:
    a = timers[i]
    b = timers[j]
    a.deadline, b.deadline = b.deadline, a.deadline
    a.conn, b.conn = b.conn, a.conn
    a.side, b.side = b.side, a.side
    a.state, b.state = b.state, a.state
    a.gen, b.gen = b.gen, a.gen


@helper
def push_timer(timers, counts: np.ndarray, deadline: float, c: Int, side: Int, state: Int, gen: Int) -> None:
    """Start a timer: side ``side`` of connection c leaves ``state`` at ``deadline`` unless
    it has changed state since (its ``gen`` moved on)."""
    i = counts[N_TIMERS]
    counts[N_TIMERS] = i + 1
    timer = timers[i]
    timer.deadline = deadline
    timer.conn = c
    timer.side = side
    timer.state = state
    timer.gen = gen
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(timers, i, parent):
            break
        _swap(timers, i, parent)
        i = parent


@helper
def _pop(timers, counts: np.ndarray) -> None:
    n = counts[N_TIMERS] - 1
    counts[N_TIMERS] = n
    if n == 0:
        return
    _swap(timers, 0, n)
    i = 0
    while True:
        lft = 2 * i + 1
        if lft >= n:
            break
        best = lft
        if lft + 1 < n and _before(timers, lft + 1, lft):
            best = lft + 1
        if not _before(timers, best, i):
            break
        _swap(timers, i, best)
        i = best


# -- the rare things, kept as (row, value) pairs --------------------------------------------------------
@helper
def note_pair(table: np.ndarray, counts: np.ndarray, counter: Int, row: Int, value: Int | float) -> None:
    """Append (row, value) to one of the pair tables (``counts[counter]`` its rows in use)."""
    j = counts[counter]
    counts[counter] = j + 1
    table[j, 0] = row
    table[j, 1] = value


@helper
def clamp_time(clocks: np.ndarray, clock: Int, ts: float, back: np.ndarray, counts: np.ndarray, counter: Int,
               row: Int) -> float:
    """The time to store for ``row``: ``ts``, or the latest time seen when the capture's clock
    stepped back (then the real time goes into ``back``)."""
    key = ts
    if ts < clocks[clock]:
        key = clocks[clock]
        note_pair(back, counts, counter, row, ts)
    clocks[clock] = key
    return key


# -- state changes -------------------------------------------------------------------------------------
@helper
def add_transition(log: TransitionLog, c: Int, side: Int, new: Int, why: Int) -> Int:
    """Record that side ``side`` of connection c is now in ``new``; returns the transition's
    row (``NO_TRANSITION`` when it was in ``new`` already).

    Its time is that of the segment about to be stored (the row it names); a timer's caller
    records its deadline.
    """
    conn = log.conns[c]
    old = np.int64(conn.state[side])
    if old == new:
        return NO_TRANSITION
    conn.state[side] = new
    conn.gen[side] += 1
    counts = log.counts
    k = counts[N_TRANS]
    counts[N_TRANS] = k + 1
    t = log.trans[k]
    t.seg = counts[N_SEG]
    t.conn = c
    t.code = trans_code(side, old, new, why)
    return k


@kernel
def expire(tables, now: float) -> bool:
    """Let capture time pass to ``now``: fire every timer due by then, stamped with its deadline.

    False when a table filled first (``counts[STATUS]`` says which; grow it and call again).
    """
    timers = tables.timers
    counts = tables.counts
    while counts[N_TIMERS] > 0 and timers[0].deadline <= now:
        if counts[N_TRANS] + 1 > len(tables.trans):
            counts[STATUS] = N_TRANS
            return False
        if counts[N_TRANS_TS] + 1 > len(tables.trans_ts):
            counts[STATUS] = N_TRANS_TS
            return False
        if counts[N_TRANS_BACK] + 1 > len(tables.trans_back):
            counts[STATUS] = N_TRANS_BACK
            return False
        due = timers[0]
        deadline = due.deadline
        c = np.int64(due.conn)
        side = np.int64(due.side)
        state = due.state
        gen = due.gen
        _pop(timers, counts)
        conn = tables.conns[c]
        if conn.state[side] == state and conn.gen[side] == gen:
            why = WHY_TW_EXPIRED if state == TIME_WAIT else WHY_FW2_EXPIRED
            k = add_transition(TransitionLog(tables.conns, tables.trans, counts), c, side, CLOSED, why)
            # the log stays in time order even where the capture's clock stepped back
            stamp = clamp_time(tables.clocks, TRANS_CLOCK, deadline, tables.trans_back, counts, N_TRANS_BACK,
                               k)
            note_pair(tables.trans_ts, counts, N_TRANS_TS, k, stamp)
    return True


@helper
def last_of_side(trans, k: Int, n: Int, c: Int, side: Int) -> bool:
    """Whether transition k is the last one of (c, side) among rows k .. n-1."""
    for j in range(k + 1, n):
        if trans[j].conn == c and trans_side(np.int64(trans[j].code)) == side:
            return False
    return True
