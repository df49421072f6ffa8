"""``?``: every key binding of the app it is shown in, grouped, and the filter's terms, in a
scrollable modal."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ..modal import ScrollingModal
from .keys import FILTER_HELP, key_rows

INTRO = (
    "tcpview shows every TCP connection's state on BOTH ends, as of the cursor time. "
    "The table lists connections; the ladder below shows the selected one's segments "
    "(client left, server right); the line under it says why a state changed."
)


class HelpScreen(ScrollingModal):
    """The key table of the app it is shown in (``tcpview live`` has keys of its own), then
    the filter's terms."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
        Binding("up,k", "scroll('up')", "Up", show=False),
        Binding("down,j", "scroll('down')", "Down", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 100%; max-width: 100; height: 100%; border: round $primary; background: $surface;
        border-subtitle-color: $text-muted;
    }
    HelpScreen VerticalScroll { padding: 0 1; }
    HelpScreen #help-intro { color: $text-muted; margin-bottom: 1; }
    HelpScreen #help-filter { margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "tcpview keys"
            box.border_subtitle = "esc close"
            with VerticalScroll():
                yield Static(Text(INTRO), id="help-intro")
                yield Static(self._table(type(self.app).BINDINGS), id="help-keys")
                yield Static(filter_text(), id="help-filter")

    @staticmethod
    def _table(app_bindings=None) -> Table:
        """The keys of an app with ``app_bindings`` (see :func:`key_rows`), by section."""
        table = Table(box=None, show_header=False, pad_edge=False, expand=True)
        table.add_column("keys", style="bold", no_wrap=True, min_width=12)
        table.add_column("what", ratio=1)
        section = None
        for sec, keys, what in key_rows(app_bindings):
            if sec != section:
                if section is not None:
                    table.add_row("", "")
                table.add_row(Text(sec, style="bold underline"), "")
                section = sec
            table.add_row(Text(keys), Text(what))
        return table


def filter_text() -> Text:
    """The filter's terms (:data:`~tcpview.ui.screens.help.keys.FILTER_HELP`) under a heading,
    what is between backticks in bold."""
    text = Text("Filter", style="bold underline")
    text.append("\n")
    for i, part in enumerate(FILTER_HELP.split("`")):
        text.append(part, style="bold" if i % 2 else "")
    return text
