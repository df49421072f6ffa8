"""The stream pane: what the selected connection carried, both directions in order, as
Wireshark's Follow TCP Stream puts it together (:mod:`tcpview.engine.analysis.follow`), in the
ladder's place (``f`` switches). Text with anything unprintable escaped (``\\xNN``), or a
hex dump (``x``); bytes the capture never had are a marked gap, never filled in.

Frames' bytes come from the source's frame store (a capture file is read again; a live
source keeps its recent frames), so the pane is built when it is shown or the connection
changes, not on every tick, and on a worker thread: the lines are posted back.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.binding import Binding
from textual.strip import Strip

from ...engine.analysis.follow import Follow, follow_connection, stream_lines
from ...engine.timeline.timeline import Timeline
from ...textutil import plural
from ..messages import WidgetMessage
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css


def wrap_escaped(text: str, width: int) -> list[str]:
    """``text`` (as :func:`~tcpview.engine.analysis.follow.escaped` makes it) in pieces of at most
    ``width``, none ending inside an escape (``\\xNN``, ``\\r``): it moves whole to the next."""
    pieces = []
    i = 0
    while len(text) - i > width:
        cut = i + width
        back = text.rfind("\\", max(i + 1, cut - 3), cut)
        if back >= 0 and back + (4 if text[back + 1: back + 2] == "x" else 2) > cut:
            cut = back
        pieces.append(text[i:cut])
        i = cut
    pieces.append(text[i:])
    return pieces


class StreamPane(VirtualList):
    """The selected connection's payload, in order."""

    BINDINGS = [
        *cursor_bindings("stream", "line", "First line", "Last line"),
        Binding("x", "toggle_hex", "Hex", id="stream.hex", tooltip="Hex dump / escaped text"),
    ]
    COMPONENT_CLASSES = list_classes("stream-pane", "node0", "node1", "head", "gap")
    DEFAULT_CSS = list_css("StreamPane", "stream-pane") + """
    StreamPane { height: 1fr; }
    StreamPane > .stream-pane--node0 { color: $tcp-data; }
    StreamPane > .stream-pane--node1 { color: $tcp-syn; }
    StreamPane > .stream-pane--head { color: $text-muted; }
    StreamPane > .stream-pane--gap { color: $tcp-loss; text-style: bold; }
    """
    FOLLOWS_END = False

    @dataclass
    class Followed(WidgetMessage):
        """A worker followed the connection for ``key`` (what :meth:`StreamPane.show` asked)."""

        key: tuple
        follow: Follow
        names: tuple[str, str]
        lines: list[tuple[int, str]]
        as_hex: bool

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.as_hex = False
        self.lines: list[tuple[int, str]] = []
        """The stream's lines, as :func:`stream_lines` makes them."""
        self.rows: list[tuple[int, str]] = []
        """Those lines as shown: text longer than the pane wraps (see :meth:`_rewrap`)."""
        self._made = 0  # bumped whenever the lines are made anew
        self._wrapped: tuple[int, int] | None = None  # (the lines' _made, width) the rows are of
        self.follow_info: Follow | None = None
        self._names: tuple[str, str] = ("", "")
        self._key: tuple | None = None

    def show(self, tl: Timeline, cid: int | None, get, t: float | None) -> None:
        """Follow connection ``cid`` up to time t, frames' bytes from ``get`` (frame number ->
        ``(linktype, bytes)`` or None)."""
        c = tl.conns.get(cid)
        n = c.count_at(t) if c is not None else -1
        conn = (id(tl), cid, tl.generation)
        if self._key == (*conn, n):
            return
        f = self.follow_info
        if self._key is None or self._key[:3] != conn or f is None or n < f.fed:
            f = None  # another connection, or the cursor went back: from the start
            if self._key is None or self._key[:3] != conn:  # not the old connection's meanwhile
                self.follow_info, self.lines = None, []
                self._rewrap()
        self._key = (*conn, n)
        if n <= 0:
            self.follow_info, self.lines = None, []
            self._rewrap()
        else:
            self._follow(self._key, tl, cid, get, t, f, self.as_hex)

    @work(thread=True, exclusive=True, group="stream-pane", exit_on_error=False)
    def _follow(self, key: tuple, tl: Timeline, cid: int, get, t: float | None, f: Follow | None,
                as_hex: bool) -> None:
        """Follow the connection off the UI thread (its frames are read here) and post the lines
        back; a growing connection goes on from the follow shown (a copy: that one stays)."""
        c = tl.conns[cid]
        f = follow_connection(tl, cid, get, t, f.copy() if f is not None else None)
        ends = (c.client_text(), c.server_text())
        first = 0 if f.node_of(0) == 0 else 1
        names = (f"{ends[first]} → {ends[1 - first]}", f"{ends[1 - first]} → {ends[first]}")
        self.post_message(self.Followed(self, key, f, names, stream_lines(f, names, as_hex), as_hex))

    @on(Followed)
    def _followed(self, message: Followed) -> None:
        message.stop()
        if message.key != self._key:  # (what is no longer asked for is dropped)
            return
        self.follow_info, self._names, self.lines = message.follow, message.names, message.lines
        if message.as_hex != self.as_hex:  # x was pressed meanwhile
            self.lines = stream_lines(message.follow, message.names, self.as_hex)
        self._rewrap()

    def action_toggle_hex(self) -> None:
        self.as_hex = not self.as_hex
        if self.follow_info is not None:
            self.lines = stream_lines(self.follow_info, self._names, self.as_hex)
        self._rewrap()

    def _rewrap(self, new_lines: bool = True) -> None:
        """Rows for the lines at the pane's width: the stream's text wraps, as in Wireshark's
        Follow window, so nothing of it is out of sight; a hex dump's lines, chunk heads and
        gap marks are cut at the edge (they say nothing past it that matters)."""
        self._made += new_lines
        width = max(16, self.scrollable_content_region.width)
        if self._wrapped != (self._made, width):
            self._wrapped = (self._made, width)
            rows: list[tuple[int, str]] = []
            for kind, text in self.lines:
                if kind > 1 or self.as_hex or len(text) <= width:
                    rows.append((kind, text))
                else:
                    rows += [(kind, piece) for piece in wrap_escaped(text, width)]
            self.rows = rows
            self.cursor = min(self.cursor, max(0, len(rows) - 1))
        self.rows_changed()

    def on_resize(self, event) -> None:
        self._rewrap(new_lines=False)
        super().on_resize(event)

    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int) -> Hashable:
        return (index, self._wrapped)

    def render_header(self, width: int, base: Style) -> Strip:
        f = self.follow_info
        if f is None:
            text = "reading the payload…" if self._key is not None and self._key[3] > 0 else "no payload"
        else:
            text = self._header_text(width)
        return Strip([Segment(text[:width].ljust(width), base + self._style("stream-pane--header"))], width)

    def _header_text(self, width: int) -> str:
        """Both directions' names and byte counts, in ``width`` columns: the longest form that
        fits (the second direction as ``back`` when both names do not fit; at 80 columns
        two IPv4 endpoints do)."""
        f = self.follow_info
        assert f is not None
        first, second = (plural(len(f.stream(k)), "byte") for k in (0, 1))
        mode = "hex" if self.as_hex else "text"
        forms = [f"{self._names[0]}: {first}   {self._names[1]}: {second}   ({mode}; x switches)",
                 f"{self._names[0]}: {first}   {self._names[1]}: {second}   ({mode})",
                 f"{self._names[0]}: {first}   back: {second}   ({mode})",
                 f"{self._names[0]}: {first}   back: {second}"]
        return next((t for t in forms if len(t) <= width), forms[-1])

    def render_row(self, index: int, width: int, base: Style, is_cursor: bool) -> Strip:
        kind, text = self.rows[index]
        style = base + self._style(("stream-pane--node0", "stream-pane--node1", "stream-pane--head",
                                    "stream-pane--gap")[kind])
        if is_cursor:
            style = style + self._style("stream-pane--cursor")
        return Strip([Segment(text[:width].ljust(width), style)], width)
