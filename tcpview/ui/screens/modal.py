"""A modal screen with a scrolling body (the detail pane, the key help)."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.screen import ModalScreen


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
