"""The connection table: one row per connection, as of the cursor, virtualized.

A :class:`~textual.scroll_view.ScrollView` with the Line API (like Textual's ``Log``):
``render_line`` builds only the rows on screen, Strips are cached in an ``LRUCache`` that
is cleared when the cursor time or the data change, and the row list itself is a ``range``
until a filter or sort needs a real list. 100k connections cost what 20 do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..model import STATE_NAMES
from ..store import Timeline
from . import fmt
from .conn_query import SORT_KEYS, ConnQuery, ConnRows, last_ts_at
from .repaint import PaintedLines
from .styles import STATE_FAMILIES, STATE_FAMILY_BY_VALUE, state_css


@dataclass(frozen=True)
class Column:
    """A table column: sort key, title, width in cells, right-aligned or not."""

    key: str
    title: str
    width: int
    right: bool = False


TITLES = {
    "id": "id", "client": "client", "server": "server", "cstate": "client state",
    "sstate": "server state", "pkts": "pkts", "bytes": "bytes", "idle": "idle", "age": "age",
    "notes": "notes",
}
SORT_NAMES = {
    "id": "id", "client": "client", "server": "server", "cstate": "client state",
    "sstate": "server state", "pkts": "packets", "bytes": "bytes", "idle": "idle", "age": "age",
    "notes": "notes",
}

_SHORT_STATE = {"SYN_RECEIVED": "SYN_RECV"}


def layout(width: int, id_width: int = 4) -> list[Column]:
    """Columns that fit ``width`` cells: the core ones always, extras as room allows."""
    state_w = 12 if width >= 100 else 11
    core = [Column("id", "id", max(3, id_width), True), Column("cstate", "client", state_w),
            Column("sstate", "server", state_w), Column("pkts", "pkts", 5, True)]
    extras = [Column("idle", "idle", 5, True), Column("bytes", "bytes", 6, True),
              Column("notes", "notes", 8), Column("age", "age", 5, True)]
    used = sum(c.width for c in core) + 5  # five gaps: core four + two addresses
    addr_pref, addr_min = 21, 14
    chosen: list[Column] = []
    for col in extras:
        if width - used - col.width - 1 >= 2 * addr_pref:
            chosen.append(col)
            used += col.width + 1
    addr = max(addr_min, (width - used) // 2)
    addr = min(addr, 47)
    if width >= 100:
        core[1] = Column("cstate", "client state", state_w)
        core[2] = Column("sstate", "server state", state_w)
    cols = [core[0], Column("client", "client", addr), Column("server", "server", addr), core[1], core[2], core[3]]
    order = {"bytes": 0, "idle": 1, "age": 2, "notes": 3}
    cols.extend(sorted(chosen, key=lambda c: order[c.key]))
    # give what is left to the notes column (or nothing)
    return cols


class ConnectionTable(PaintedLines, ScrollView, can_focus=True, inherit_bindings=False):
    """Every connection's endpoints, states and counts at the cursor; the cursor row selects
    the connection the ladder shows."""

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False, id="table.up", tooltip="Previous connection"),
        Binding("down,j", "cursor_down", "Down", show=False, id="table.down", tooltip="Next connection"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("ctrl+home", "first", "First row", show=False, id="table.first"),
        Binding("ctrl+end", "last", "Last row", show=False, id="table.last"),
        Binding("enter", "open", "Ladder", show=False, id="table.open", tooltip="Go to this connection's ladder"),
    ]

    COMPONENT_CLASSES = {
        "conn-table--header",
        "conn-table--sorted",
        "conn-table--cursor",
        "conn-table--note",
        "conn-table--dim",
        *(f"conn-table--state-{f}" for f in STATE_FAMILIES),
    }

    DEFAULT_CSS = """
    ConnectionTable {
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    ConnectionTable > .conn-table--header { text-style: bold; color: $text-muted; }
    ConnectionTable > .conn-table--sorted { text-style: bold underline; color: $text; }
    ConnectionTable > .conn-table--cursor { background: $block-cursor-blurred-background; }
    ConnectionTable:focus > .conn-table--cursor { background: $block-cursor-background; }
    ConnectionTable > .conn-table--note { color: $tcp-anomaly; }
    ConnectionTable > .conn-table--dim { color: $text-muted; }
    """ + state_css("ConnectionTable", "conn-table")

    class Selected(Message):
        """The cursor moved to another connection (``cid`` None: the table is empty)."""

        def __init__(self, cid: int | None) -> None:
            super().__init__()
            self.cid = cid

    class Opened(Message):
        """Enter on a row: the user wants that connection's ladder."""

        def __init__(self, cid: int) -> None:
            super().__init__()
            self.cid = cid

    cursor: var[int] = var(0, always_update=True)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tl: Timeline | None = None
        self.t: float | None = None
        self.pos: float | None = None
        self.model = ConnRows()
        self.rows: Sequence[int] = range(0)
        self.selected: int | None = None
        self._cache: LRUCache[tuple, Strip] = LRUCache(512)
        self._styles: dict[str, Style] = {}
        self._key: tuple | None = None
        self._last_compute = 0.0
        self._compute_cost = 0.0
        self._columns: list[Column] = []
        self._columns_for: tuple[int, int] = (-1, -1)
        self.clock: float | None = None
        """The time the idle and age columns count to: the cursor, or up to a second behind
        it while it moves by itself (see ``settle`` in :meth:`update_view`)."""

    # -- data ---------------------------------------------------------------------------------
    def update_view(self, tl: Timeline, t: float | None, pos: float | None, force: bool = False,
                    settle: bool = True) -> None:
        """Show the connections as of time t (None: now); ``pos`` is the cursor position.

        Recomputing a filtered or sorted list of many connections is throttled while the
        cursor moves by itself (playback, loading); ``force`` recomputes now.

        ``settle`` False (a timer tick between the once-a-second ones) lets what changes with
        the clock lag: the idle and age columns keep counting to the time they showed, and
        rows added below the visible ones reach the scroll bar on the next settling update.
        Both would otherwise repaint the whole table on every tick.
        """
        self.tl = tl
        now = pos if pos is not None else tl.last_ts
        clock = self.clock
        if settle or now is None or clock is None or now < clock:
            clock = now
        key = (tl.version, t, self.model.query.text, self.model.sort, self.model.reverse)
        if key == self._key and not force:
            if clock != self.clock:
                self.clock = clock
                self._cache.clear()
            self._sync_size(settle)
            self.repaint_changed()
            return
        now_mono = time.monotonic()
        simple = self.model.query.empty and self.model.sort == "id"
        if not force and not simple and now_mono - self._last_compute < self._compute_cost * 5:
            return  # keep the old list a little longer; the next tick will catch up
        self._key = key
        self.t, self.pos, self.clock = t, pos, clock
        start = time.perf_counter()
        rows = self.model.compute(tl, t)
        self._compute_cost = time.perf_counter() - start
        self._last_compute = now_mono
        self._set_rows(rows, settle)

    def _set_rows(self, rows: Sequence[int], settle: bool = True) -> None:
        self.rows = rows
        self._cache.clear()
        self._sync_size(settle)
        index = self._index_of(self.selected)
        if index is None:
            index = min(self.cursor, len(rows) - 1) if rows else 0
        self.cursor = max(0, index)
        self.repaint_changed()

    def _sync_size(self, settle: bool) -> None:
        """Make the scrollable height the row count (a change repaints the whole table).

        Unless ``settle``, rows added below the visible ones wait: they are not on screen.
        """
        height = len(self.rows) + 1
        current = self.virtual_size.height
        if height == current:
            return
        if not settle and height > current:
            view = self.scrollable_content_region.height
            if current >= round(self.scroll_y) + view and self.cursor + 1 < current:
                return
        self.virtual_size = Size(self.scrollable_content_region.width, height)

    def _index_of(self, cid: int | None) -> int | None:
        rows = self.rows
        if cid is None or not rows:
            return None
        if isinstance(rows, range):
            return rows.index(cid) if cid in rows else None
        try:
            return rows.index(cid)  # type: ignore[union-attr]
        except ValueError:
            return None

    def set_query(self, text: str) -> ConnQuery:
        """Filter with a query (see :mod:`tcpview.ui.conn_query`); returns it parsed."""
        q = self.model.set_query(text)
        if self.tl is not None:
            self.update_view(self.tl, self.t, self.pos, force=True)
        return q

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column key (``SORT_KEYS``); the same key again reverses the order."""
        if reverse is None:
            reverse = (not self.model.reverse) if key == self.model.sort else False
        self.model.sort, self.model.reverse = key, reverse
        if self.tl is not None:
            self.update_view(self.tl, self.t, self.pos, force=True)

    def sort_next(self) -> None:
        """Sort by the next column."""
        keys = [c.key for c in self.columns()] or list(SORT_KEYS)
        cur = self.model.sort
        nxt = keys[(keys.index(cur) + 1) % len(keys)] if cur in keys else keys[0]
        self.sort_by(nxt, reverse=False)

    def select_cid(self, cid: int) -> bool:
        """Put the cursor on connection ``cid`` if it is listed."""
        index = self._index_of(cid)
        if index is None:
            return False
        self.cursor = index
        return True

    # -- cursor -------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        rows = self.rows
        cid = rows[new] if rows and 0 <= new < len(rows) else None
        if cid != self.selected:
            self.selected = cid
            self.post_message(self.Selected(cid))
        self._scroll_cursor_into_view()
        self.repaint_changed()

    def _scroll_cursor_into_view(self) -> None:
        height = self.scrollable_content_region.height - 1  # minus the header line
        if height <= 0:
            return
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        """Previous row."""
        self.cursor = max(0, self.cursor - 1)

    def action_cursor_down(self) -> None:
        """Next row."""
        self.cursor = min(max(0, len(self.rows) - 1), self.cursor + 1)

    def action_page_up(self) -> None:
        """One screen up."""
        self.cursor = max(0, self.cursor - max(1, self.scrollable_content_region.height - 2))

    def action_page_down(self) -> None:
        """One screen down."""
        self.cursor = min(max(0, len(self.rows) - 1), self.cursor + max(1, self.scrollable_content_region.height - 2))

    def action_first(self) -> None:
        """First row."""
        self.cursor = 0

    def action_last(self) -> None:
        """Last row."""
        self.cursor = max(0, len(self.rows) - 1)

    def action_open(self) -> None:
        """Enter: open the selected connection's ladder."""
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))

    # -- mouse --------------------------------------------------------------------------------
    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for col in self.columns():
                if x <= offset.x < x + col.width + 1:
                    self.sort_by(col.key)
                    return
                x += col.width + 1
            return
        row = round(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self.rows):
            self.cursor = row
            if event.chain >= 2 and self.selected is not None:
                self.post_message(self.Opened(self.selected))

    # -- rendering ----------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._cache.clear()

    def _style(self, name: str) -> Style:
        st = self._styles.get(name)
        if st is None:
            st = self._styles[name] = self.get_component_rich_style(name, partial=True)
        return st

    def columns(self) -> list[Column]:
        """The columns for the current width."""
        width = self.scrollable_content_region.width
        idw = len(str(max(0, len(self.tl.conns) - 1))) if self.tl is not None else 2
        if self._columns_for != (width, idw):
            self._columns = layout(width, idw)
            self._columns_for = (width, idw)
        return self._columns

    def line_strip(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base)
        index = round(self.scroll_y) + y - 1
        rows = self.rows
        if index >= len(rows) or self.tl is None:
            return Strip.blank(width, base)
        cid = rows[index]
        is_cursor = index == self.cursor
        key = (cid, is_cursor, width, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._row(cid, width, base, is_cursor)
            self._cache[key] = strip
        return strip

    def _header(self, width: int, base: Style) -> Strip:
        head, sorted_st = base + self._style("conn-table--header"), base + self._style("conn-table--sorted")
        segs: list[Segment] = []
        used = 0
        for col in self.columns():
            title = TITLES.get(col.key, col.title) if col.width >= len(TITLES.get(col.key, "")) else col.title
            if col.key == self.model.sort:
                title = title + ("▼" if self.model.reverse else "▲")
            text = fmt.ellipsize(title, col.width)
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            segs.append(Segment(text, sorted_st if col.key == self.model.sort else head))
            segs.append(Segment(" ", base))
            used += col.width + 1
        strip = Strip(segs, used)
        return strip.crop_extend(0, width, base).simplify()

    def _row(self, cid: int, width: int, base: Style, is_cursor: bool) -> Strip:
        tl = self.tl
        assert tl is not None
        c = tl.conns[cid]
        t = self.t
        if t is None:
            cs, ss = c.state
            k = c.n
        else:
            cs, ss = c.states_at(t)
            k = c.count_at(t)
        pos = self.clock
        if is_cursor:
            base = base + self._style("conn-table--cursor")
        dim = base + self._style("conn-table--dim")
        segs: list[Segment] = []
        used = 0
        texts = None
        for col in self.columns():
            w = col.width
            style = base
            key = col.key
            if key == "id":
                text = str(cid)
            elif key in ("client", "server"):
                if texts is None:
                    texts = (c.client_text(), c.server_text())
                text = fmt.ellipsize_left(texts[0] if key == "client" else texts[1], w)
            elif key in ("cstate", "sstate"):
                st = cs if key == "cstate" else ss
                name = STATE_NAMES[st]
                if len(name) > w:
                    name = _SHORT_STATE.get(name, name)
                text = name
                style = base + self._style(f"conn-table--state-{STATE_FAMILY_BY_VALUE[st]}")
            elif key == "pkts":
                text = fmt.count(k)
            elif key == "bytes":
                text = fmt.count(self.model.facts.bytes_at(c, k))
            elif key == "idle":
                text = fmt.duration((pos or 0.0) - last_ts_at(c, k)) if k else ""
                style = dim
            elif key == "age":
                text = fmt.duration((pos or 0.0) - c.first_ts)
                style = dim
            elif key == "notes":
                text = ",".join(c.notes())
                style = base + self._style("conn-table--note")
            else:
                text = ""
            text = fmt.ellipsize(text, w)
            text = text.rjust(w) if col.right else text.ljust(w)
            segs.append(Segment(text, style))
            segs.append(Segment(" ", base))
            used += w + 1
        return Strip(segs, used).crop_extend(0, width, base).simplify()

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self._sync_size(True)
        self._scroll_cursor_into_view()
