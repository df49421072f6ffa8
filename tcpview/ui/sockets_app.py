"""``tcpview sockets``: this host's kernel TCP table, refreshed every second, no privileges.

A separate, small app rather than the capture viewer with synthesized data, because the
kernel table is a different kind of thing: a socket is ONE endpoint, the peer's state is
unknown whenever it lives on another host, listening sockets have no peer, and there are
no segments to draw a ladder from. Showing it honestly (UNKNOWN for what this kernel cannot
know; the process, RTT, cwnd, queues and timers ``ss -tinpo`` shows, a CLOSE_WAIT leak's
telltales; Enter for every field of a connection's sockets, their tcp_info and the processes
holding them) is clearer than
bending the capture timeline around it. The counters bar is the capture viewer's own widget: the table keeps a
history of refreshes and answers the questions it asks a timeline, so the sparklines cover
the whole session.

Threads: a worker reads the table (a sock_diag dump, and every process's open files for the
processes holding the sockets: slow with many sockets) and swaps new rows in; the UI thread
only reads them when the worker's message arrives.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.theme import Theme
from textual.widgets import Footer, Static

from ..kernel.history import KernelTable
from ..textutil import safe
from .bindings import SOCKETS_BINDINGS
from .messages import SocketsRefreshed
from .screens.socket_detail import SocketDetailScreen
from .styles import theme_variable_defaults
from .themes.install import install_themes, notify_failures
from .widgets.counters import CountersBar
from .widgets.prompt import Prompt
from .widgets.socket_table import SORT_TITLES, SocketTable, check_query


class SocketsApp(App[int]):
    """The kernel's TCP sockets as connections, with the state counters and their history.

    Args:
        table: the :class:`~tcpview.kernel.history.KernelTable` to show (a new one by default).
        interval: seconds between refreshes.
        theme: a theme name or Theme (see :mod:`tcpview.ui.themes`); None picks the default.
    """

    TITLE = "tcpview sockets"
    CSS = """
    #title { height: 1; background: $panel; padding: 0 1; }
    #table { height: 1fr; border: round $border-blurred; border-title-color: $text; padding: 0 0 0 1; }
    #table:focus { border: round $border; }
    """

    BINDINGS = SOCKETS_BINDINGS

    def __init__(self, table: KernelTable | None = None, *, interval: float = 1.0,
                 theme: str | Theme | None = None) -> None:
        super().__init__()
        self._theme_failures = install_themes(self, theme)
        self.table = table if table is not None else KernelTable()
        self.interval = interval
        self.paused = False
        self.error: str | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults(self.current_theme)

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield CountersBar(id="counters")
        yield SocketTable(id="table")
        yield Prompt(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        notify_failures(self, self._theme_failures)
        self.query_one(SocketTable).focus()
        self._update_title()
        self._read()
        self.set_interval(self.interval, self._on_timer, name="kernel-refresh")

    def _on_timer(self) -> None:
        if not self.paused:
            self._read()

    @work(thread=True, exclusive=True, group="kernel", exit_on_error=False)
    def _read(self) -> None:
        try:
            self.table.refresh()
            self.error = None
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
        self.post_message(SocketsRefreshed())

    def on_sockets_refreshed(self, message: SocketsRefreshed) -> None:
        self.refresh_views()

    def refresh_views(self) -> None:
        """Show the newest refresh (UI thread only)."""
        try:
            bar, table = self.query_one(CountersBar), self.query_one(SocketTable)
        except NoMatches:  # a refresh read as the app closes (its widgets gone): nothing to show it on
            return
        bar.update_view(self.table, None, None)
        table.update_view(self.table)
        self._update_title()

    def _update_title(self) -> None:
        st = self.table.status()
        t = Text()
        t.append("tcpview", "bold")
        t.append("  sockets  ")
        t.append(getattr(self.table, "title", "kernel TCP table") + f", every {self.interval:g} s", "dim")
        if st:
            t.append(f"   {st['sockets']} sockets, {st['connections']} connections")
        if self.table.last_ts is not None:
            t.append("   " + time.strftime("%H:%M:%S", time.localtime(self.table.last_ts)))
        snap = self.table.snap
        if snap is not None and snap.source != "sock_diag":
            t.append(f"   read from {snap.source}: netlink sock_diag unavailable, no tcp_info", "yellow")
        if snap is not None and snap.hidden:
            t.append(f"   other users' processes unknown ({snap.hidden}): run as root to see them", "yellow")
        if self.paused:
            t.append("   PAUSED", "bold reverse")
        if self.error:
            t.append("   " + safe(self.error), "bold red")
        self.query_one("#title", Static).update(t)
        table = self.query_one(SocketTable)
        shown, total = len(table.rows), len(self.table.conns)
        title = Text(f"Connections {shown}" if shown == total else f"Connections {shown} of {total}")
        if table.conn_query.text:
            title.append(f" ─ filter: {safe(table.conn_query.text)}")
        if table.sort != "id":
            title.append(f" ─ sort: {SORT_TITLES[table.sort]}")
        table.border_title = title

    # -- actions ------------------------------------------------------------------------------
    def action_pause(self) -> None:
        """Stop refreshing (to read a table that keeps changing), or start again."""
        self.paused = not self.paused
        if not self.paused:
            self._read()
        self._update_title()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        self.query_one(SocketTable).sort_next()
        self._update_title()

    def action_toggle_counters(self) -> None:
        """All states' counters, or only the main four."""
        bar = self.query_one(CountersBar)
        bar.show_all = not bar.show_all

    def action_set_filter(self, text: str) -> None:
        """Filter the table."""
        q = self.query_one(SocketTable).set_query(text)
        if q.errors:
            self.notify("; ".join(q.errors), title="filter", severity="warning", markup=False)
        self._update_title()

    def action_filter(self) -> None:
        """Open the filter box."""
        self.query_one(Prompt).open("filter", self.query_one(SocketTable).conn_query.text,
                                    "filter: state:CLOSE_WAIT port:443 proc:nginx pid:1234 user:www-data 10.0.0.5   "
                                    "(enter keep, esc cancel)",
                                    check=check_query)

    def action_clear_filter(self) -> None:
        """Close the filter box, or clear the filter."""
        prompt = self.query_one(Prompt)
        if prompt.is_open:
            prompt.action_cancel()
            return
        if self.query_one(SocketTable).conn_query.text:
            self.action_set_filter("")

    @on(Prompt.Edited, "#prompt")
    def _prompt_edited(self, event: Prompt.Edited) -> None:
        if event.error is None:  # the filter applies as it is typed, a bad term never
            self.query_one(SocketTable).set_query(event.value)
        self._update_title()

    @on(Prompt.Cancelled, "#prompt")
    def _prompt_cancelled(self, event: Prompt.Cancelled) -> None:
        # Esc puts back the filter the box was opened with, as in the capture viewer
        table = self.query_one(SocketTable)
        table.set_query(event.restore)
        self._update_title()
        table.focus()

    @on(Prompt.Accepted, "#prompt")
    def _prompt_accepted(self, event: Prompt.Accepted) -> None:
        self.query_one(Prompt).close()
        self.query_one(SocketTable).focus()
        self.action_set_filter(event.value)

    def on_counters_bar_state_clicked(self, message: CountersBar.StateClicked) -> None:
        self.action_set_filter(f"state:{message.state}")

    # -- one connection in full ----------------------------------------------------------------
    def on_socket_table_socket_chosen(self, message: SocketTable.SocketChosen) -> None:
        snap = self.table.snap
        self.push_screen(SocketDetailScreen(message.cid, message.conn, snap.hidden if snap is not None else 0))


def run_sockets_app(interval: float = 1.0, theme: str | Theme | None = None, table: KernelTable | None = None) -> int:
    """Run ``tcpview sockets`` until the user quits (``table``: another table to show, such
    as the kernel events' of ``live --kernel``)."""
    app = SocketsApp(table, interval=interval, theme=theme)
    app.run()
    return app.return_code or 0
