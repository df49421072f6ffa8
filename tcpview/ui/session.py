"""The app's side of a :class:`~tcpview.engine.session.Session`: when the session starts over
on a fresh timeline (a capture file read again for a cursor the memory budget let go, a live
capture switched to another interface), the views are pointed at it and reading starts again.

Under ``--memory`` the oldest part of a big file leaves the timeline while it is read. Moving
the cursor there reads the file again into a fresh timeline *pinned* at the cursor
(``Timeline.pin``): nothing at or after the pin leaves, and the reader stops a share of the
budget past it, going on as the cursor moves on (``Timeline.holding``). The file itself is
the storage; memory stays within the budget.
"""

from __future__ import annotations

from ..engine.analysis.query import ConnRows
from ..engine.player import Player
from ..engine.pump import Pump
from ..engine.session import Session
from ..engine.timeline.timeline import Timeline
from .app_parts import AppParts
from .fmt import offset


class SessionViews(AppParts):
    """For :class:`tcpview.ui.app.TcpviewApp` (its attributes: the views, the reading worker
    ``_read_source``)."""

    session: Session
    """The source, its timeline, the pump and the player (the app makes it)."""

    # -- what the session holds (it replaces them when it starts over) -------------------------
    @property
    def source(self):
        """The source being read."""
        return self.session.source

    @property
    def tl(self) -> Timeline:
        """The timeline the views read."""
        return self.session.tl

    @property
    def player(self) -> Player:
        """The cursor."""
        return self.session.player

    @property
    def pump(self) -> Pump:
        """What feeds the timeline (and remembers where each frame's bytes are)."""
        return self.session.pump

    @property
    def loaded(self) -> bool:
        """Whether the source has ended."""
        return self.session.loaded

    @property
    def load_error(self) -> str | None:
        """Why the source ended early, once it has ended."""
        return self.session.load_error


    def _show_kernel_events(self) -> None:
        """A capture file that holds the kernel's events (a pcapng of ``live --kernel -w``):
        once its first block is read, the ladder shows their state changes and the graph
        pane gains ``cwnd`` and ``srtt``, as live showed them. (``live --kernel`` sets its own.)"""
        log = self.tl.kernel
        if log is None or self._graph.kernel_log is log:
            return
        self._graph.kernel_log = log
        self._ladder.kernel = self._file_kernel_rows

    def _file_kernel_rows(self, cid: int) -> list[tuple[float, int, int]]:
        """The kernel's state changes of connection ``cid``'s endpoints the file holds."""
        c, log = self.tl.conns.get(cid), self.tl.kernel
        if c is None or log is None:
            return []
        return log.rows_for((c.client_ip_text(), c.cport), (c.server_ip_text(), c.sport), c.first_ts)

    def _started_over(self) -> None:
        """The session started over: point the views at its fresh timeline and read it."""
        self._reset_views()
        self._read_source()

    def _read_again(self, t: float) -> None:
        """Read the capture file again for cursor time ``t``, which the memory budget let go
        (:meth:`~tcpview.engine.session.Session.read_again`); the cursor goes there once
        that part is read (see ``_maybe_start_at``)."""
        self._start_at = self.session.read_again(t)
        self._started_over()
        self.notify(f"reading the capture again up to {offset(self._start_at)}: the memory budget had "
                    "let that part go", title="memory", timeout=6, markup=False)

    def _read_on_to(self, seconds: float) -> bool:
        """A file read again for a cursor stops a little past it: a time past what is read
        moves the pin there, and the cursor follows once it is read (see ``_maybe_start_at``)."""
        if not self.session.read_on_to(seconds):
            return False
        self._start_at = seconds
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
