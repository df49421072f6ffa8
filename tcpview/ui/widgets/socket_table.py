"""The kernel socket table: one row per connection of this host's TCP table, virtualized.

Rows come from :class:`tcpview.kernel.history.KernelTable` (no Textual there). Like the connection
table it is a ScrollView with the Line API: only visible rows are rendered, strips are
cached and the cache is dropped when the data, filter or sort change. States are coloured
by the same component classes (``$state-*`` theme variables); an endpoint on another host
shows ``?`` because this kernel cannot know its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from ...engine.analysis.query import ConnQuery, endpoint_texts
from ...engine.core.tcp import STATE_NAMES
from ...kernel.history import KernelTable
from ...kernel.snapshot import KernelConn
from .. import fmt
from ..messages import WidgetMessage
from ..styles import STATE_FAMILY_BY_VALUE
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css

SORTS = ("id", "age", "cstate", "sstate", "server", "client")
SORT_TITLES = {"id": "id", "age": "age", "cstate": "client state", "sstate": "server state",
               "server": "server", "client": "client"}


WITHOUT = ("note", "analysis", "zeek", "history")
"""Filter terms the socket table has nothing to match against (``is:...``: no notes here; no
segments for analysis flags or Zeek's view)."""


def parse_query(text: str) -> ConnQuery:
    """The filter, in the connection table's language (:mod:`tcpview.engine.analysis.query`):
    ``state:CLOSE_WAIT`` (either end), ``client:``/``server:`` STATE, ``port:443``, ``id:3``,
    an IP address, or any other word in the client or server text; terms are ANDed."""
    return ConnQuery.parse(text, without=WITHOUT)


def passes(q: ConnQuery, cid: int, c: KernelConn) -> bool:
    """True if connection ``c`` (row id ``cid``) passes every term of ``q``."""
    return q.state_match(c.client_state, c.server_state) and q.fields_match(
        cid, c.client[1], c.server[1], endpoint_texts(c.client_text(), c.server_text()))


def _state_key(st: int | None) -> int:
    return -1 if st is None else st


class SocketTable(VirtualList):
    """Every connection of the kernel table with both endpoints' states and its age."""

    BINDINGS = cursor_bindings("sockets.table", "connection", "First row", "Last row", first_key="home",
                               last_key="end")

    COMPONENT_CLASSES = list_classes("socket-table", "sorted", "dim", "note")

    DEFAULT_CSS = list_css("SocketTable", "socket-table") + """
    SocketTable > .socket-table--sorted { text-style: bold underline; color: $text; }
    SocketTable > .socket-table--dim { color: $text-muted; }
    SocketTable > .socket-table--note { color: $text-muted; }
    """

    @dataclass
    class RowHighlighted(WidgetMessage):
        """The cursor moved to another connection (``cid`` None: the table is empty)."""

        cid: int | None
        """The connection under the cursor."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.table: KernelTable | None = None
        self.rows: list[tuple[int, KernelConn]] = []
        self.query = parse_query("")
        self.sort = "id"
        self.reverse = False
        self.selected: int | None = None
        self._key: tuple | None = None
        self._now = time.time()

    # -- data -------------------------------------------------------------------------------
    def update_view(self, table: KernelTable, force: bool = False) -> None:
        """Show the table's latest refresh, filtered and sorted."""
        self.table = table
        key = (table.version, self.query.text, self.sort, self.reverse)
        if key == self._key and not force:
            return
        self._key = key
        self._now = table.last_ts or time.time()
        q = self.query
        rows = list(table.conns) if q.empty else [r for r in table.conns if passes(q, *r)]
        seen = table.first_seen
        sort = self.sort
        if sort == "age":
            rows.sort(key=lambda r: seen.get(r[1].key, self._now))
        elif sort == "cstate":
            rows.sort(key=lambda r: (_state_key(r[1].client_state), r[0]))
        elif sort == "sstate":
            rows.sort(key=lambda r: (_state_key(r[1].server_state), r[0]))
        elif sort == "client":
            rows.sort(key=lambda r: (r[1].client_text(), r[0]))
        elif sort == "server":
            rows.sort(key=lambda r: (r[1].server_text(), r[0]))
        else:
            rows.sort(key=lambda r: r[0])
        if self.reverse:
            rows.reverse()
        self.rows = rows
        self._cache.clear()
        self.sync_size()
        index = next((i for i, r in enumerate(rows) if r[0] == self.selected), None)
        if index is None:
            index = min(self.cursor, len(rows) - 1) if rows else 0
        self.cursor = max(0, index)  # its watcher repaints what changed

    def set_query(self, text: str) -> ConnQuery:
        """Filter the rows (see :func:`parse_query`); returns the parsed query (see ``errors``)."""
        self.query = parse_query(text)
        if self.table is not None:
            self.update_view(self.table, force=True)
        return self.query

    def sort_next(self) -> None:
        """Sort by the next key (id, age, client state, server state, server, client)."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.reverse = self.sort == "age"  # the oldest first: what has been stuck longest
        if self.table is not None:
            self.update_view(self.table, force=True)
        self.move_cursor(0)  # the top of the new order, as htop does

    # -- the list ---------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int) -> int:
        return self.rows[index][0]

    def cursor_moved(self) -> None:
        new = self.cursor
        cid = self.rows[new][0] if 0 <= new < len(self.rows) else None
        if cid != self.selected:
            self.selected = cid
            self.post_message(self.RowHighlighted(self, cid))

    # -- rendering --------------------------------------------------------------------------
    def columns(self) -> list[tuple[str, str, int, bool]]:
        """(key, title, width, right-aligned) for the current width."""
        width = self.scrollable_content_region.width
        state_w = 12
        fixed = [("id", "id", 5, True), ("cstate", "client state", state_w, False),
                 ("sstate", "server state", state_w, False), ("age", "age", 5, True)]
        notes_w = 20 if width >= 110 else 0
        used = sum(c[2] + 1 for c in fixed) + 2 + (notes_w + 1 if notes_w else 0)
        addr = max(12, min(47, (width - used) // 2))
        cols = [fixed[0], ("client", "client", addr, False), ("server", "server", addr, False),
                fixed[1], fixed[2], fixed[3]]
        if notes_w:
            cols.append(("notes", "notes", notes_w, False))
        return cols

    def render_header(self, width: int, base: Style) -> Strip:
        head, sorted_st = base + self._style("socket-table--header"), base + self._style("socket-table--sorted")
        segs = []
        used = 0
        for key, title, w, right in self.columns():
            mark = ("▼" if self.reverse else "▲") if key == self.sort else ""
            text = fmt.with_mark(title, mark, w)
            segs += [Segment(text.rjust(w) if right else text.ljust(w), sorted_st if key == self.sort else head),
                     Segment(" ", base)]
            used += w + 1
        return Strip(segs, used).crop_extend(0, width, base).simplify()

    def render_row(self, index: int, width: int, base: Style, is_cursor: bool) -> Strip:
        cid, c = self.rows[index]
        if is_cursor:
            base = base + self._style("socket-table--cursor")
        segs = []
        used = 0
        for key, _title, w, right in self.columns():
            style = base
            if key == "id":
                text = str(cid)
            elif key in ("client", "server"):
                text = fmt.ellipsize_left(c.client_text() if key == "client" else c.server_text(), w)
            elif key in ("cstate", "sstate"):
                side = 0 if key == "cstate" else 1
                st = c.client_state if side == 0 else c.server_state
                if c.listening and side == 0:
                    text, style = "", base
                elif st is None:
                    text, style = "?", base + self._style("socket-table--dim")
                else:
                    text = STATE_NAMES[st]
                    style = base + self._style(f"socket-table--state-{STATE_FAMILY_BY_VALUE[st]}")
            elif key == "age":
                seen = self.table.first_seen.get(c.key) if self.table is not None else None
                text = fmt.duration(self._now - seen) if seen is not None else ""
                style = base + self._style("socket-table--dim")
            elif key == "notes":
                if c.listening:
                    text = "listening"
                elif c.client_state is None or c.server_state is None:
                    text = "peer on another host"
                else:
                    text = "both ends here"
                style = base + self._style("socket-table--note")
            else:
                text = ""
            text = fmt.ellipsize(text, w)
            segs += [Segment(text.rjust(w) if right else text.ljust(w), style), Segment(" ", base)]
            used += w + 1
        return Strip(segs, used).crop_extend(0, width, base).simplify()
