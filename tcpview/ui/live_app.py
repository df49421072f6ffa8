"""``tcpview live``: the capture viewer plus what belongs to a live capture on this host.

The kernel's view (``K``, :class:`~tcpview.ui.widgets.kernel_pane.KernelPane`): for every
captured connection with an endpoint on this host, the kernel's own state of that endpoint
(from sock_diag, what ``ss`` shows) beside the state tcpview inferred from the packets
(:func:`tcpview.kernel.compare.compare`), and the selected connection's processes and
tcp_info; ``D`` filters the table down to the connections they disagree on. Whether or not
the pane is shown, the table's ``proc`` column and the ``proc:``, ``pid:`` and ``user:``
filters say which process holds each connection's sockets on this host
(:class:`~tcpview.kernel.compare.ProcessWatch`, remembered after the sockets have gone). The
kernel table is read (and compared) on a worker thread once a second; only the UI thread
touches widgets.

Two more things belong to a live capture: a status line (:class:`CaptureStatus`: the way of
capture, packet ring or dumpcap; captured, dropped, skipped by the decoder, saved), and ``i``, which captures on another
interface (:class:`InterfacePicker`). Switching opens the new capture first (so an error
leaves the old one running), then stops the old one and starts over with a fresh timeline,
the same filter and snap length. Saving with ``-w`` goes on into the same file when the new
interface gives the same kind of frames (a pcap file has one link type); otherwise the
switch is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual import work

from ..kernel.chrono import ChronoWatch
from ..kernel.compare import ProcessWatch, compare
from ..kernel.snapshot import snapshot
from ..kernel.trace_compare import compare_trace
from ..sources.linktypes import SUPPORTED_LINKTYPES
from ..sources.live.choose import CAPTURES, Capture, open_capture
from ..sources.live.ring import LiveError
from ..textutil import plural, safe
from .app import TcpviewApp
from .bindings import LIVE_BINDINGS
from .commands import LiveCommands
from .messages import CaptureSwitched, KernelRead, SwitchFailed
from .screens.iface_picker import InterfacePicker
from .widgets.capture_status import CaptureStatus
from .widgets.conn_table import ConnectionTable
from .widgets.graph_pane import GraphPane
from .widgets.kernel_pane import KernelPane
from .widgets.ladder import Ladder
from .widgets.player_bar import PlayerBar
from .widgets.slow_bar import SlowBar


class LiveApp(TcpviewApp):
    """The capture viewer with the capture's status line, the kernel's view a key away
    (``K``) and an interface picker (``i``).

    Args:
        source: the capture (normally a :data:`~tcpview.sources.live.choose.Capture`: the
            packet ring or dumpcap).
        on_switch: called on the UI thread with each new source after ``i`` switched the
            capture (whoever started the app closes it and reports its figures).
        **opts: as for :class:`~tcpview.ui.app.TcpviewApp`.
    """

    COMMANDS = TcpviewApp.COMMANDS | {LiveCommands}

    BINDINGS = [*TcpviewApp.BINDINGS, *LIVE_BINDINGS]

    def __init__(self, source, on_switch: Callable[[Capture], None] | None = None, **opts) -> None:
        self.kernel_log = opts.pop("kernel", None)
        """With ``--kernel``: the kernel's traced events (a KernelLog), which K compares with
        and the ladder shows; None: K reads the socket table."""
        super().__init__(source, **opts)
        self.kernel_on = False
        self._kernel_busy = threading.Lock()
        self._kernel_read_at = 0.0  # when the last read of the kernel table started (monotonic)
        self._kernel_cost = 0.0  # how long it took
        self._drops_told = 0
        self._error_told: str | None = None
        self._on_switch = on_switch
        self.switching: str | None = None
        """The interface a switch is under way to (None: no switch)."""
        self._pending: Capture | None = None  # opened by a switch, not yet shown
        self.processes = ProcessWatch()
        """The processes found holding the captured connections' sockets (worker thread)."""
        self.chrono = ChronoWatch()
        """The chrono counters last read of the captured connections' sockets (worker thread),
        shown in the breakdown bar beside the inferred split."""

    def compose(self):
        yield from super().compose()
        yield KernelPane(id="kernel")
        yield CaptureStatus(id="capture-status")

    # Textual calls a base class's handler of the same message too (unless prevented), so
    # the handlers below add to TcpviewApp's and never call super().
    def on_mount(self) -> None:
        self._main(ConnectionTable).set_processes({}, {})  # the proc column and filters, filled by K reads
        if self.kernel_log is not None:
            self.query_one(Ladder).kernel = self._kernel_rows
            self.query_one(GraphPane).kernel_log = self.kernel_log  # the cwnd and srtt graphs
        self._main(SlowBar).kernel = lambda cid: self.chrono.ends(cid)
        self._update_status()
        self.set_interval(1.0, self._kernel_tick, name="kernel-tick")

    def on_unmount(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.close()

    def _main(self, kind):
        """The widget of type ``kind`` on the main screen (a modal may be on top)."""
        return self.screen_stack[0].query_one(kind)

    def _kernel_tick(self) -> None:
        self._update_status()
        # the proc column and the breakdown bar's chrono counters want the table too, K or
        # not: then only while a connection's process is still to be found or a socket's
        # counters are still moving, and at most a fifth of the time (a big table takes a
        # second or more to read)
        if self.kernel_on or ((self.processes.pending(self.tl) or self.chrono.live)
                              and time.monotonic() - self._kernel_read_at >= 5 * self._kernel_cost):
            self._read_kernel()

    # -- the status line -------------------------------------------------------------------
    def _source_status(self) -> None:
        """Nothing on the player bar: the status line below tells a capture's counts."""

    def _update_status(self) -> None:
        """Read the capture's counts into the status line; tell about new drops and errors."""
        src = self.source
        status = getattr(src, "status", None)
        try:
            st = dict(status()) if status is not None else {}
        except Exception:
            st = {}
        reasons = dict(self.tl.skipped)  # one C-level copy while the feed thread adds to it
        st["skipped"] = sum(reasons.values())
        st["evicted"] = self.tl.evicted["connections"]
        sink = getattr(src, "sink", None)
        error = getattr(src, "error", None)
        hosts = getattr(src, "hosts", None)  # several hosts' captures (live --remote)
        self._main(CaptureStatus).show(getattr(src, "interface", getattr(src, "name", "")), st, reasons,
                                       save_path=sink.path if sink is not None else None, error=error,
                                       method=getattr(src, "method", None),
                                       hosts=hosts() if hosts is not None else None)
        self._check_drops(st, error)

    def _check_drops(self, st: dict[str, int], error: str | None) -> None:
        """Say so when the kernel dropped packets (states may then be wrong) or the capture
        hit a problem it carries on through (the interface went down)."""
        if error and error != self._error_told:
            self._error_told = error
            self.notify(safe(str(error)), title="capture", severity="error", timeout=15, markup=False)
        dropped = int(st.get("dropped", 0))
        if dropped > self._drops_told:
            who = {"dumpcap": "dumpcap", "ssh": "the hosts' kernels"}.get(getattr(self.source, "method", ""),
                                                                        "the kernel")
            self.notify(f"{who} dropped {plural(dropped - self._drops_told, 'packet')} (capture buffer full; "
                        f"{dropped} in all): states may be off — K compares with the kernel",
                        title="packets lost", severity="warning", timeout=8, markup=False)
            self._drops_told = dropped

    # -- switching interface ---------------------------------------------------------------
    def action_pick_interface(self) -> None:
        """Choose another interface to capture on."""
        src = self._switchable()
        if src is None:
            return
        kept = [f"filter {src.bpf}" if src.bpf else "no filter", f"snap length {src.snaplen}"]
        if src.sink is not None:
            kept.append(f"saving to {src.sink.path}")
        note = "kept: " + ", ".join(kept) + "; the timeline starts over"
        self.push_screen(InterfacePicker(src.interface, note), self._picked)

    def _switchable(self) -> Capture | None:
        """The capture to switch away from; None (and a notification saying why) when the
        source is not a live capture or a switch is already under way."""
        src = self.source
        if not isinstance(src, CAPTURES):
            self.notify("this source is not a live capture", severity="warning", markup=False)
            return None
        if self.switching is not None:
            self.notify(f"already switching to {self.switching}", markup=False)
            return None
        return src

    def _picked(self, name: str | None) -> None:
        if name:
            self.switch_interface(name)

    def switch_interface(self, name: str) -> None:
        """Capture on interface ``name`` instead, with a fresh timeline (UI thread).

        The new capture is opened first, the same way as the first one (the packet ring with
        root, else dumpcap): if that fails (no such interface, no permission)
        one notification says why and the old capture goes on. Then the old capture stops
        and the views start over. Saving goes on into the same file, when the new
        interface gives the same kind of frames; otherwise the switch is refused.
        """
        src = self._switchable()
        if src is None:
            return
        self.switching = name
        self._open_and_stop(name, src, self.session.stop)

    @work(thread=True, exclusive=True, group="switch", exit_on_error=False)
    def _open_and_stop(self, name: str, old: Capture, old_stop: threading.Event) -> None:
        try:
            new = open_capture(name, bpf=old.bpf, snaplen=old.snaplen, buffer_mb=old.buffer_mb)
        except LiveError as e:
            self.post_message(SwitchFailed(name, str(e)))
            return
        except Exception as e:
            self.post_message(SwitchFailed(name, f"{type(e).__name__}: {e}"))
            return
        sink = old.sink
        if sink is not None and new.linktype != sink.linktype:
            new.close()
            def kind(linktype: int) -> str:
                return SUPPORTED_LINKTYPES.get(linktype, f"link type {linktype}") + " frames"

            have, got = kind(sink.linktype), kind(new.linktype)
            self.post_message(SwitchFailed(name, f"saving to {sink.path}, which holds {have}; {name} gives "
                                           f"{got} and a pcap file holds one kind. To save {name}, quit "
                                           f"and run tcpview live -i {name} -w ANOTHER-FILE"))
            return
        self._pending = new
        old_stop.set()  # the feed stops reading within a poll (0.1 s)
        old.sink = None  # the file goes on with the new capture: close() must leave it open
        old.close()  # waits until the reader has left the ring
        new.sink = sink
        self.post_message(CaptureSwitched(new, old))

    def on_switch_failed(self, message: SwitchFailed) -> None:
        self.switching = None
        self.notify(safe(message.error), title=f"cannot capture on {safe(message.interface)}",
                    severity="error", timeout=12, markup=False)

    def on_capture_switched(self, message: CaptureSwitched) -> None:
        self.switching = None
        self._pending = None
        new = message.source
        self.session.switch(new)
        self._drops_told, self._error_told = 0, None
        self._started_over()
        self._update_status()
        saving = f"; still saving to {new.sink.path}" if new.sink is not None else ""
        self.notify(f"capturing on {new.interface}: the timeline starts over{saving}", title="interface",
                    markup=False)
        if self._on_switch is not None:
            self._on_switch(new)

    def _reset_views(self) -> None:
        """Point every view at the fresh capture's timeline (see the app's), the kernel pane too."""
        self._main(PlayerBar).source_name = safe(self.source.name)
        pane = self._main(KernelPane)
        pane.results, pane.snap_ts = {}, None
        self.processes = ProcessWatch()  # connection ids start over
        self.chrono = ChronoWatch()
        self._main(ConnectionTable).set_processes({}, {})
        super()._reset_views()
        if self.kernel_on:
            self._read_kernel()

    # -- the kernel's view -----------------------------------------------------------------
    def _kernel_rows(self, cid: int) -> list[tuple[float, int, int]]:
        """The kernel's traced state changes of connection ``cid``'s endpoints here."""
        c = self.tl.conns.get(cid)
        if c is None or self.kernel_log is None:
            return []
        return self.kernel_log.rows_for((c.client_ip_text(), c.cport), (c.server_ip_text(), c.sport), c.first_ts)

    @work(thread=True, exclusive=True, group="kernel", exit_on_error=False)
    def _read_kernel(self) -> None:
        if not self._kernel_busy.acquire(blocking=False):
            return
        try:
            tl, watch = self.tl, self.processes
            self._kernel_read_at = start = time.monotonic()
            try:
                snap = snapshot()
            except OSError:
                return
            finally:
                self._kernel_cost = time.monotonic() - start
            results = {}
            if self.kernel_on:  # with --kernel, the traced states at the cursor; else the table's now
                results = (compare_trace(tl, self.kernel_log, self.player.query_time())
                           if self.kernel_log is not None else compare(tl, snap))
            found = (watch.infos(), watch.texts()) if watch.update(tl, snap) else None
            self.chrono.update(tl, snap)
        finally:
            self._kernel_busy.release()
        self.post_message(KernelRead(snap, results, found))

    def on_kernel_read(self, message: KernelRead) -> None:
        if message.processes is not None:
            self._main(ConnectionTable).set_processes(*message.processes)  # shown on the next tick
        if not self.kernel_on:
            return
        pane = self._main(KernelPane)
        pane.results, pane.snap_ts = message.results, message.snap.ts
        self._update_kernel_pane()

    def _update_kernel_pane(self) -> None:
        if not self.kernel_on:
            return
        pane = self._main(KernelPane)
        pane.update_view(self.tl, self._main(ConnectionTable).selected, self.player.query_time() is not None)

    def refresh_views(self, force: bool = False, settle: bool = True) -> None:
        super().refresh_views(force, settle)
        if settle:  # the pane's "read N s ago" would otherwise repaint it on every tick
            self._update_kernel_pane()

    def on_connection_table_row_highlighted(self, message: ConnectionTable.RowHighlighted) -> None:
        self._update_kernel_pane()

    def action_toggle_kernel(self) -> None:
        """Show or hide the kernel's view."""
        self.kernel_on = not self.kernel_on
        pane = self._main(KernelPane)
        pane.set_class(self.kernel_on, "-on")
        if self.kernel_on:
            self._read_kernel()
            self._update_kernel_pane()

    def action_kernel_differences(self) -> None:
        """Filter the table to the connections the kernel disagrees with."""
        if not self.kernel_on:
            self.action_toggle_kernel()
            self.notify("reading the kernel's table; press D again in a second", markup=False)
            return
        diff = self._main(KernelPane).differing()
        if not diff:
            self.notify("the kernel agrees with every captured connection of this host", markup=False)
            return
        self.action_set_filter(" ".join(f"id:{i}" for i in diff))
