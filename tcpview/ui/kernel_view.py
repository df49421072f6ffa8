"""The kernel's view beside a live capture on the same host (``tcpview live``, key ``K``).

For every captured connection with an endpoint on this host, the kernel's own state of that
endpoint (from /proc/net/tcp, what ``ss`` shows) is put beside the state tcpview inferred from
the packets (:func:`tcpview.sockets.compare`). They disagree when packets were missed (a
filter, kernel drops, a capture started mid-connection) or when timers differ. The pane
shows the selected connection side by side and lists the connections that disagree; ``D``
filters the table down to them.

:class:`LiveApp` is the capture viewer plus this pane; everything else is the viewer's.
The kernel table is read and compared on a worker thread at most once a second; only the
UI thread touches widgets.
"""

from __future__ import annotations

import threading
import time

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from ..model import STATE_NAMES
from ..sockets import Comparison, KernelSnapshot, compare, snapshot
from .app import TcpviewApp
from .conn_table import ConnectionTable

MAX_LISTED = 12


class KernelRead(Message):
    """A kernel snapshot was read and compared with the timeline (replaceable)."""

    def __init__(self, snap: KernelSnapshot, results: dict[int, Comparison]) -> None:
        super().__init__()
        self.snap = snap
        self.results = results

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, KernelRead)


class KernelPane(Widget):
    """Two lines: the selected connection as the kernel and the capture see it, and which
    connections the two disagree on."""

    COMPONENT_CLASSES = {"kernel--label", "kernel--agree", "kernel--differ", "kernel--dim"}

    DEFAULT_CSS = """
    KernelPane { height: 2; padding: 0 1; display: none; background: $panel; }
    KernelPane.-on { display: block; }
    KernelPane > .kernel--label { text-style: bold; color: $text-primary; }
    KernelPane > .kernel--agree { color: $state-established; }
    KernelPane > .kernel--differ { text-style: bold; color: $tcp-anomaly; }
    KernelPane > .kernel--dim { color: $text-muted; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.results: dict[int, Comparison] = {}
        self.snap_ts: float | None = None
        self.cid: int | None = None
        self.texts: tuple[str, str] = ("", "")
        self.past = False

    def differing(self) -> list[int]:
        """Ids of the connections whose states the kernel disagrees with."""
        return sorted(cid for cid, r in self.results.items() if r.disagree)

    def update_view(self, tl, cid: int | None, past: bool) -> None:  # type: ignore[no-untyped-def]
        """Show connection ``cid``; ``past`` when the cursor is not at the newest packet."""
        self.cid, self.past = cid, past
        if cid is not None and cid < len(tl.conns):
            c = tl.conns[cid]
            self.texts = (c.client_text(), c.server_text())
        self.refresh()

    def render(self) -> Text:
        st = self.get_component_rich_style
        label, agree, differ, dim = (st(f"kernel--{k}", partial=True) for k in ("label", "agree", "differ", "dim"))
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append("kernel ", label)
        if self.snap_ts is None:
            out.append("reading the socket table…", dim)
            return out
        r = self.results.get(self.cid) if self.cid is not None else None
        if self.cid is None:
            out.append("no connection selected", dim)
        elif r is None:
            out.append(f"#{self.cid} was not in the capture when the table was read", dim)
        elif r.kernel == (None, None):
            out.append(f"#{self.cid}: neither end is on this host", dim)
        else:
            out.append(f"#{self.cid} ")
            for side, name in ((0, "client"), (1, "server")):
                k, s = r.kernel[side], r.sniffed[side]
                out.append(f"{name} {self.texts[side]} ")
                if k is None:
                    out.append("(another host)", dim)
                else:
                    same = k == s
                    out.append(STATE_NAMES[k], agree if same else differ)
                    out.append(f" (capture {STATE_NAMES[s]})" if not same else " (capture same)", dim)
                out.append("   ")
            out.append("≠ differs" if r.disagree else "✓ agrees", differ if r.disagree else agree)
        out.append("\n")
        local = sum(1 for r in self.results.values() if r.kernel != (None, None))
        diff = self.differing()
        age = time.time() - self.snap_ts
        out.append(f"read {age:.1f} s ago: ", dim)
        if diff:
            listed = " ".join(f"#{i}" for i in diff[:MAX_LISTED]) + (" …" if len(diff) > MAX_LISTED else "")
            out.append(f"{len(diff)} of {local} local connections differ: ", differ)
            out.append(listed)
            out.append("   D: show them in the table", dim)
        else:
            out.append(f"all {local} local connections agree", agree)
        if self.past:
            out.append("   (the kernel's view is of now; the cursor is in the past)", dim)
        return out


class LiveApp(TcpviewApp):
    """The capture viewer with the kernel's view a key away (``K``)."""

    BINDINGS = [
        *TcpviewApp.BINDINGS,
        Binding("K", "toggle_kernel", "Kernel", id="live.kernel",
                tooltip="Show the kernel's state of this host's sockets beside the captured states"),
        Binding("D", "kernel_differences", "Differences", show=False, id="live.differences",
                tooltip="Filter the table to the connections the kernel disagrees with"),
    ]

    def __init__(self, source, **opts) -> None:  # type: ignore[no-untyped-def]
        super().__init__(source, **opts)
        self.kernel_on = False
        self._kernel_busy = threading.Lock()
        self._drops_told = 0
        self._error_told: str | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield from super().compose()
        yield KernelPane(id="kernel")

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self._kernel_tick, name="kernel-tick")

    def _kernel_tick(self) -> None:
        self._check_drops()
        if self.kernel_on:
            self._read_kernel()

    def _check_drops(self) -> None:
        """Say so when the kernel dropped packets (states may then be wrong) or the capture
        hit a problem it carries on through (the interface went down)."""
        error = getattr(self.source, "error", None)
        if error and error != self._error_told:
            self._error_told = error
            self.notify(str(error), title="capture", severity="error", timeout=15, markup=False)
        status = getattr(self.source, "status", None)
        if status is None:
            return
        try:
            dropped = int(status().get("dropped", 0))
        except Exception:  # noqa: BLE001 - a status problem must not stop the app
            return
        if dropped > self._drops_told:
            self.notify(f"the kernel dropped {dropped - self._drops_told} packets (capture ring full; "
                        f"{dropped} in all): states may be off — K compares with the kernel",
                        title="packets lost", severity="warning", timeout=8, markup=False)
            self._drops_told = dropped

    @work(thread=True, exclusive=True, group="kernel", exit_on_error=False)
    def _read_kernel(self) -> None:
        if not self._kernel_busy.acquire(blocking=False):
            return
        try:
            snap = snapshot()
            results = compare(self.tl, snap)
        finally:
            self._kernel_busy.release()
        self.post_message(KernelRead(snap, results))

    def on_kernel_read(self, message: KernelRead) -> None:
        pane = self.query_one(KernelPane)
        pane.results, pane.snap_ts = message.results, message.snap.ts
        self._update_kernel_pane()

    def _update_kernel_pane(self) -> None:
        if not self.kernel_on:
            return
        pane = self.query_one(KernelPane)
        pane.update_view(self.tl, self.query_one(ConnectionTable).selected, self.player.query_time() is not None)

    def refresh_views(self, force: bool = False) -> None:
        super().refresh_views(force)
        self._update_kernel_pane()

    def on_connection_table_selected(self, message: ConnectionTable.Selected) -> None:
        super().on_connection_table_selected(message)
        self._update_kernel_pane()

    def action_toggle_kernel(self) -> None:
        """Show or hide the kernel's view."""
        self.kernel_on = not self.kernel_on
        pane = self.query_one(KernelPane)
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
        diff = self.query_one(KernelPane).differing()
        if not diff:
            self.notify("the kernel agrees with every captured connection of this host", markup=False)
            return
        self.action_set_filter(" ".join(f"id:{i}" for i in diff))


def run_live_app(source, **opts) -> int:  # type: ignore[no-untyped-def]
    """Like :func:`tcpview.ui_cli.run_app`, with the kernel pane (``tcpview live``)."""
    import sys

    from ..textutil import safe

    app = LiveApp(source, **opts)
    app.run()
    if app.load_error:
        print(f"tcpview: error: {safe(app.load_error)}", file=sys.stderr)
        return 2
    return app.return_code or 0
