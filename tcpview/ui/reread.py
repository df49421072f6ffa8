"""Reading a capture file again for a cursor the memory budget let go, and pointing the views
at a fresh timeline (which a live capture's switch to another interface does too).

Under ``--memory`` the oldest part of a big file leaves the timeline while it is read. Moving
the cursor there reads the file again into a fresh timeline *pinned* at the cursor
(``Timeline.pin``): nothing at or after the pin leaves, and the reader stops a share of the
budget past it, going on as the cursor moves on (``Timeline.holding``). The file itself is
the storage; memory stays within the budget.
"""

from __future__ import annotations

import threading

from ..engine.player import Player
from ..engine.pump import Pump
from ..engine.analysis.query import ConnRows
from ..engine.timeline.tracker import Tracker
from .fmt import offset


class ReadAgain:
    """For :class:`tcpview.ui.app.TcpviewApp` (its attributes: source, tracker, tl, pump,
    player, the views)."""

    def _can_read_again(self) -> bool:
        path = getattr(self.source, "path", None)
        return self.tl.budget is not None and not self.player.live and path not in (None, "-")

    def _read_again(self, t: float) -> None:
        """Read the capture file again for cursor time ``t``, which the memory budget let go:
        into a fresh timeline pinned at ``t`` (``Timeline.pin``: it keeps ``t`` and reads only
        a little past it, going on as the cursor moves on)."""
        old = self.tl
        self._stop.set()  # the old reader stops within a batch
        tracker = Tracker(msl2=self.tracker.msl2, fin_timeout=self.tracker.fin_timeout)
        tracker.tl.budget = old.budget
        tracker.tl.version = old.version + 1  # the views key their caches on it
        tracker.tl.pin = t
        self.source = type(self.source)(self.source.path)
        self.tracker, self.tl = tracker, tracker.tl
        self.pump = Pump(self.source, tracker, warm=True)
        self.player = Player(self.pump.times, live=False)
        self._stop = threading.Event()
        self.loaded = False
        self._start_at = t - (old.first_ts or t)
        self._reset_views()
        self._read_source()
        self.notify(f"reading the capture again up to {offset(self._start_at)}: the memory budget had "
                    "let that part go", title="memory", timeout=6, markup=False)

    def _read_on_to(self, seconds: float) -> bool:
        """A file read again for a cursor stops a little past it: a time past what is read
        moves the pin there, and the cursor follows once it is read (see ``_maybe_start_at``)."""
        tl = self.tl
        if tl.pin is None or self.loaded or tl.first_ts is None or tl.last_ts is None:
            return False
        if tl.first_ts + seconds <= tl.last_ts:
            return False
        self._start_at = seconds
        tl.pin = tl.first_ts + seconds
        return True

    def _reset_views(self) -> None:
        """Point every view at the fresh timeline, keeping the filter and the sort."""
        bar = self._bar
        bar.player = self.player
        bar.reading, bar.read_share = not self.player.live, None
        table = self._table
        old = table.model
        model = ConnRows()  # its caches belong to the old timeline
        model.set_query(old.query.text)
        model.sort, model.reverse = old.sort, old.reverse
        table.model = model
        self._ladder.cid = None  # its row caches are the old connection's
        self._why.explain_row(self.tl, None, None)
        self._graph.frames = self.pump.frames.get
        self.refresh_views(force=True)
        bar.refresh()

