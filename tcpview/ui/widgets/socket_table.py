"""The kernel socket table: one row per connection of this host's TCP table, virtualized.

Rows come from :class:`tcpview.kernel.sockets.KernelTable` (no Textual there). Like the connection
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

from ...engine.model import STATE_NAMES
from ...kernel.sockets import KernelConn, KernelTable, norm_ip
from .. import fmt
from ..messages import WidgetMessage
from ..styles import STATE_FAMILY_BY_VALUE
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css

SORTS = ("id", "age", "cstate", "sstate", "server", "client")
SORT_TITLES = {"id": "id", "age": "age", "cstate": "client state", "sstate": "server state",
               "server": "server", "client": "client"}


@dataclass(frozen=True)
class SocketQuery:
    """A parsed filter, in the connection table's words: ``state:CLOSE_WAIT`` (either end;
    prefixes, ``close-wait`` and ss's short forms such as ``cw``, ``tw``, ``est`` work),
    ``port:443``; any other word must appear in the client or server address. Terms are
    ANDed."""

    text: str
    states: tuple[frozenset[int], ...] = ()
    ports: tuple[int, ...] = ()
    words: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SocketQuery:
        from ...engine.query import parse_states

        states, ports, words, errors = [], [], [], []
        for term in text.split():
            key, sep, val = term.partition(":")
            if sep and key.lower() == "state":
                found = parse_states(val)
                if found:
                    states.append(found)
                else:
                    errors.append(f"no state {val!r}")
            elif sep and key.lower() == "port":
                if val.isdigit() and int(val) < 65536:
                    ports.append(int(val))
                else:
                    errors.append(f"not a port: {val!r}")
            else:
                words.append(term.lower())
        return cls(text, tuple(states), tuple(ports), tuple(words), tuple(errors))

    def match(self, c: KernelConn) -> bool:
        """True if connection ``c`` passes every term."""
        for wanted in self.states:
            if not ((c.client_state in wanted and not c.listening) or c.server_state in wanted):
                return False
        if self.ports and not (c.client[1] in self.ports or c.server[1] in self.ports):
            return False
        if self.words:
            hay = f"{_ep(c.client)} {_ep(c.server)}".lower()
            if not all(w in hay for w in self.words):
                return False
        return True


def _ep(a: tuple[str, int]) -> str:
    ip, port = a
    if ip == "*":
        return "*:*"
    ip = norm_ip(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


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
        self.query = SocketQuery.parse("")
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
        rows = [r for r in table.conns if self.query.match(r[1])] if self.query.text.strip() else list(table.conns)
        seen = table.first_seen
        sort = self.sort
        if sort == "age":
            rows.sort(key=lambda r: seen.get(r[1].key, self._now))
        elif sort == "cstate":
            rows.sort(key=lambda r: (_state_key(r[1].client_state), r[0]))
        elif sort == "sstate":
            rows.sort(key=lambda r: (_state_key(r[1].server_state), r[0]))
        elif sort in ("server", "client"):
            rows.sort(key=lambda r: (_ep(getattr(r[1], sort)), r[0]))
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

    def set_query(self, text: str) -> SocketQuery:
        """Filter the rows (see :class:`SocketQuery`); returns the parsed query."""
        self.query = SocketQuery.parse(text)
        if self.table is not None:
            self.update_view(self.table, force=True)
        return self.query

    def sort_next(self) -> None:
        """Sort by the next key (id, age, client state, server state, server, client)."""
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.reverse = self.sort == "age"  # the oldest first: what has been stuck longest
        if self.table is not None:
            self.update_view(self.table, force=True)

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
            if key == self.sort:
                title += "▼" if self.reverse else "▲"
            text = fmt.ellipsize(title, w)
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
                text = fmt.ellipsize_left(_ep(c.client if key == "client" else c.server), w)
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
