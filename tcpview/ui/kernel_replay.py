"""``tcpview replay`` of a pcapng that keeps the kernel's events (``live --kernel -w``): the
viewer plus ``K`` and ``D`` as live capture has them, from the file's events.

The pane (:class:`~tcpview.ui.widgets.kernel_pane.KernelPane`) shows, for the selected
connection, the kernel's traced state of each end that lived on the capturing host beside
the state inferred from the packets, at the cursor
(:func:`tcpview.kernel.trace_compare.compare_trace`); ``D`` filters the table down to the
connections where they differ. There is no socket table to read: the processes and tcp_info
of a live capture are not in the file. The comparison runs on a worker thread on a tick;
only the UI thread touches widgets. (The ladder's kernel rows and the ``cwnd`` / ``srtt``
graphs are the viewer's own: :class:`~tcpview.ui.session.SessionViews`.)
"""

from __future__ import annotations

import threading
import time

from textual import work

from ..kernel.trace_compare import compare_trace
from .app import TcpviewApp
from .bindings import KERNEL_BINDINGS
from .widgets.conn_table import ConnectionTable
from .widgets.kernel_pane import KernelPane

TICK = 0.5
"""Seconds between two comparisons while the pane is shown."""


class KernelReplayApp(TcpviewApp):
    """The viewer of a capture file with the kernel's events, and ``K`` / ``D`` on them.

    Args:
        source: the capture file's source.
        **opts: as for :class:`~tcpview.ui.app.TcpviewApp`.
    """

    BINDINGS = [*TcpviewApp.BINDINGS, *KERNEL_BINDINGS]

    def __init__(self, source, **opts) -> None:
        super().__init__(source, **opts)
        self.kernel_on = False
        self._busy = threading.Lock()

    def compose(self):
        yield from super().compose()
        pane = KernelPane(id="kernel")
        pane.recorded = True
        yield pane

    # Textual calls a base class's handler of the same message too: no super() here
    def on_mount(self) -> None:
        self.set_interval(TICK, self._kernel_tick, name="kernel-tick")

    def _kernel_tick(self) -> None:
        if self.kernel_on:
            self._compare()

    @work(thread=True, exclusive=True, group="kernel", exit_on_error=False)
    def _compare(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            tl = self.tl
            log = tl.kernel
            if log is None:
                return
            t = self.player.query_time()
            results = compare_trace(tl, log, t if t is not None else tl.last_ts)
        finally:
            self._busy.release()
        self.call_from_thread(self._show, results)

    def _show(self, results: dict) -> None:
        pane = self.screen_stack[0].query_one(KernelPane)
        pane.results, pane.snap_ts = results, time.time()
        self._update_pane()

    def _update_pane(self) -> None:
        if not self.kernel_on:
            return
        pane = self.screen_stack[0].query_one(KernelPane)
        pane.update_view(self.tl, self.screen_stack[0].query_one(ConnectionTable).selected,
                         self.player.query_time() is not None)

    def on_connection_table_row_highlighted(self, message: ConnectionTable.RowHighlighted) -> None:
        self._update_pane()

    def action_toggle_kernel(self) -> None:
        """Show or hide the kernel's view (the file's events at the cursor)."""
        self.kernel_on = not self.kernel_on
        pane = self.screen_stack[0].query_one(KernelPane)
        pane.set_class(self.kernel_on, "-on")
        if self.kernel_on:
            self._compare()
            self._update_pane()

    def action_kernel_differences(self) -> None:
        """Filter the table to the connections the kernel's events disagree with."""
        if not self.kernel_on:
            self.action_toggle_kernel()
            self.notify("comparing with the file's kernel events; press D again in a moment", markup=False)
            return
        diff = self.screen_stack[0].query_one(KernelPane).differing()
        if not diff:
            self.notify("the kernel's events agree with every connection of the capturing host", markup=False)
            return
        self.action_set_filter(" ".join(f"id:{i}" for i in diff))
