"""The kernel socket table: one row per connection of this host's TCP table, virtualized.

Rows come from :class:`tcpview.kernel.history.KernelTable` (no Textual there). Like the connection
table it is a ScrollView with the Line API: only visible rows are rendered, strips are
cached and the cache is dropped when the data, filter or sort change. States are coloured
by the same component classes (``$state-*`` theme variables); a state is written as the JSON
of ``tcpview sockets --once --json`` writes it: ``UNKNOWN`` for an endpoint on another host
(this kernel cannot know its state), ``NONE`` for a listener's missing client.

Beside the states, what the kernel knows of each socket, as ``ss -tinpo`` shows it: the process
holding it (``proc``: command and pid), its smoothed RTT and congestion window from tcp_info,
Recv-Q and Send-Q (for a listener: the connections waiting to be accepted, and the backlog)
and the pending timer. Enter asks for the connection's every field
(:class:`SocketTable.SocketChosen`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.strip import Strip

from ...engine.analysis.conn_filter import ConnQuery, check, endpoint_texts
from ...kernel.history import KernelTable
from ...kernel.snapshot import KernelConn
from ...textutil import safe
from .. import fmt
from ..messages import WidgetMessage
from ..styles import STATE_FAMILY_BY_VALUE
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css

SORTS = ("id", "client", "server", "cstate", "sstate", "proc", "rtt", "cwnd", "recvq", "sendq", "timer")
SORT_TITLES = {"id": "id", "cstate": "client state", "sstate": "server state", "server": "server",
               "client": "client", "proc": "process", "rtt": "RTT", "cwnd": "cwnd", "recvq": "Recv-Q",
               "sendq": "Send-Q", "timer": "timer"}
_DESCENDING = ("recvq", "sendq", "rtt", "cwnd")
"""Sorts whose biggest values come first: what piles up."""
_SHORT_STATE = {"SYN_RECEIVED": "SYN_RECV"}


def layout(width: int) -> list[tuple[str, str, int, bool]]:
    """(key, title, width, right-aligned) of the columns that fit ``width`` cells: id, both
    ends and both states always; then the process, Recv-Q and Send-Q, RTT and cwnd, the timer
    and the notes while the addresses keep room enough (14 to 21 cells)."""
    state_w = 12 if width >= 100 else 11
    cols = [("id", "id", 5, True), ("cstate", "client state" if state_w >= 12 else "client", state_w, False),
            ("sstate", "server state" if state_w >= 12 else "server", state_w, False)]
    used = sum(c[2] + 1 for c in cols) + 2
    for col, need in ((("proc", "proc", 14, False), 14), (("recvq", "Recv-Q", 6, True), 14),
                      (("sendq", "Send-Q", 6, True), 14), (("rtt", "rtt", 6, True), 15),
                      (("cwnd", "cwnd", 4, True), 15), (("timer", "timer", 17, False), 17),
                      (("notes", "notes", 20, False), 21)):
        if width - used - col[2] - 1 >= 2 * need:
            cols.append(col)
            used += col[2] + 1
    addr = max(12, min(47, (width - used) // 2))
    return [cols[0], ("client", "client", addr, False), ("server", "server", addr, False), *cols[1:]]


WITHOUT = ("note", "analysis", "zeek", "history", "slow")
"""Filter terms the socket table has nothing to match against (``is:...``: no notes here; no
segments for analysis flags, Zeek's view or a diagnosis)."""


def parse_query(text: str) -> ConnQuery:
    """The filter, in the connection table's language (:mod:`tcpview.engine.analysis.conn_filter`):
    ``state:CLOSE_WAIT`` (either end), ``client:``/``server:`` STATE, ``port:443``, ``id:3``,
    ``proc:nginx``, ``pid:1234``, ``user:www-data``, an IP address, or any other word in the
    client or server text; terms are ANDed."""
    return ConnQuery.parse(text, without=WITHOUT)


def check_query(text: str) -> str | None:
    """What is wrong with a filter for this table, in one line (None: nothing)."""
    return check(text, without=WITHOUT)


def passes(q: ConnQuery, cid: int, c: KernelConn) -> bool:
    """True if connection ``c`` (row id ``cid``) passes every term of ``q``."""
    return (q.state_match(c.client_state, c.server_state)
            and q.fields_match(cid, c.client[1], c.server[1], endpoint_texts(c.client_text(), c.server_text()))
            and (not q.uses_process or q.process_match(c.process_infos())))


def rtt_us(c: KernelConn) -> int | None:
    """The smoothed RTT (µs) the table shows for a connection: its first socket here with one."""
    info = c.info()
    return info.rtt_us if info is not None else None


def cwnd(c: KernelConn) -> int | None:
    """The congestion window (segments) the table shows: its first socket here with one."""
    info = c.info()
    return info.cwnd if info is not None else None


def _state_key(st: int | None) -> int:
    return -1 if st is None else st


class SocketTable(VirtualList):
    """Every connection of the kernel table with both endpoints' states, queues and timers."""

    BINDINGS = [
        *cursor_bindings("sockets.table", "connection", "First row", "Last row", first_key="home",
                         last_key="end"),
        Binding("enter", "choose", "Detail", id="sockets.detail",
                tooltip="Every field of the connection's sockets, their tcp_info (as ss -ti) and the processes that hold them"),
    ]

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

    @dataclass
    class SocketChosen(WidgetMessage):
        """Enter (or a double click) on a row: the user wants every field of that connection."""

        cid: int
        """The connection's id."""
        conn: KernelConn
        """The connection, as of the refresh shown."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.table: KernelTable | None = None
        self.rows: list[tuple[int, KernelConn]] = []
        self.conn_query = parse_query("")
        self.sort = "id"
        self.reverse = False
        self.selected: int | None = None
        self._key: tuple | None = None

    # -- data -------------------------------------------------------------------------------
    def update_view(self, table: KernelTable, force: bool = False) -> None:
        """Show the table's latest refresh, filtered and sorted."""
        self.table = table
        key = (table.version, self.conn_query.text, self.sort, self.reverse)
        if key == self._key and not force:
            return
        self._key = key
        q = self.conn_query
        rows = list(table.conns) if q.empty else [r for r in table.conns if passes(q, *r)]
        sort = self.sort
        if sort in ("recvq", "sendq"):
            rows.sort(key=lambda r: (r[1].queue(sort == "recvq"), -r[0]))
        elif sort == "timer":  # the soonest first, no timer last
            rows.sort(key=lambda r: (t if (t := r[1].timer_left()) is not None else float("inf"), r[0]))
        elif sort == "cstate":
            rows.sort(key=lambda r: (_state_key(r[1].client_state), r[0]))
        elif sort == "sstate":
            rows.sort(key=lambda r: (_state_key(r[1].server_state), r[0]))
        elif sort in ("rtt", "cwnd"):
            value = rtt_us if sort == "rtt" else cwnd
            rows.sort(key=lambda r: (v if (v := value(r[1])) is not None else -1, -r[0]))
        elif sort == "proc":
            rows.sort(key=lambda r: (r[1].process_text() or "~", r[0]))
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
        """Filter the rows (see :func:`parse_query`), unless a term is bad: then the filter stays
        as it was. Returns the parsed query (see ``errors``)."""
        q = parse_query(text)
        if q.errors:
            return q
        self.conn_query = q
        if self.table is not None:
            self.update_view(self.table, force=True)
        return self.conn_query

    def sort_next(self) -> None:
        """Sort by the next column shown (the queues biggest first, the timers soonest first)."""
        keys = [c[0] for c in self.columns() if c[0] in SORTS]
        self.sort = keys[(keys.index(self.sort) + 1) % len(keys)] if self.sort in keys else keys[0]
        self.reverse = self.sort in _DESCENDING
        if self.table is not None:
            self.update_view(self.table, force=True)
        self.move_cursor(0)  # the top of the new order, as htop does

    # -- the list ---------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int) -> int:
        return self.rows[index][0]

    def action_choose(self) -> None:
        """Enter: every field of the selected connection."""
        if 0 <= self.cursor < len(self.rows):
            cid, conn = self.rows[self.cursor]
            self.post_message(self.SocketChosen(self, cid, conn))

    def row_clicked(self, index: int, chain: int) -> None:
        if chain >= 2:
            self.action_choose()

    def cursor_moved(self) -> None:
        new = self.cursor
        cid = self.rows[new][0] if 0 <= new < len(self.rows) else None
        if cid != self.selected:
            self.selected = cid
            self.post_message(self.RowHighlighted(self, cid))

    # -- rendering --------------------------------------------------------------------------
    def columns(self) -> list[tuple[str, str, int, bool]]:
        """(key, title, width, right-aligned) for the current width (see :func:`layout`)."""
        return layout(self.scrollable_content_region.width)

    def header_clicked(self, x: int) -> None:
        left = 0
        for key, _title, w, _right in self.columns():
            if left <= x < left + w + 1 and key in SORTS:
                self.sort_by(key)
                return
            left += w + 1

    def sort_by(self, key: str) -> None:
        """Sort by column ``key`` (the same again: the other way round), from the top."""
        self.reverse = (not self.reverse) if key == self.sort else key in _DESCENDING
        self.sort = key
        if self.table is not None:
            self.update_view(self.table, force=True)
        self.move_cursor(0)

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
                text = c.state_text(side)  # as the JSON says it: a state, UNKNOWN or NONE
                if st is None or (c.listening and side == 0):
                    style = base + self._style("socket-table--dim")
                else:
                    text = _SHORT_STATE.get(text, text) if len(text) > w else text
                    style = base + self._style(f"socket-table--state-{STATE_FAMILY_BY_VALUE[st]}")
            elif key in ("recvq", "sendq"):
                text = c.queue_text(key == "recvq")
                style = base if c.queue(key == "recvq") else base + self._style("socket-table--dim")
            elif key == "proc":
                text = safe(c.process_text())  # a process names itself: any character
                style = base if text and not text.startswith("?") else base + self._style("socket-table--dim")
            elif key == "rtt":
                v = rtt_us(c)
                text = "" if not v else fmt.rtt(v / 1e6)
            elif key == "cwnd":
                v = cwnd(c)
                text = "" if v is None or c.listening else str(v)
            elif key == "timer":
                text = c.timer_text()
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
