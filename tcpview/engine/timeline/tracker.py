"""Feeding frames to the compiled state machine, batch by batch (the writer's side of the store).

The :class:`Tracker` owns the :class:`~tcpview.engine.timeline.timeline.Timeline` it appends to. Feed it
frames in capture order, as whole batches (:meth:`Tracker.feed_batch`, what the pump does) or
one by one; it uses capture time only (never the wall clock), so a replay at any speed, or a
``--at`` query, gives the same states. The rules it applies are in :mod:`tcpview.engine.core.statemachine`.

A batch runs in one call of the compiled loop, without the GIL. When a table fills up the
loop stops, the tracker doubles that table and the loop goes on; after the batch the tracker
publishes the new lengths, and only then do readers see the new rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...jit import Int
from ...sources.batch import FrameBatch
from ..core import columns as col
from ..core.connhash import rebuild_hash
from ..core.decode import OUT_SIZE
from ..core.loop import Timeouts, track
from ..core.reassembly import new_fragments
from ..core.transitions import expire
from .timeline import Timeline


class Tracker:
    """Turns frames into connections, segments and transitions in a Timeline.

    Args:
        timeline: the store to append to (a new one by default).
        msl2: TIME_WAIT duration in seconds (2*MSL; Linux uses 60).
        fin_timeout: how long an orphaned FIN_WAIT_2 lasts (Linux tcp_fin_timeout, 60).
    """

    def __init__(self, timeline: Timeline | None = None, msl2: float = 60.0, fin_timeout: float = 60.0) -> None:
        self.tl = timeline if timeline is not None else Timeline()
        self.msl2 = msl2
        self.fin_timeout = fin_timeout
        self._timeouts = Timeouts(float(msl2), float(fin_timeout))
        self._fields = np.zeros(OUT_SIZE, dtype=np.int64)  # one frame's fields (the loop's scratch)
        self._frags = new_fragments()  # IP datagrams in reassembly, from batch to batch

    # -- input -------------------------------------------------------------------------------
    def feed_batch(self, batch: FrameBatch) -> None:
        """Decode and track every frame of ``batch``, then publish the result to readers."""
        tl = self.tl
        n = len(batch)
        if n == 0:
            return
        w = tl.tables
        i: Int = 0
        while True:
            i = track(batch.buf, batch.frames, i, w.arrays(), self._timeouts, self._fields, self._frags)
            if i >= n:
                break
            self.make_room(int(w.counts[col.STATUS]))
        tl.publish()

    def feed_records(self, records: Iterable) -> None:
        """Apply records ``(frame, ts, linktype, buf, off, caplen, origlen)`` (``None`` items,
        a follower waiting for data, are skipped)."""
        self.feed_batch(FrameBatch.of_records(records))

    def feed(self, frame: int, ts: float, linktype: int, buf: object, off: int, caplen: int, origlen: int) -> None:
        """Decode and apply one frame (non-TCP or undecodable frames are counted)."""
        self.feed_records(((frame, ts, linktype, buf, off, caplen, origlen),))

    def feed_frame(self, frame: int, ts: float, linktype: int, data: bytes) -> None:
        """Apply one frame given as bytes (simulator, live capture)."""
        self.feed(frame, ts, linktype, data, 0, len(data), len(data))

    def advance(self, ts: float) -> None:
        """Let capture time pass to ``ts`` with no packet (fires the TIME_WAIT / FIN_WAIT_2
        timers due by then, and moves the timeline's :attr:`~Timeline.clock` there)."""
        w = self.tl.tables
        if w.counts[col.N_TIMERS] and w.timers[0].deadline <= ts:
            while not expire(w.arrays(), ts):
                self.make_room(int(w.counts[col.STATUS]))
            self.tl.publish()
        self.tl.pass_time(ts)

    def make_room(self, need: int) -> None:
        """Grow the table the compiled loop found full (readers keep the old arrays)."""
        w = self.tl.tables
        if need == col.NEED_HASH:
            w.hash = np.zeros(2 * len(w.hash), dtype=np.int32)
            rebuild_hash(w.hash, w.conns, w.addrs6, int(w.counts[col.N_CONN]))
        else:
            w.grow(need)
