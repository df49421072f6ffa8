"""A virtualized list with a header line and a row cursor: what the connection table, the
kernel socket table and the ladder have in common.

Like Textual's ``Log``, a :class:`VirtualList` is a ScrollView drawn with the Line API: the
virtual height is the row count (plus the header), ``render_line`` builds only the lines on
screen, and finished row strips are kept in an ``LRUCache`` keyed by what they depend on.
Subclasses supply the rows (:meth:`~VirtualList.row_count`, :meth:`~VirtualList.render_row`,
:meth:`~VirtualList.row_key`) and the header; the cursor, its keys, mouse clicks, scrolling
the cursor into view, following the last row and repainting only the lines that changed are
here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..styles import STATE_FAMILIES, state_css
from .repaint import PaintedLines


def cursor_bindings(scope: str, noun: str, first: str, last: str, *, first_key: str = "ctrl+home",
                    last_key: str = "ctrl+end", last_tooltip: str = "") -> list[Binding]:
    """The cursor keys of a list: up/down (and k/j), page up/down, first and last row.

    Args:
        scope: the binding ids' prefix (``table`` gives ``table.up`` ...), for keymaps.
        noun: what a row is, for the tooltips (``Previous connection``).
        first: description of the first-row key.
        last: description of the last-row key.
        first_key: the key(s) for the first row.
        last_key: the key(s) for the last row.
        last_tooltip: tooltip of the last-row key.
    """
    return [
        Binding("up,k", "cursor_up", "Up", show=False, id=f"{scope}.up", tooltip=f"Previous {noun}"),
        Binding("down,j", "cursor_down", "Down", show=False, id=f"{scope}.down", tooltip=f"Next {noun}"),
        Binding("pageup", "page_up", "Page up", show=False, id=f"{scope}.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id=f"{scope}.page_down"),
        Binding(first_key, "first", first, show=False, id=f"{scope}.first"),
        Binding(last_key, "last", last, show=False, id=f"{scope}.last", tooltip=last_tooltip),
    ]


def list_classes(prefix: str, *names: str) -> set[str]:
    """Component classes of a list: ``PREFIX--header``, ``PREFIX--cursor``, one per state
    family (``PREFIX--state-time-wait`` ...) and ``PREFIX--NAME`` for each extra name."""
    return {f"{prefix}--{n}" for n in ("header", "cursor", *names)} | {f"{prefix}--state-{f}" for f in STATE_FAMILIES}


def list_css(widget: str, prefix: str) -> str:
    """The CSS every list shares: a thin scroll bar, no horizontal scrolling, the header and
    cursor styles (the cursor stands out more while the list has the focus), state colours."""
    return f"""
    {widget} {{ scrollbar-size-vertical: 1; overflow-x: hidden; }}
    {widget} > .{prefix}--header {{ text-style: bold; color: $text-muted; }}
    {widget} > .{prefix}--cursor {{ background: $block-cursor-blurred-background; }}
    {widget}:focus > .{prefix}--cursor {{ background: $block-cursor-background; }}
    """ + state_css(widget, prefix)


class VirtualList(PaintedLines, ScrollView, can_focus=True, inherit_bindings=False):
    """A focusable list drawn with the Line API: line 0 is a header, line ``1 + i`` row ``i``.

    Subclasses implement :meth:`row_count`, :meth:`row_key`, :meth:`render_row` and
    :meth:`render_header`, and may override :meth:`render_empty`, :meth:`cursor_moved`,
    :meth:`header_clicked` and :meth:`row_clicked`. Call :meth:`rows_changed` after the rows
    changed (it drops cached strips, resizes and repaints what differs).
    """

    FOLLOWS_END: ClassVar[bool] = False
    """Putting the cursor on the last row makes it follow rows added later (see ``follow``)."""

    cursor: var[int] = var(0, always_update=True)
    """The index of the row under the cursor."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.follow = self.FOLLOWS_END
        """The cursor sits on the last row and moves with new rows (lists with FOLLOWS_END)."""
        self._cache: LRUCache[tuple, Strip] = LRUCache(512)
        self._styles: dict[str, Style] = {}
        self._base: Style | None = None

    # -- what subclasses provide ----------------------------------------------------------
    def row_count(self) -> int:
        """How many rows there are."""
        raise NotImplementedError

    def row_key(self, index: int) -> Hashable:
        """What the strip of row ``index`` depends on besides the cursor, width and focus
        (cached strips are dropped by :meth:`rows_changed` in any case)."""
        return index

    def render_row(self, index: int, width: int, base: Style, is_cursor: bool) -> Strip:
        """The strip of row ``index``, ``width`` cells wide."""
        raise NotImplementedError

    def render_header(self, width: int, base: Style) -> Strip:
        """The header line."""
        raise NotImplementedError

    def render_empty(self, y: int, width: int, base: Style) -> Strip:
        """Line ``y`` of the screen below the last row (blank; a list may say why it is empty)."""
        return Strip.blank(width, base)

    def cursor_moved(self) -> None:
        """Called when the cursor was set (to another row or the same one)."""

    def header_clicked(self, x: int) -> None:
        """The header line was clicked at column ``x``."""

    def row_clicked(self, index: int, chain: int) -> None:
        """Row ``index`` was clicked (``chain`` 2 for a double click); the cursor is on it."""

    # -- rows -------------------------------------------------------------------------------
    def rows_changed(self, settle: bool = True) -> None:
        """The rows changed: forget their strips, fit the scrollable height, repaint what differs.

        ``settle`` False lets rows added below the visible ones wait to reach the scroll bar
        (a new virtual height repaints the whole list); see :meth:`sync_size`.
        """
        self._cache.clear()
        self.sync_size(settle)
        self.repaint_changed()

    def sync_size(self, settle: bool = True) -> None:
        """Make the scrollable height the row count plus the header.

        Unless ``settle``, rows added below the visible ones (and below the cursor) wait for
        a later call: they are not on screen, and a new virtual size repaints the list.
        """
        size = Size(self.scrollable_content_region.width, self.row_count() + 1)
        current = self.virtual_size
        if size == current:
            return
        if not settle and size.height > current.height:
            bottom = round(self.scroll_y) + self.scrollable_content_region.height
            if current.height >= bottom and self.cursor + 1 < current.height:
                return
        self.virtual_size = size

    # -- the cursor -------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self.cursor_moved()
        self.scroll_cursor_into_view()
        self.repaint_changed()

    def scroll_cursor_into_view(self) -> None:
        """Scroll the least that shows the cursor row below the header."""
        height = self.scrollable_content_region.height - 1  # minus the header line
        if height <= 0:
            return
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def move_cursor(self, index: int) -> None:
        """Put the cursor on row ``index`` (clamped to the rows); on the last row of a list
        that follows, it then follows new rows."""
        last = max(0, self.row_count() - 1)
        index = min(max(0, index), last)
        if self.FOLLOWS_END:
            self.follow = index == last
        self.cursor = index

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def action_cursor_up(self) -> None:
        """Previous row."""
        self.move_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        """Next row."""
        self.move_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        """One screen up."""
        self.move_cursor(self.cursor - self._page())

    def action_page_down(self) -> None:
        """One screen down."""
        self.move_cursor(self.cursor + self._page())

    def action_first(self) -> None:
        """First row."""
        self.move_cursor(0)

    def action_last(self) -> None:
        """Last row (a list that follows then follows new rows)."""
        self.move_cursor(self.row_count() - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            self.header_clicked(offset.x)
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < self.row_count():
            self.move_cursor(index)
            self.row_clicked(index, event.chain)

    # -- rendering --------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._base = None
        self._cache.clear()

    def _style(self, name: str) -> Style:
        st = self._styles.get(name)
        if st is None:
            st = self._styles[name] = self.get_component_rich_style(name, partial=True)
        return st

    def line_strip(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._base
        if base is None:  # rich_style walks every ancestor: kept until the styles change
            base = self._base = self.rich_style
        if y == 0:
            return self.render_header(width, base)
        index = round(self.scroll_y) + y - 1
        if index >= self.row_count():
            return self.render_empty(y, width, base)
        is_cursor = index == self.cursor
        key = (self.row_key(index), is_cursor, width, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = self.render_row(index, width, base, is_cursor)
        return strip

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self.sync_size()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.scroll_cursor_into_view()
