"""A modal screen with a scrolling body (the detail panes, the key help), and the keys and
frame the detail panes share."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

BOX_WIDTH = 110
"""The widest a detail pane's box is (narrower screens: their width)."""


def detail_bindings(scope: str, close_tooltip: str) -> list[BindingType]:
    """A detail pane's keys: esc, q or enter closes it, the arrows (and k, j) scroll it; their
    ids are ``<scope>.close``, ``<scope>.up`` and ``<scope>.down`` (for keymaps)."""
    return [
        Binding("escape,q,enter", "dismiss", "Close", id=f"{scope}.close", tooltip=close_tooltip),
        Binding("up,k", "scroll('up')", "Up", show=False, id=f"{scope}.up"),
        Binding("down,j", "scroll('down')", "Down", show=False, id=f"{scope}.down"),
    ]


def detail_css(screen: str) -> str:
    """The frame of the detail pane whose class is named ``screen``: a box of up to
    :data:`BOX_WIDTH` columns in the middle of the screen, around a scrolling body."""
    return f"""
    {screen} {{ align: center middle; }}
    {screen} > Vertical {{
        width: 100%; height: 100%; max-width: {BOX_WIDTH}; border: round $primary; background: $surface;
        border-title-color: $text; border-subtitle-color: $text-muted;
    }}
    {screen} VerticalScroll {{ height: 1fr; padding: 0 1; }}
    """


class ScrollingModal(ModalScreen[None]):
    """A modal screen whose ``VerticalScroll`` body the ``scroll`` action moves (bind it to
    the arrow keys in ``BINDINGS``: ``scroll('up')``, ``scroll('down')``)."""

    def action_scroll(self, direction: str) -> None:
        """Scroll the body a line up (``up``) or down."""
        scroller = self.query_one(VerticalScroll)
        if direction == "up":
            scroller.scroll_up(animate=False)
        else:
            scroller.scroll_down(animate=False)
