"""The detail pane: scapy's full dissection and a hex dump of one frame.

Everything shown comes from the network, so it is shown as ``rich.text.Text`` (never
markup) after control characters were made visible (``tcpview.sources.frames``).
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ...sources.dissect import Dissection
from ...textutil import safe
from ..fmt import ellipsize_path
from .modal import BOX_WIDTH, ScrollingModal, detail_bindings, detail_css


class DetailScreen(ScrollingModal):
    """A frame in full: the segment's line, scapy's field tree, the hex dump."""

    BINDINGS = detail_bindings("detail", "Close the detail pane")

    DEFAULT_CSS = detail_css("DetailScreen") + """
    DetailScreen #detail-head { color: $text-accent; padding: 0 1; height: auto; }
    DetailScreen #detail-show { color: $text; }
    DetailScreen #detail-hex { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, title: str, headline: str, dissection: Dissection | None, missing: str = "",
                 source: str | None = None) -> None:
        """``title``: the box's title (plain text); ``source``: the capture file the frame came
        from, said after the title (several captures merged), as the user named it."""
        super().__init__()
        self.title_text = title
        self.source = source
        self.headline = headline
        self.dissection = dissection
        self.missing = missing

    def fitted_title(self, width: int) -> str:
        """The title in a box ``width`` columns wide: the file's path loses its middle, never
        its name, to fit (the border's corners and the lines and spaces around the title take 6)."""
        if self.source is None:
            return self.title_text
        room = width - 6 - len(self.title_text) - len("  from ")
        return f"{self.title_text}  from {ellipsize_path(safe(self.source), max(room, 12))}"

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self._title()
            box.border_subtitle = "esc close"
            yield Static(Text(self.headline), id="detail-head")
            with VerticalScroll():
                if self.dissection is None:
                    yield Static(Text(self.missing or "the bytes of this frame are no longer available"),
                                 id="detail-show")
                else:
                    yield Static(Text(self.dissection.summary), id="detail-summary")
                    yield Static(Text(self.dissection.show.rstrip("\n")), id="detail-show")
                    yield Static(Text(self.dissection.hexdump.rstrip("\n")), id="detail-hex")

    def _title(self) -> str:
        # the box is the screen's width up to BOX_WIDTH; the title is markup: the name escaped
        return escape(self.fitted_title(min(self.app.size.width, BOX_WIDTH)))

    def on_resize(self) -> None:
        """The title fits the box anew."""
        self.query_one(Vertical).border_title = self._title()
