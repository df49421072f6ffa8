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

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.strip import Strip

from ...engine.analysis.diagnosis import SHORT, VERDICTS
from ...engine.analysis.query import SORT_KEYS, ConnQuery, ConnRows
from ...engine.core.tcp import STATE_NAMES
from ...engine.output.writers import first_capture
from ...engine.timeline.timeline import Timeline
from ...sources.live.remote import short_name
from ...textutil import safe
from .. import fmt
from ..messages import WidgetMessage
from ..styles import STATE_FAMILY_BY_VALUE
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css


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
    "notes": "notes", "rtt": "rtt", "retr": "retr", "zeek": "zeek", "proc": "proc", "slow": "slow",
    "host": "host",
}
SORT_NAMES = {
    "id": "id", "client": "client", "server": "server", "cstate": "client state",
    "sstate": "server state", "pkts": "packets", "bytes": "bytes", "idle": "idle", "age": "age",
    "notes": "notes", "rtt": "initial RTT", "retr": "retransmissions", "zeek": "Zeek conn_state",
    "proc": "process",
    "slow": "why it was slow",
}

_SHORT_STATE = {"SYN_RECEIVED": "SYN_RECV"}


def sort_title(sort: str, reverse: bool) -> str:
    """The table's order in words, for its title (``idle`` is read as top users read it)."""
    if sort == "idle":
        return "oldest activity first" if reverse else "newest activity first"
    return SORT_NAMES[sort] + (" ▼" if reverse else "")


def layout(width: int, id_width: int = 4, proc: bool = False, host: bool = False) -> list[Column]:
    """Columns that fit ``width`` cells: the core ones always, extras as room allows (first
    the host a connection was captured on, when ``host``: several hosts' live captures; then
    the process holding the sockets, when ``proc``: a live capture on this host)."""
    state_w = 12 if width >= 100 else 11
    core = [Column("id", "id", max(3, id_width), True), Column("cstate", "client", state_w),
            Column("sstate", "server", state_w), Column("pkts", "pkts", 5, True)]
    extras = [Column("idle", "idle", 5, True), Column("bytes", "bytes", 6, True), Column("rtt", "rtt", 6, True),
              Column("retr", "retr", 4, True), Column("slow", "slow", 11), Column("notes", "notes", 8),
              Column("zeek", "zeek", 6),
              Column("age", "age", 5, True)]
    if proc:
        extras.insert(0, Column("proc", "proc", 14))
    if host:
        extras.insert(0, Column("host", "host", 16))
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
    order = {"host": -2, "proc": -1, "bytes": 0, "rtt": 1, "retr": 2, "slow": 3, "zeek": 4, "idle": 5, "age": 6, "notes": 7}
    cols.extend(sorted(chosen, key=lambda c: order[c.key]))
    # give what is left to the notes column (or nothing)
    return cols


class ConnectionTable(VirtualList):
    """Every connection's endpoints, states and counts at the cursor; the cursor row selects
    the connection the ladder shows."""

    BINDINGS = [
        *cursor_bindings("table", "connection", "First row", "Last row"),
        Binding("enter", "open", "Ladder", show=False, id="table.open", tooltip="Go to this connection's ladder"),
        Binding("n", "flagged(1)", "Next flag", show=False, id="table.next_flagged",
                tooltip="Next connection with an analysis flag (the ladder on its first flagged segment)"),
        Binding("N", "flagged(-1)", "Previous flag", show=False, id="table.previous_flagged",
                tooltip="Previous connection with an analysis flag (the ladder on its last flagged segment)"),
    ]

    COMPONENT_CLASSES = list_classes("conn-table", "sorted", "note", "dim")

    DEFAULT_CSS = list_css("ConnectionTable", "conn-table") + """
    ConnectionTable > .conn-table--sorted { text-style: bold underline; color: $text; }
    ConnectionTable > .conn-table--note { color: $tcp-anomaly; }
    ConnectionTable > .conn-table--dim { color: $text-muted; }
    """

    @dataclass
    class RowHighlighted(WidgetMessage):
        """The cursor moved to another connection (``cid`` None: the table is empty)."""

        cid: int | None
        """The connection under the cursor."""

    @dataclass
    class FlaggedChosen(WidgetMessage):
        """n / N chose connection ``cid``: its ladder goes to its first (step 1) or last flagged
        segment."""

        cid: int
        step: int

    @dataclass
    class RowSelected(WidgetMessage):
        """Enter (or a double click) on a row: the user wants that connection's ladder."""

        cid: int
        """The connection chosen."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tl: Timeline | None = None
        self.t: float | None = None
        self.pos: float | None = None
        self.model = ConnRows()
        self.rows: Sequence[int] | np.ndarray = range(0)
        self.selected: int | None = None
        self._key: tuple | None = None
        self._last_compute = 0.0
        self._compute_cost = 0.0
        self.behind = False
        """Whether the list shown is older than the last update asked for (a recompute put off,
        see :meth:`update_view`): the app updates again until it is not."""
        self._columns: list[Column] = []
        self._columns_for: tuple[int, int] = (-1, -1)
        self.proc_texts: dict[int, str] | None = None
        """The ``proc`` column's text by connection id (None: no such column, not a live
        capture on this host); see :meth:`set_processes`."""
        self._proc_version = 0
        self._hosts: dict[int, str] = {}  # connection id -> host (its first segment's): never changes
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
        if tl is not self.tl:
            self._hosts = {}  # a new timeline: its ids are its own
        self.tl = tl
        now = pos if pos is not None else tl.last_ts
        clock = self.clock
        if settle or now is None or clock is None or now < clock:
            clock = now
        key = (tl.version, t, self.model.query.text, self.model.sort, self.model.reverse, self._proc_version)
        if key == self._key and not force:
            self.behind = False  # the list is this update's
            if clock != self.clock:
                self.clock = clock
                self._cache.clear()
            self.sync_size(settle)
            self.repaint_changed()
            return
        now_mono = time.monotonic()
        simple = self.model.query.empty and self.model.sort == "id"
        if not force and not simple and now_mono - self._last_compute < self._compute_cost * 5:
            self.behind = True  # keep the old list a little longer; a later tick catches up
            return
        self.behind = False
        self._key = key
        self.t, self.pos, self.clock = t, pos, clock
        start = time.perf_counter()
        rows = self.model.compute(tl, t)
        self._compute_cost = time.perf_counter() - start
        self._last_compute = now_mono
        self._set_rows(rows, settle)

    def set_processes(self, infos: dict, texts: dict[int, str]) -> None:
        """The processes holding the connections' sockets on this host, found by whoever reads
        the kernel's table (the live viewer): ``infos`` for the filter's ``proc:``, ``pid:``
        and ``user:`` terms (:meth:`ConnRows.set_processes`), ``texts`` for the ``proc``
        column, both by connection id. The next update shows them."""
        self.model.set_processes(infos)
        self.proc_texts = texts
        self._proc_version += 1
        self._columns_for = (-1, -1)
        self._cache.clear()

    def _set_rows(self, rows: Sequence[int] | np.ndarray, settle: bool = True) -> None:
        self.rows = rows
        self._cache.clear()
        self.sync_size(settle)
        index = self._index_of(self.selected)
        if self.cursor == 0 and self.model.sort == "idle" and not self.model.reverse:
            index = 0  # newest activity first, from the top: the top stays in view, as in top
        if index is None:
            index = min(self.cursor, len(rows) - 1) if len(rows) else 0
        self.cursor = max(0, index)  # its watcher repaints what changed

    def _index_of(self, cid: int | None) -> int | None:
        rows = self.rows
        if cid is None or not len(rows):
            return None
        if isinstance(rows, range):
            return rows.index(cid) if cid in rows else None
        hits = np.flatnonzero(np.asarray(rows) == cid)
        return int(hits[0]) if len(hits) else None

    def set_query(self, text: str) -> ConnQuery:
        """Filter with a query (see :mod:`tcpview.engine.analysis.conn_filter`; a query with a bad term
        is refused and the filter stays); returns it parsed."""
        q = self.model.set_query(text)
        if self.tl is not None:
            self.update_view(self.tl, self.t, self.pos, force=True)
        return q

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column key (``SORT_KEYS``); the same key again reverses the order. The
        cursor goes to the first row, the top of the new order (as htop does)."""
        if reverse is None:
            reverse = (not self.model.reverse) if key == self.model.sort else False
        self.model.sort, self.model.reverse = key, reverse
        if self.tl is not None:
            self.update_view(self.tl, self.t, self.pos, force=True)
        self.move_cursor(0)

    def sort_next(self) -> None:
        """Sort by the next column."""
        keys = [c.key for c in self.columns() if c.key in SORT_KEYS] or list(SORT_KEYS)
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

    # -- the list -----------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self.rows)

    def row_key(self, index: int) -> int:
        return int(self.rows[index])

    def cursor_moved(self) -> None:
        rows, new = self.rows, self.cursor
        cid = int(rows[new]) if 0 <= new < len(rows) else None
        if cid != self.selected:
            self.selected = cid
            self.post_message(self.RowHighlighted(self, cid))

    def action_open(self) -> None:
        """Enter: open the selected connection's ladder."""
        if self.selected is not None:
            self.post_message(self.RowSelected(self, self.selected))

    def header_clicked(self, x: int) -> None:
        left = 0
        for col in self.columns():
            if left <= x < left + col.width + 1:
                if col.key in SORT_KEYS:  # (the host column does not sort)
                    self.sort_by(col.key)
                return
            left += col.width + 1

    def row_clicked(self, index: int, chain: int) -> None:
        if chain >= 2 and self.selected is not None:
            self.post_message(self.RowSelected(self, self.selected))

    # -- rendering ----------------------------------------------------------------------------
    def columns(self) -> list[Column]:
        """The columns for the current width."""
        width = self.scrollable_content_region.width
        idw = len(str(max(0, self.tl.view().next_id - 1))) if self.tl is not None else 2
        caps = self.tl.captures if self.tl is not None else None
        host = caps is not None and caps.streams and len(caps.files) > 1  # several hosts' live captures
        if self._columns_for != (width, idw) or host != any(c.key == "host" for c in self._columns):
            self._columns = layout(width, idw, self.proc_texts is not None, host)
            self._columns_for = (width, idw)
        return self._columns

    def _host(self, tl: Timeline, cid: int) -> str:
        """The host connection ``cid`` was first captured on (kept: it never changes)."""
        text = self._hosts.get(cid)
        if text is None:
            text = first_capture(tl, cid) or ""
            if text:
                self._hosts[cid] = text
        return text

    def render_header(self, width: int, base: Style) -> Strip:
        head, sorted_st = base + self._style("conn-table--header"), base + self._style("conn-table--sorted")
        segs: list[Segment] = []
        used = 0
        for col in self.columns():
            title = TITLES.get(col.key, col.title) if col.width >= len(TITLES.get(col.key, "")) else col.title
            mark = ("▼" if self.model.reverse else "▲") if col.key == self.model.sort else ""
            text = fmt.with_mark(title, mark, col.width)
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            segs.append(Segment(text, sorted_st if col.key == self.model.sort else head))
            segs.append(Segment(" ", base))
            used += col.width + 1
        strip = Strip(segs, used)
        return strip.crop_extend(0, width, base).simplify()

    def action_flagged(self, step: int) -> None:
        """n / N: the cursor to the next (previous) connection, in the table's order, that has a
        segment with an analysis flag."""
        tl = self.tl
        if tl is None or not len(self.rows):
            self.notify("no connection listed", markup=False)
            return
        hits = self.model.flagged(tl, self.t, self.rows)
        pick = hits[hits > self.cursor] if step > 0 else hits[hits < self.cursor][::-1]
        if not len(pick):
            if not len(hits):
                self.notify("no connection listed has a segment with an analysis flag (retransmission, "
                            "duplicate ACK, zero window...) up to the cursor", markup=False)
            else:
                where, back = ("below", "N goes up") if step > 0 else ("above", "n goes down")
                self.notify(f"no connection with an analysis flag {where} this one ({len(hits)} listed; {back})",
                            markup=False)
            return
        self.move_cursor(int(pick[0]))
        self.post_message(self.FlaggedChosen(self, int(self.rows[int(pick[0])]), step))

    def render_row(self, index: int, width: int, base: Style, is_cursor: bool) -> Strip:
        tl = self.tl
        assert tl is not None
        cid = int(self.rows[index])
        c = tl.conns.get(cid)
        if c is None:  # it left the timeline (a memory budget) since the rows were made:
            return Strip.blank(width, base)  # the next update lists what is there now
        facts = self.model.facts_listed(tl, self.t)
        row = c.row
        if row < facts.n:
            cs, ss = (int(x) for x in facts.states[row])
            k = int(facts.packets[row])
            nbytes = int(facts.nbytes[row])
            last_ts = float(facts.last_ts[row])
            irtt, retr = float(facts.progress.irtt[row]), int(facts.progress.retr[row])
        else:  # published after the cursor's facts were taken
            cs, ss, k, nbytes, last_ts, irtt, retr = 0, 0, 0, 0, c.first_ts, 0.0, 0
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
                text = fmt.count(nbytes)
            elif key == "idle":
                text = fmt.duration((pos or 0.0) - last_ts) if k else ""
                style = dim
            elif key == "age":
                text = fmt.duration((pos or 0.0) - c.first_ts)
                style = dim
            elif key == "notes":
                text = ",".join(facts.notes(row))
                style = base + self._style("conn-table--note")
            elif key == "rtt":
                text = fmt.rtt(irtt) if irtt > 0 else ""
            elif key == "zeek":
                text = c.zeek(c.count_at(self.t))[0] if k else ""
                style = dim
            elif key == "retr":
                text = fmt.count(retr) if retr else ""
                style = base + self._style("conn-table--note")
            elif key == "host":  # as the user gave it, but a host's name may hold anything
                text = fmt.ellipsize_left(safe(short_name(self._host(tl, cid))), w)  # its end tells
            elif key == "proc":  # a process names itself: any character
                text = safe((self.proc_texts or {}).get(cid, ""))
            elif key == "slow":  # the diagnosis's verdict as of the cursor (tcpview diagnose)
                verdicts = self.model.verdicts(tl, self.t, facts.view)
                text = SHORT[VERDICTS[int(verdicts[row])]] if row < len(verdicts) and k else ""
                style = dim if text in ("idle", "too-short") else base
            else:
                text = ""
            text = fmt.ellipsize(text, w)
            text = text.rjust(w) if col.right else text.ljust(w)
            segs.append(Segment(text, style))
            segs.append(Segment(" ", base))
            used += w + 1
        return Strip(segs, used).crop_extend(0, width, base).simplify()
