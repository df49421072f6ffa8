"""The readers' side of the timeline: the newest published :class:`~.view.View` and every
question asked of it at a cursor time ("as of t"), with the caches that make repeated
questions cheap as the cursor moves.

:class:`Reader` is what the connection views (:mod:`.conns`) and the column builders read;
:class:`~.timeline.Timeline` is a Reader that also writes (publishes views). The caches are
keyed by the view's generation (rows that left void them) and extended as the tables grow.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ...jit import Int
from ...records import Records
from ..core import columns as col
from ..core.passes import (
    conn_progress,
    conn_rows,
    conn_stats,
    seg_count_at,
    seg_count_before,
    state_counts,
    states_after,
    trans_count_at,
)
from ..core.tcp import CLOSED, LISTEN, NSTATES, STATE_NAMES, SYN_SENT
from .view import View

MARK_EVERY = 4096
"""Transitions between the marks :meth:`Reader.counters_at` starts from (each state's count
after every MARK_EVERY transitions): a cursor moved back, and each of the sparklines' samples,
cost at most this many instead of all those before it."""


class Reader:
    """Questions about the newest published view, at any cursor time."""

    def __init__(self, view: View) -> None:
        self._view = view
        self._lock = threading.Lock()  # guards the caches below, not the tables
        self._rows: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()
        self._cache: dict[str, Any] = {}

    def show(self, view: View) -> None:
        """Make ``view`` the one readers see from now on (the writer, after a batch)."""
        self._view = view

    def cached(self, key: str) -> Any:
        """What :meth:`remember` kept under ``key`` (None when nothing)."""
        return self._cache.get(key)

    def remember(self, key: str, value: Any) -> None:
        """Keep an answer for the next question (the answer names the view it is for)."""
        self._cache[key] = value

    def view(self) -> View:
        """The newest published view (take it once per question)."""
        return self._view

    @property
    def packets(self) -> int:
        """Frames read, TCP or not."""
        return self._view.packets

    @property
    def tcp_packets(self) -> int:
        """TCP segments stored."""
        return self._view.tcp_packets

    @property
    def fragments(self) -> int:
        """Frames held as IP fragments of datagrams a later frame completed (reassembled there)."""
        return self._view.fragments

    @property
    def first_ts(self) -> float | None:
        """Capture time of the first frame (None before any)."""
        return self._view.first_ts

    @property
    def last_ts(self) -> float | None:
        """Latest capture time seen."""
        return self._view.last_ts

    @property
    def skipped(self) -> dict[str, int]:
        """Frames not decoded, by reason."""
        return dict(self._view.skipped)

    # -- rows of one connection (cached, extended as the timeline grows) ------------------------------
    def rows_of(self, row: int, v: View | None = None) -> np.ndarray:
        """Rows of the segments of the connection in ``row`` of ``v`` (the newest view by default)."""
        v = v or self._view
        return self._cached_rows("seg", row, v.segs, v.n_seg, v.generation, lambda: self._first_seg_row(v, row))

    def trans_rows_of(self, row: int, v: View | None = None) -> np.ndarray:
        """Rows of the transitions of the connection in ``row`` of ``v``."""
        v = v or self._view
        return self._cached_rows("trans", row, v.trans, v.n_trans, v.generation,
                                 lambda: self._first_trans_row(v, row))

    @staticmethod
    def _first_seg_row(v: View, row: int) -> int:
        """Where its segments start: its first one's row, when that is still there (a
        connection new in a long capture is not looked for in all the rows before it)."""
        first = int(v.conns.row0[row]) if row < v.n_conn else col.NO_ROW
        return first if first != col.NO_ROW and first < v.n_seg else 0

    def _first_trans_row(self, v: View, row: int) -> int:
        """Where its transitions start: after every one whose time is before its first
        segment's. Both tables' times never decrease (the clock rule moves a time that steps
        back up to the clock, keeping the captured one aside), and none of its transitions,
        a timer's included, is before its first segment."""
        first = self._first_seg_row(v, row)
        if first == 0:
            return 0
        before = float(np.nextafter(v.segs.ts[first], -np.inf))
        return int(trans_count_at(v.trans, v.segs, v.trans_ts, v.n["trans_ts"], v.n_trans, before))

    def _cached_rows(self, kind: str, cid: int, table: np.ndarray, n: int, generation: int,
                     start: Callable[[], int]) -> np.ndarray:
        key = (kind, cid, generation)
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None:
                self._rows.move_to_end(key)
        if hit is not None and hit[0] == n:
            return hit[1]
        if hit is not None and hit[0] > n:  # an older view than the one cached
            return hit[1][: int(np.searchsorted(hit[1], n))]
        if hit is not None:
            more = conn_rows(table, cid, hit[0], n)
            rows = np.concatenate((hit[1], more)) if len(more) else hit[1]
        else:
            rows = conn_rows(table, cid, start(), n)
        with self._lock:
            self._rows[key] = (n, rows)
            self._rows.move_to_end(key)
            while len(self._rows) > 512:
                self._rows.popitem(last=False)
        return rows

    # -- "as of t" ---------------------------------------------------------------------------------
    def trans_index_at(self, t: float | None, v: View | None = None) -> int:
        """How many transitions happened at or before ``t`` (all when None)."""
        v = v or self._view
        if t is None:
            return v.n_trans
        return int(trans_count_at(v.trans, v.segs, v.trans_ts, v.n["trans_ts"], v.n_trans, t))

    def seg_index_at(self, t: float | None, v: View | None = None) -> int:
        """How many segments were captured at or before ``t`` (all when None)."""
        v = v or self._view
        if t is None:
            return v.n_seg
        return int(seg_count_at(v.segs, v.n_seg, t))

    def seg_index_before(self, t: float, v: View | None = None) -> int:
        """How many segments were captured strictly before ``t``."""
        v = v or self._view
        return int(seg_count_before(v.segs, v.n_seg, t))

    def seg_time(self, i: int, v: View | None = None) -> float:
        """The (non-decreasing) time of segment row i, as the cursor uses it."""
        v = v or self._view
        return float(v.segs[i].ts)

    def states_at(self, t: float | None, v: View | None = None) -> np.ndarray:
        """Both endpoints' states of every connection as of ``t``: shape ``(n_conn, 2)`` (kept
        for the next question: do not write to it)."""
        v = v or self._view
        k = self.trans_index_at(t, v)
        prev = self._cache.get("states")
        if prev is not None and prev[0] == v.generation and prev[1] == k and len(prev[2]) == v.n_conn:
            return prev[2]  # asked already (the reading thread reads ahead: read_ahead)
        if prev is not None and prev[0] == v.generation and prev[1] <= k and len(prev[2]) <= v.n_conn:
            states = v.start_states(v.n_conn)
            states[: len(prev[2])] = prev[2]
            k0 = prev[1]
        else:
            states, k0 = v.start_states(v.n_conn), 0
        states_after(v.trans, k0, k, states)
        self._cache["states"] = (v.generation, k, states)
        return states

    def conn_stats_at(self, t: float | None, v: View | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per connection as of ``t``: segments, payload bytes and the row of its latest segment
        (-1 when none; kept for the next question: do not write to them)."""
        v = v or self._view
        m = self.seg_index_at(t, v)
        n = v.n_conn
        prev = self._cache.get("conn")
        if prev is not None and prev[0] == v.generation and prev[1] == m and len(prev[2]) == n:
            pk, nb, last = prev[2:]  # asked already (the reading thread reads ahead: read_ahead)
        else:
            pk, nb = v.start_counts(n)
            last = np.full(n, -1, np.int64)
            k0 = 0
            if prev is not None and prev[0] == v.generation and prev[1] <= m and len(prev[2]) <= n:
                j = len(prev[2])
                pk[:j], nb[:j], last[:j] = prev[2], prev[3], prev[4]
                k0 = prev[1]
            conn_stats(v.segs, k0, m, pk, nb, last)
            self._cache["conn"] = (v.generation, m, pk, nb, last)
        if v.n["long"]:
            nb = nb.copy()
            for row, ln in v.long_bytes_before(m):
                nb[int(v.segs[row].conn)] += ln - col.LONG_LEN
        return pk, nb, last

    def progress_at(self, t: float | None, v: View | None = None) -> Records:
        """Every connection's :data:`~tcpview.engine.core.columns.PROGRESS` as of ``t``: its notes
        (partial, refused, reset, anomaly), analysis bits, retransmissions and initial RTT,
        replayed from its segments at or before t (a record array by row; do not write to it)."""
        v = v or self._view
        return self.progress_upto(self.seg_index_at(t, v), v)

    def progress_upto(self, m: int, v: View | None = None) -> Records:
        """:meth:`progress_at` after the first m segments (kept, and carried on from when the
        next question is about a later cursor)."""
        v = v or self._view
        n = v.n_conn
        prev = self._cache.get("progress")
        if prev is not None and prev[0] == v.generation and prev[1] == m and len(prev[3]) == n:
            return prev[3]
        P, states = v.start_progress(n), v.start_states(n)
        j: Int
        k0, j, reuse = 0, 0, np.full(2, -1, dtype=np.int64)
        if prev is not None and prev[0] == v.generation and prev[1] <= m and len(prev[3]) <= n:
            _gen, k0, j, P0, states0, reuse0 = prev
            col.raw(P)[: len(P0)] = col.raw(P0)  # (a memory copy: numpy copies records field by field)
            states[: len(states0)], reuse = states0, reuse0.copy()
        j = conn_progress(v.segs, v.trans, v.conns.fl, v.seg_back[: v.n["seg_back"]], v.anom[: v.n["anom"]],
                          k0, m, j, v.n_trans, states, P, reuse)
        self._cache["progress"] = (v.generation, m, j, P, states, reuse)
        return P

    def half_open_at(self, t: float | None = None) -> int:
        """Connections whose SYN was never answered as of time t: the client in SYN_SENT, the
        server not past LISTEN (what a SYN flood makes), counting those that left the
        timeline under a memory budget."""
        v = self._view
        n = self.conn_count_at(t, v)
        states = self.states_at(t, v)[:n]
        waiting = (states[:, 0] == SYN_SENT) & ((states[:, 1] == LISTEN) | (states[:, 1] == CLOSED))
        return int(np.count_nonzero(waiting)) + int(v.held_counts[SYN_SENT])

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Endpoints per state as of time t (now when None), CLOSED excluded, as ss counts."""
        v = self._view
        k = self.trans_index_at(t, v)
        if v.horizon is not None and t is not None and t < v.horizon:
            return self._sampled_counts(v, t)
        counts = np.bincount(v.base_states.reshape(-1), minlength=NSTATES)[:NSTATES].astype(np.int64)
        counts += v.held_counts[:NSTATES]
        counts += self._counts_after(v, k)
        return {STATE_NAMES[i]: int(counts[i]) for i in range(1, NSTATES)}

    def _counts_after(self, v: View, k: int) -> np.ndarray:
        """What the first ``k`` transitions of ``v`` add to each state's endpoints: from the
        nearest mark at or before k (:data:`MARK_EVERY`), so a cursor anywhere costs at most
        that many transitions."""
        marks = self._marks(v)
        c = min(k // MARK_EVERY, len(marks) - 1)
        counts = marks[c].copy()
        state_counts(v.trans, c * MARK_EVERY, k, counts)
        return counts

    def _marks(self, v: View) -> np.ndarray:
        """Each state's endpoints added by the first ``i * MARK_EVERY`` transitions (row i), for
        the transitions there are: kept, and extended as more come."""
        prev = self._cache.get("marks")
        marks = prev[1] if prev is not None and prev[0] == v.generation else np.zeros((1, NSTATES), dtype=np.int64)
        want = v.n_trans // MARK_EVERY + 1
        if len(marks) < want:
            more = np.empty((want, NSTATES), dtype=np.int64)
            more[: len(marks)] = marks
            counts = marks[-1].copy()
            for i in range(len(marks), want):
                state_counts(v.trans, (i - 1) * MARK_EVERY, i * MARK_EVERY, counts)
                more[i] = counts
            marks = more
        self._cache["marks"] = (v.generation, marks)
        return marks

    def _sampled_counts(self, v: View, t: float) -> dict[str, int]:
        """Counters before the horizon, from the samples kept when those rows left."""
        counts = np.zeros(NSTATES, dtype=np.int64)
        for ts, sample in v.history:
            if ts > t:
                break
            counts = sample
        return {STATE_NAMES[i]: int(counts[i]) for i in range(1, NSTATES)}

    def counter_series(self, state: int, buckets: int, t_end: float | None = None) -> list[int]:
        """Count of endpoints in ``state`` sampled at ``buckets`` even times up to t_end."""
        v = self._view
        if v.first_ts is None or buckets <= 0:
            return []
        t0 = v.first_ts
        t1 = v.last_ts if t_end is None else t_end
        if t1 is None or t1 <= t0:
            return [self.counters_at(t1)[STATE_NAMES[state]]] * buckets
        times = t0 + (t1 - t0) * (np.arange(1, buckets + 1) / buckets)
        key = (v.generation, v.n_trans, t0, t1, buckets)
        prev = self._cache.get("series")
        if prev is None or prev[0] != key:  # every state at once: the bar asks for several
            prev = (key, np.array([self._counts_after(v, self.trans_index_at(tb, v)) for tb in times.tolist()]))
            self._cache["series"] = prev
        series = prev[1][:, state]
        if v.horizon is None:
            return series.tolist()
        base = int(np.count_nonzero(v.base_states == state)) + int(v.held_counts[state])
        out = []
        for tb, val in zip(times.tolist(), series.tolist(), strict=True):
            out.append(self._sampled_counts(v, tb)[STATE_NAMES[state]] if tb < v.horizon else base + val)
        return out

    def conn_count_at(self, t: float | None, v: View | None = None) -> int:
        """Number of connections whose first packet is at or before t (in ``v``, the newest
        view by default)."""
        v = v or self._view
        if t is None:
            return v.n_conn
        firsts = self._cache.get("firsts")
        if firsts is None or firsts[0] != (v.generation, v.n_conn):
            acc = np.maximum.accumulate(v.conns.first_ts[: v.n_conn]) if v.n_conn else np.zeros(0)
            firsts = ((v.generation, v.n_conn), acc)
            self._cache["firsts"] = firsts
        return int(np.searchsorted(firsts[1], t, side="right"))
