"""The capture's status line (``tcpview live``): how it captures, what it captured, what it lost.

``lo via dumpcap  captured N · dropped N · skipped N · saved N``: the interface and the way of
capture (tcpview's own ``packet ring``, or Wireshark's ``dumpcap``), packets the capture
delivered, packets dropped because the capture buffer was full (the states shown may then be
wrong; dumpcap tells its drops only when it stops, so until then the figure is ``?``), frames the
decoder could not use (not TCP, truncated, IP fragments), packets written with ``-w``, and
connections that left the timeline to keep within ``--memory`` (``evicted``). With several
hosts (``live --remote``), each host's drops follow, and a host that dropped out says so.
Always visible, so nothing is lost silently; the line turns to the warning colour once
the kernel has dropped anything, and to the error colour while the capture reports an
error (the interface went down). The app updates it about once a second.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widget import Widget

from ...sources.live.remote import short_name
from ...textutil import safe
from ..fmt import ellipsize_left
from .repaint import PaintedText


class CaptureStatus(PaintedText, Widget):
    """One line of capture counts; ``-dropped`` and ``-error`` classes highlight losses."""

    COMPONENT_CLASSES = {"capture-status--label", "capture-status--figure", "capture-status--lost",
                         "capture-status--error"}

    DEFAULT_CSS = """
    CaptureStatus { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    CaptureStatus > .capture-status--label { color: $text-muted; }
    CaptureStatus > .capture-status--figure { color: $text; }
    CaptureStatus > .capture-status--lost { text-style: bold; color: $text-warning; }
    CaptureStatus > .capture-status--error { text-style: bold; color: $text-error; }
    CaptureStatus.-dropped { background: $warning-muted; }
    CaptureStatus.-error { background: $error-muted; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.interface = ""
        self.method: str | None = None
        self.captured = 0
        self.dropped: int | None = 0
        self.skipped = 0
        self.saved: int | None = None
        self.evicted = 0
        self.save_path: str | None = None
        self.error: str | None = None
        self.reasons: dict[str, int] = {}
        self.hosts: list[tuple[str, int | None, bool]] = []

    def show(self, interface: str, status: Mapping[str, int], reasons: Mapping[str, int] | None = None,
             save_path: str | None = None, error: str | None = None, method: str | None = None,
             hosts: list[dict] | None = None) -> None:
        """Show a capture's :meth:`~tcpview.sources.live.capture.LiveSource.status`.

        Args:
            interface: the interface captured on.
            status: ``captured``, ``dropped`` (absent while unknown), ``skipped``, (when saving)
                ``saved`` and (once the memory budget made connections leave the timeline) ``evicted``.
            reasons: skipped frames by reason (the timeline's ``skipped``), for the tooltip.
            save_path: the ``-w`` file, when saving.
            error: a problem the capture carries on through (None: none).
            method: how the capture goes (``packet ring``, ``dumpcap``), shown after the interface.
            hosts: several hosts' captures (``live --remote``): each as ``{"host", "dropped",
                "state"}`` (:meth:`~tcpview.sources.live.remote_merge.RemoteCapture.hosts`).
        """
        reasons = dict(reasons or {})
        per_host = [(h["host"], h["dropped"], h["state"] == "ended") for h in hosts or []]
        new = (interface, method, int(status.get("captured", 0)),
               int(status["dropped"]) if "dropped" in status else None,
               int(status.get("skipped", sum(reasons.values()))),
               int(status["saved"]) if "saved" in status else None, int(status.get("evicted", 0)), save_path,
               error, reasons, per_host)
        old = (self.interface, self.method, self.captured, self.dropped, self.skipped, self.saved, self.evicted,
               self.save_path, self.error, self.reasons, self.hosts)
        if new == old:
            return
        (self.interface, self.method, self.captured, self.dropped, self.skipped, self.saved, self.evicted,
         self.save_path, self.error, self.reasons, self.hosts) = new
        self.set_class(bool(self.dropped), "-dropped")
        self.set_class(bool(error), "-error")
        tips = [f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        notes = ["dropped ?: dumpcap tells its drops when it stops"] if self.dropped is None else []
        if tips:
            notes.append("skipped: " + ", ".join(tips))
        self.tooltip = "; ".join(notes) or None
        self.refresh_if_changed()  # a counter's digits, not the whole line

    def plain(self) -> str:
        """The line as plain text (what it shows, without styles)."""
        return self.build().plain

    def build(self) -> Text:
        st = self.get_component_rich_style
        label, figure, lost, err = (st(f"capture-status--{k}", partial=True)
                                    for k in ("label", "figure", "lost", "error"))
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(safe(self.interface), figure)  # Text, not markup: never interpreted
        if self.method:
            out.append(" via ", label)
            out.append(self.method, figure)
        out.append("  ")
        lost_any = bool(self.dropped)
        parts: list[tuple[str, int | None, bool]] = [("captured", self.captured, False),
                                                     ("dropped", self.dropped, lost_any),
                                                     ("skipped", self.skipped, False)]
        if self.saved is not None:
            parts.append(("saved", self.saved, False))
        if self.evicted:  # connections that left the timeline to keep within --memory
            parts.append(("evicted", self.evicted, False))
        for i, (name, n, bad) in enumerate(parts):
            if i:
                out.append(" · ", label)
            out.append(f"{name} ", lost if bad else label)
            out.append("?" if n is None else f"{n:,}", lost if bad else figure)  # exact: figures to trust
        if len(self.hosts) > 1:  # each host's drops; one that dropped out, in the error colour
            out.append("  │", label)
            for name, dropped, gone in self.hosts:
                out.append(" ")
                out.append(safe(short_name(name)), err if gone else figure)
                if gone:
                    out.append(" gone", err)
                else:
                    out.append(" dropped ", lost if dropped else label)
                    out.append("?" if dropped is None else f"{dropped:,}", lost if dropped else figure)
        if self.saved is not None and self.save_path:
            # the file's end is what tells (a ring's number and time): cut from the left to fit
            room = (self.size.width or 200) - out.cell_len - 3
            if room >= 8:
                out.append(f" → {ellipsize_left(safe(self.save_path), room)}", label)
        if self.dropped:
            out.append("   packets were dropped: states may be off (K compares)", lost)
        if self.error:
            out.append(f"   {safe(self.error)}", err)
        return out
