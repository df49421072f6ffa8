"""The kernel pane (``K`` in ``tcpview live``): the kernel's own state of this host's endpoints
beside the states tcpview inferred from the packets.

Four lines: the selected connection as the kernel (sock_diag, what ``ss`` shows) and the
capture see it; for each of its ends on this host, the process holding the socket and its
tcp_info as ``ss -ti`` writes it; and which connections the two disagree on. They disagree when packets
were missed (a filter, kernel drops, a capture started mid-connection) or when timers
differ. The app reads and compares the table (:func:`tcpview.kernel.compare.compare`) and
hands the results over; the pane only shows them.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widget import Widget

from ...engine.core.tcp import STATE_NAMES
from ...kernel.compare import Comparison
from ...textutil import safe
from .repaint import PaintedText

MAX_LISTED = 12
"""At most this many differing connections are listed by id."""


class KernelPane(PaintedText, Widget):
    """Four lines: the selected connection as the kernel and the capture see it, its ends'
    processes and tcp_info, and which connections the two disagree on."""

    COMPONENT_CLASSES = {"kernel--label", "kernel--agree", "kernel--differ", "kernel--dim"}

    DEFAULT_CSS = """
    KernelPane { height: 4; padding: 0 1; display: none; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
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
        self.recorded = False
        """The kernel's events a capture file keeps (a replay): its states at the cursor, no
        socket table of this host."""

    def differing(self) -> list[int]:
        """Ids of the connections whose states the kernel disagrees with."""
        return sorted(cid for cid, r in self.results.items() if r.disagree)

    def update_view(self, tl, cid: int | None, past: bool) -> None:
        """Show connection ``cid``; ``past`` when the cursor is not at the newest packet."""
        self.cid, self.past = cid, past
        c = tl.conns.get(cid)
        if c is not None:
            self.texts = (c.client_text(), c.server_text())
        self.refresh_if_changed()

    def _sockets(self, out: Text, r: Comparison | None, label, dim) -> None:
        """Two lines: each end's socket here, its process and its tcp_info (``ss -ti``)."""
        for side, name in ((0, "client"), (1, "server")):
            s = r.sockets[side] if r is not None else None
            out.append(f"  {name} ", label)
            if s is None:
                known = r is not None and r.kernel[side] is not None
                gone = "a socket of the capturing host (the file keeps its states)" if self.recorded else \
                    "no socket on this host now"
                out.append(gone if known else "-", dim)
            else:
                p = s.process
                out.append(safe(p.text()) if p is not None else "no process (the kernel alone holds it)")
                if p is not None and p.pid is not None:
                    out.append(f" ({safe(p.user)})", dim)
                out.append("  ")
                if s.info is None:
                    out.append(f"{s.state_name}, no tcp_info", dim)
                else:  # the figures that matter first: the line is cut at the pane's width
                    g = s.info.get
                    out.append(f"rtt {(g('rtt') or 0) / 1000:g}ms cwnd {g('snd_cwnd')} unacked {g('unacked')} "
                               f"retrans {g('total_retrans')}  ")
                    out.append(f"ss -ti: {safe(s.info.ss_text())}", dim)
            out.append("\n")

    def build(self) -> Text:
        st = self.get_component_rich_style
        label, agree, differ, dim = (st(f"kernel--{k}", partial=True) for k in ("label", "agree", "differ", "dim"))
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append("kernel ", label)
        if self.snap_ts is None:
            out.append("the file's kernel events are still to come…" if self.recorded
                       else "reading the socket table…", dim)
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
        self._sockets(out, r, label, dim)
        local = sum(1 for r in self.results.values() if r.kernel != (None, None))
        diff = self.differing()
        age = time.time() - self.snap_ts
        out.append("the file's kernel events at the cursor: " if self.recorded else f"read {age:.1f} s ago: ", dim)
        if diff:
            listed = " ".join(f"#{i}" for i in diff[:MAX_LISTED]) + (" …" if len(diff) > MAX_LISTED else "")
            out.append(f"{len(diff)} of {local} local connections differ: ", differ)
            out.append(listed)
            out.append("   D: show them in the table", dim)
        else:
            out.append(f"all {local} local connections agree", agree)
        if self.past and not self.recorded:
            out.append("   (the kernel's view is of now; the cursor is in the past)", dim)
        return out
