"""One source read into one timeline, and the cursor over it: what a viewer works with
(no Textual here; :mod:`tcpview.ui.session` connects it to the app).

A :class:`Session` owns the source, the tracker and its timeline, the pump that feeds the
tracker (run on one writer thread: see INVARIANTS.md) and the player. Two things start it
over on a fresh timeline, and both go through :meth:`Session.restart`:

- reading a capture file again for a cursor that the memory budget let go
  (:meth:`Session.read_again`): the fresh timeline is *pinned* at the cursor
  (``Timeline.pin``: nothing at or after it leaves, and the reader stops a share of the
  budget past it, going on as the cursor moves on; the file itself is the storage);
- a live capture switched to another interface (:meth:`Session.switch`).

The views key their caches on the timeline's version, so a fresh timeline starts past every
version the old one had.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .player import Player
from .pump import BatchInfo, Pump
from .timeline.timeline import Timeline
from .timeline.tracker import Tracker


class Session:
    """A source, its tracker and timeline, the pump that feeds them and the player.

    Args:
        source: a :class:`tcpview.sources.base.Source` (file, stream, live capture, simulator).
        msl2: TIME_WAIT duration in capture seconds (2*MSL).
        fin_timeout: orphaned FIN_WAIT_2 lifetime in capture seconds.
        memory: the most the timeline may use in bytes (None: no limit).
        speed: the player's starting speed (None: 1x).
    """

    def __init__(self, source, *, msl2: float = 60.0, fin_timeout: float = 60.0,
                 memory: int | None = None, speed: float | None = None) -> None:
        self.msl2 = msl2
        self.fin_timeout = fin_timeout
        self._start(source, memory, version=0, pin=None, speed=speed)

    def _start(self, source, budget: int | None, version: int, pin: float | None,
               speed: float | None) -> None:
        self.source = source
        self.tracker = Tracker(msl2=self.msl2, fin_timeout=self.fin_timeout)
        self.tl: Timeline = self.tracker.tl
        self.tl.budget = budget
        self.tl.version = version
        self.tl.pin = pin
        if self.live:  # a stream or capture: how much will come is not known
            self.tl.tables.expect_stream()
        self.pump = Pump(source, self.tracker, warm=True)
        self.player = Player(self.pump.times, live=self.live, speed=speed)
        self.stop = threading.Event()
        """Set to stop the writer thread (:meth:`feed`) within a batch."""
        self.loaded = False
        """Whether the source has ended (:meth:`ended` was called)."""
        self.load_error: str | None = None
        """Why the source ended early (one line), once it has ended."""

    @property
    def live(self) -> bool:
        """Whether the source is live (capture, paced simulator, followed file): the cursor
        follows the newest data."""
        return bool(getattr(self.source, "live", False))

    # -- the writer's side -------------------------------------------------------------------
    def feed(self, on_batch: Callable[[BatchInfo], None]) -> None:
        """Read the source into the timeline until it ends or :attr:`stop` is set, calling
        ``on_batch`` after each batch (the writer thread: the only one that appends)."""
        self.pump.run(self.stop, on_batch)

    def ended(self, info: BatchInfo) -> bool:
        """Take the end of a reading; False when it is an old reading's (one that
        :meth:`restart` left), which the caller ignores."""
        if not self.pump.done:
            return False
        self.loaded = True
        self.player.loaded = True
        self.load_error = info.error
        return True

    # -- starting over -------------------------------------------------------------------------
    def restart(self, source, pin: float | None = None) -> None:
        """Stop reading and start over on ``source`` with a fresh timeline (the same timers,
        memory budget and speed), pinned at ``pin`` when given. The caller starts :meth:`feed`
        again on a writer thread and points its views at the new timeline."""
        old = self.tl
        self.stop.set()  # the old reader stops within a batch
        # the views key their caches on the version: never reuse one the old timeline had
        self._start(source, old.budget, old.version + 1, pin, self.player.speed)

    def can_read_again(self) -> bool:
        """Whether a cursor the memory budget let go can be read again (a capture file)."""
        path = getattr(self.source, "path", None)
        return self.tl.budget is not None and not self.live and path not in (None, "-")

    def read_again(self, t: float) -> float:
        """Read the capture file again for cursor time ``t``, which the memory budget let go:
        into a fresh timeline pinned at ``t``. Returns ``t`` in seconds after the first packet
        (where the cursor goes once that part is read)."""
        first = self.tl.first_ts
        self.restart(type(self.source)(self.source.path), pin=t)
        return t - (first if first is not None else t)

    def read_on_to(self, seconds: float) -> bool:
        """A file read again for a cursor stops a little past it: for a cursor ``seconds``
        after the first packet, past what is read, move the pin there (reading goes on) and
        return True; False when that time is read already (or nothing is pinned)."""
        tl = self.tl
        if tl.pin is None or self.loaded or tl.first_ts is None or tl.last_ts is None:
            return False
        if tl.first_ts + seconds <= tl.last_ts:
            return False
        tl.pin = tl.first_ts + seconds
        return True

    def switch(self, source) -> None:
        """Capture from ``source`` (a live capture on another interface) instead, on a fresh
        timeline; the caller has stopped the old capture."""
        self.restart(source)

    # -- the cursor ----------------------------------------------------------------------------
    def bounds(self, horizon: bool = True) -> None:
        """Give the player the timeline's first time, the time now (:attr:`Timeline.clock`,
        which a live capture's clock moves on without packets) and, with ``horizon``, the
        time before which rows have left."""
        tl = self.tl
        self.player.set_bounds(tl.first_ts, tl.clock, tl.horizon if horizon else None)
