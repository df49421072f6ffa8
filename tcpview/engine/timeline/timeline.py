"""The timeline: the engine's tables, written by the tracker's thread and published as views
that any thread reads (:class:`~.reader.Reader` answers the questions; see INVARIANTS.md).

- One thread appends (the tracker, through the compiled loop); any thread reads. After each
  batch the writer publishes a :class:`~.view.View`: the arrays and how many rows of each are
  complete. A table that grows is copied; a reader holding the old arrays keeps a valid view.
- Readers answer from the append-only rows (segments, transitions, a connection's 4-tuple),
  not from the writer's working fields, so every answer is the replay of a prefix: "the
  world as of t" is a binary search over the time-ordered transitions and a compiled pass
  over them (:mod:`tcpview.engine.core.passes`).
- pydantic models (:mod:`tcpview.engine.core.model`) are built on demand for what is shown or
  exported, never stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ...sources.merge import CaptureMap
from ..core import columns as col
from ..core.decode import REASON_SLOTS, UNSUPPORTED_LINK, reason_text
from ..core.tcp import SIDES, STATE_NAMES
from .conn_columns import ConnColumns, conn_array_chunks
from .conns import ConnList, ConnView
from .evict import AHEAD, bound_heap, evict, over_budget, read_ahead
from .kernel_log import KernelLog
from .reader import Reader
from .vantages import Vantages
from .view import View

if TYPE_CHECKING:  # the pydantic models, imported where one is built (pydantic is slow to import)
    from ..core.model import Connection, Segment, Transition


class Timeline(Reader):
    """All connections, their segments and transitions; queries at any cursor time."""

    def __init__(self, rows: int | None = None) -> None:
        """``rows``: start the tables that small (see :class:`~tcpview.engine.core.columns.Tables`)."""
        self._w = col.Tables(rows)
        self.version = 0
        self.generation = 0
        self._budget: int | None = None
        self.pin: float | None = None
        """A time readers still need (a file replay's cursor): the oldest part leaves only
        before it, and :meth:`holding` tells a file's reader to wait past it."""
        self.held = False
        """Whether the file's reader is waiting for the pin to move on (see :meth:`holding`)."""
        self._passed: float | None = None  # the time the writer let pass without packets
        self.kernel: KernelLog | None = None
        self.captures: CaptureMap | None = None
        """Several captures merged into one timeline: which capture each frame came from."""
        self.vantages: Vantages | None = None
        """Two vantage points of the same connections joined: each segment's one-way delay."""
        """The kernel's events a capture file holds (tcpview's custom blocks in a pcapng that
        ``live --kernel -w`` wrote), added by the reader's thread as it reads them; None
        when it holds none."""
        super().__init__(self._make_view())
        self.conns = ConnList(self)

    @property
    def budget(self) -> int | None:
        """Bytes the tables may use (None: no limit); over it, the oldest rows leave."""
        return self._budget

    @budget.setter
    def budget(self, size: int | None) -> None:
        if size is not None:
            bound_heap()
        self._budget = size

    @property
    def tables(self) -> col.Tables:
        """The tables the writer appends to (the tracker's thread only; readers take a view)."""
        return self._w

    # -- the writer's side --------------------------------------------------------------------
    def publish(self) -> None:
        """Make everything appended so far visible to readers (tracker only, after a batch);
        first, when the tables outgrow the budget, let the oldest rows leave."""
        self._make_room()
        self.version += 1
        self.show(self._make_view())

    def pass_time(self, ts: float) -> None:
        """Capture time has reached ``ts`` with no packet since (writer's thread, after firing
        the timers due by then: a reader that sees the clock there sees their transitions)."""
        if self._passed is None or ts > self._passed:
            self._passed = ts

    @property
    def clock(self) -> float | None:
        """Capture time now: the newest packet's, or later where the source's clock moved on
        without packets (a live capture, whose time stamps are wall-clock times). None before
        the first packet. It moves without a new view (no new version): what changes with it
        alone is what the views count to it (idle, age, the player's end)."""
        last = self.last_ts
        passed = self._passed
        if last is None or passed is None or passed < last:
            return last
        return passed

    def _make_room(self) -> bool:
        """Let the oldest rows leave when the tables outgrow the budget (never past the pin);
        returns whether any left."""
        if self.budget is None or not over_budget(self._w, self.budget) or not evict(self._w, self.budget, self.pin):
            return False
        self.generation += 1
        return True

    def holding(self) -> bool:
        """Whether a file's reader should wait (writer's thread): the timeline is pinned and
        holds :data:`~tcpview.engine.timeline.evict.AHEAD` of its budget past the pin. Room the pin
        moving on has made is made first (published only when anything left)."""
        pin, budget = self.pin, self.budget
        if pin is None or budget is None:
            self.held = False
            return False
        if self._make_room():
            self.version += 1
            self.show(self._make_view())
        self.held = read_ahead(self._w, pin) > budget * AHEAD
        return self.held

    @property
    def horizon(self) -> float | None:
        """The time before which rows have left (None: nothing has)."""
        return self.view().horizon

    @property
    def evicted(self) -> dict[str, int]:
        """How many connections and segments have left the timeline."""
        v = self.view()
        return {"connections": v.evicted_conns, "segments": v.evicted_segs}

    def _make_view(self) -> View:
        w = self._w
        cnt = w.counts.tolist()
        skipped: dict[str, int] = {}
        skip = w.skipped.tolist()
        for code, k in enumerate(skip[:REASON_SLOTS]):
            if k:
                skipped[reason_text(code, 0)] = k
        for lt1, k in zip(skip[REASON_SLOTS::2], skip[REASON_SLOTS + 1::2], strict=True):
            if lt1:
                skipped[reason_text(UNSUPPORTED_LINK, lt1 - 1)] = k
        packets = cnt[col.PACKETS]
        n = {name: cnt[counter] for name, (_dt, counter, _cap) in col.Tables.LAYOUT.items()}
        return View(w.conns, w.segs, w.trans, w.addrs6, w.seg_back, w.trans_back, w.base_hist, w.long, w.anom,
                    w.trans_ts, w.dupack, w.sack, w.ana, n, packets, cnt[col.TCP_PACKETS],
                    float(w.clocks[col.FIRST_TS]) if packets else None, float(w.clocks[col.LAST_TS]) if packets else None,
                    skipped, self.version, self.generation, w.base_states, w.base_counts, w.base_last, w.horizon,
                    tuple(w.history), w.evicted_conns, w.evicted_segs, w.held_counts.copy(),
                    w.base_zeek, base_progress=w.base_progress, fragments=cnt[col.FRAGMENTS])

    def nbytes(self) -> int:
        """Bytes the store's tables hold (allocated, not only used)."""
        return self._w.nbytes()

    # -- models ----------------------------------------------------------------------------------
    def connection_dict(self, cid: int, t: float | None = None) -> dict:
        """Connection ``cid`` as of time t as a plain dict, in the shape of :class:`Connection`."""
        return self.conns[cid].as_dict(t)

    def connection(self, cid: int, t: float | None = None) -> Connection:
        """The pydantic model of connection ``cid`` as of time t."""
        from ..core.model import Connection

        return Connection.model_validate(self.connection_dict(cid, t))

    def connection_columns(self, t: float | None = None) -> ConnColumns:
        """Every connection that exists at time t, column by column (what a summary prints),
        built from the tables in bulk."""
        whole = ConnColumns.empty()
        for part in self.connection_column_chunks(t):
            whole.extend(part)
        return whole

    def connection_column_chunks(self, t: float | None = None, size: int = 65536) -> Iterator[ConnColumns]:
        """:meth:`connection_columns` in pieces of ``size`` connections: only one piece is
        ever Python objects (a million connections would be a million of each column)."""
        for part in conn_array_chunks(self, t, size):
            yield part.columns()

    def connection_dicts(self, t: float | None = None) -> list[dict]:
        """Every connection that exists at time t, as plain dicts in the shape of
        :class:`Connection` (for bulk output; :meth:`connection` gives the model)."""
        return self.connection_columns(t).dicts()

    def connections(self, t: float | None = None) -> list[Connection]:
        """Every connection that exists at time t, as models."""
        from ..core.model import Connection

        return [Connection.model_validate(d) for d in self.connection_dicts(t)]

    def segment(self, cid: int, i: int) -> Segment:
        """The pydantic model of segment i of connection cid."""
        return self.conns[cid].segment(i)

    def segments(self, cid: int, t: float | None = None) -> Iterator[Segment]:
        """Connection cid's segments up to time t, as models."""
        c = self.conns[cid]
        for i in range(c.count_at(t)):
            yield c.segment(i)

    def transitions(self, cid: int, t: float | None = None) -> list[Transition]:
        """Connection cid's state transitions up to time t, as models."""
        from ..core.model import Transition

        out = []
        for ts, frame, side, old, new, why in self.conns[cid].trans:
            if t is not None and ts > t:
                break
            out.append(Transition(ts=ts, frame=frame, conn=cid, side=SIDES[side], old=STATE_NAMES[old],
                                  new=STATE_NAMES[new], why=why))
        return out

    def all_segments_in_frame_order(self) -> Iterator[Segment]:
        """Every segment of every connection, ordered by frame number (for export)."""
        v = self.view()
        n = v.n_seg
        conn = v.segs.conn[:n].astype(np.int64)
        order = np.argsort(v.segs.frame[:n], kind="stable")
        # each segment's index within its connection
        by_conn = np.argsort(conn, kind="stable")
        counts = np.bincount(conn, minlength=v.n_conn)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
        index = np.empty(n, dtype=np.int64)
        index[by_conn] = np.arange(n) - np.repeat(starts, counts)
        views: dict[int, ConnView] = {}
        for row in order.tolist():
            cid = int(conn[row])
            c = views.get(cid)
            if c is None:
                c = views[cid] = ConnView(self, v, cid)
            yield c.segment(int(index[row]))
