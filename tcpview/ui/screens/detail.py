"""The detail pane: scapy's full dissection and a hex dump of one frame.

Everything shown comes from the network, so it is shown as ``rich.text.Text`` (never
markup) after control characters were made visible (``tcpview.sources.frames``).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ...sources.dissect import Dissection
from .modal import ScrollingModal, detail_bindings, detail_css


class DetailScreen(ScrollingModal):
    """A frame in full: the segment's line, scapy's field tree, the hex dump."""

    BINDINGS = detail_bindings("detail", "Close the detail pane")

    DEFAULT_CSS = detail_css("DetailScreen") + """
    DetailScreen #detail-head { color: $text-accent; padding: 0 1; height: auto; }
    DetailScreen #detail-show { color: $text; }
    DetailScreen #detail-hex { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, title: str, headline: str, dissection: Dissection | None, missing: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.headline = headline
        self.dissection = dissection
        self.missing = missing

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
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
