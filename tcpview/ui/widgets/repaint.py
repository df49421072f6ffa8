"""Repaint only what changed on screen: every cell Textual repaints is written to the terminal.

tcpview is used over SSH on slow links, and Textual writes out every line of a widget that is
refreshed, whether its text changed or not. Views are updated on a timer tick while the
cursor plays or new packets arrive, so a widget that refreshes itself on every tick costs a
full repaint of its area several times a second. These mixins compare what a widget would
draw now with what it drew last, and refresh nothing, or only the cells that differ (a
clock's digits, a counter, one column of a row): Textual then writes just those cells.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip

if TYPE_CHECKING:
    # what the mixins are mixed into, for the type checker: their methods call the widget's
    from textual.scroll_view import ScrollView
    from textual.widget import Widget

    _LinesWidget = ScrollView
    _TextWidget = Widget
else:
    _LinesWidget = _TextWidget = object


def _cells(segments: Iterable[Segment]) -> list[tuple[str, object]] | None:
    """(character, style) per cell; None when a character is not one cell wide."""
    out: list[tuple[str, object]] = []
    for text, style, _control in segments:
        if cell_len(text) != len(text):
            return None
        out.extend((ch, style) for ch in text)
    return out


def changed_span(old: Iterable[Segment], new: Iterable[Segment], width: int) -> tuple[int, int]:
    """The columns ``x0 .. x1-1`` where two renderings of one line differ (x0 == x1: none).

    Falls back to the whole ``width`` when a wide character makes cells hard to line up.
    """
    a, b = _cells(old), _cells(new)
    if a is None or b is None:
        return 0, width
    n = min(len(a), len(b))
    x0 = 0
    while x0 < n and a[x0] == b[x0]:
        x0 += 1
    if x0 == len(a) == len(b):
        return 0, 0
    if len(a) != len(b):  # cells are compared column by column: past the shorter, all differ
        return x0, max(len(a), len(b))
    end = len(a)
    while end > x0 and a[end - 1] == b[end - 1]:
        end -= 1
    return x0, end


class PaintedLines(_LinesWidget):
    """Mixin for a :class:`~textual.scroll_view.ScrollView` drawn with the Line API.

    Subclasses implement :meth:`line_strip` (what content line ``y`` shows now) instead of
    ``render_line``; :meth:`repaint_changed` then refreshes only the lines whose strip is not
    the one on screen. A scroll or resize repaints everything, as Textual does anyway.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._painted: dict[int, Strip] = {}
        self._painted_at: tuple | None = None

    def line_strip(self, y: int) -> Strip:
        """The strip content line ``y`` (0 = the top of the visible area) shows now."""
        raise NotImplementedError

    def _paint_frame(self) -> tuple:
        region = self.scrollable_content_region
        return (round(self.scroll_y), region.width, region.height)

    def render_line(self, y: int) -> Strip:
        strip = self.line_strip(y)
        frame = self._paint_frame()
        if frame != self._painted_at:
            self._painted.clear()
            self._painted_at = frame
        self._painted[y] = strip
        return strip

    def repaint_changed(self) -> None:
        """Refresh the visible lines whose content differs from what was painted last."""
        frame = self._paint_frame()
        if frame != self._painted_at:
            self.refresh()
            return
        _top, width, height = frame
        painted = self._painted
        regions: list[Region] = []
        for y in range(height):
            strip = self.line_strip(y)
            before = painted.get(y)
            if before is None:
                regions.append(Region(0, y, width, 1))
            elif strip != before:
                x0, x1 = changed_span(before, strip, width)
                if x1 > x0:
                    regions.append(Region(x0, y, x1 - x0, 1))
        if regions:  # one call: each refresh drops the widget's cached styles
            self.refresh(*regions)


class PaintedText(_TextWidget):
    """Mixin for a widget whose ``render`` returns one :class:`~rich.text.Text`.

    Subclasses implement :meth:`build`; :meth:`refresh_if_changed` refreshes the widget only
    when the text (characters or styles) differs from the one on screen.
    """

    _shown: Text | None = None

    def build(self) -> Text:
        """The text the widget shows now."""
        raise NotImplementedError

    def render(self) -> Text:
        self._shown = self.build()
        return self._shown

    def refresh_if_changed(self) -> bool:
        """Refresh the cells whose text or style differs from what the widget shows.

        Returns:
            True if anything was refreshed.
        """
        shown = self._shown
        if shown is None:  # never drawn: it may not have its styles yet (built when first drawn)
            self.refresh()
            return True
        try:
            new = self.build()
        except KeyError as e:  # its styles are gone: the app is closing (its last messages run)
            if "COMPONENT_CLASSES" not in str(e):
                raise
            return False
        if new == shown:
            return False
        width = self.content_region.width
        old_lines, new_lines = shown.split("\n", allow_blank=True), new.split("\n", allow_blank=True)
        if len(old_lines) != len(new_lines) or not width:
            self.refresh()
            return True
        console = self.app.console
        regions: list[Region] = []
        for y, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)):
            if a == b:
                continue
            x0, x1 = changed_span(a.render(console), b.render(console), width)
            x1 = min(x1, width)
            if x1 > x0:
                regions.append(Region(x0, y, x1 - x0, 1))
        if regions:
            self.refresh(*regions)
        return bool(regions)
