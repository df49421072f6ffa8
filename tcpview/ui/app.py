"""The tcpview Textual app: one app for every source (file, stdin, live capture, simulator).

The source, its timeline, the pump and the player are one
:class:`~tcpview.engine.session.Session`. Threads: a worker thread reads the source and feeds
the tracker in batches (:meth:`Session.feed <tcpview.engine.session.Session.feed>`), posting
one replaceable message per batch. Only the UI thread touches widgets: on a timer tick (and
right after a key) it reads the timeline at the player's cursor and updates the views.
Nothing is recomputed when the cursor moves; the views read a different prefix of the
append-only timeline. A live capture's clock moves without packets: the tick shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.theme import Theme
from textual.widgets import Footer

from ..engine.analysis.query import read_ahead
from ..engine.pump import BatchInfo
from ..engine.session import Session
from ..engine.timeline.timeline import Timeline
from ..pacer import start_pacing, stop_pacing
from ..textutil import safe
from .bindings import VIEWER_BINDINGS
from .commands import TcpviewCommands
from .messages import BatchArrived, SourceEnded
from .player_keys import PlayerKeys
from .prompts import PromptQuestions
from .screens.detail import DetailScreen
from .screens.help import HelpScreen
from .styles import theme_variable_defaults
from .themes.install import install_themes, notify_failures
from .widgets.conn_table import ConnectionTable, sort_title
from .widgets.counters import CountersBar
from .widgets.graph_pane import GraphPane
from .widgets.ladder import Ladder
from .widgets.player_bar import PlayerBar
from .widgets.prompt import Prompt
from .widgets.slow_bar import SlowBar
from .widgets.stream_pane import StreamPane
from .widgets.why_line import WhyLine

SETTLE_SECONDS = 1.0
"""At most this long between view updates that include what changes with the clock alone."""

DRAW_SHARE = 0.25
"""The most of the time ticks spend drawing: after a refresh that took d seconds (its wall time,
which grows when the CPUs are busy), the next waits until ``d / DRAW_SHARE`` has passed (at
most :data:`SETTLE_SECONDS`). A live stream of 100,000 connections makes each refresh read them
all; ten a second would take the CPU its producer needs (tcpdump, which drops what it cannot
take in time), and the answers are the same a few tenths of a second later."""

CATCH_UP_SECONDS = 3.0
"""While a stream's reader is far behind its producer (:attr:`PlayerBar.far_behind`: at its
start, the viewer's first second or two), the views wait this long between updates, but for
keys (the bar, which says how far behind, is drawn as always). Catching up, the reader's
analysis takes a CPU for a second or more; the views drawn beside it, each reading tens of
thousands of new connections, are what made the producer drop then."""

STREAM_DRAW_SHARE = 0.05
"""The same while a stream comes in (``tcpdump -U -w - | tcpview replay -``): its producer
may share the CPUs with the viewer, and whatever CPU time the viewer takes (even at a low
priority) can be what delays the producer past its kernel buffer's few tens of milliseconds
where the CPUs are busy. Measured under connection churn on 2 cores, tcpdump writing into
``replay -`` (two runs each, taking turns): it dropped 2.3% and 3.8% of its packets with the
drawing at a quarter of the time, 0.9% and 1.1% at a twentieth."""

PAUSED_HINT = "paused — space to play"
"""What the bar says while a scenario waits at its beginning."""


class TcpviewApp(PlayerKeys, PromptQuestions, App[int]):
    """Connections, their ladder and the state counters of one source, with a player.

    Args:
        source: a :class:`tcpview.sources.base.Source` (file, stdin, live capture, simulator).
        msl2: TIME_WAIT duration in capture seconds (2*MSL).
        fin_timeout: orphaned FIN_WAIT_2 lifetime in capture seconds.
        tick: seconds between UI updates (the views read the timeline on this tick).
        at: put the cursor this many seconds after the first packet once it is read.
        theme: a theme name or a :class:`textual.theme.Theme` (see :mod:`tcpview.ui.themes`);
            None picks the default.
        memory: the most the timeline may use in bytes (None: no limit).
        speed: the player's starting speed (1x when None).
        paused_at_start: open paused before the first packet, the bar saying that space plays
            (a scenario: nothing happens before the user asks).
        read_hint: asked once the source is read to its end, with the timeline: a hint to
            notify, or None (several captures far apart in time: the command line's).
    """

    CSS_PATH = "tcpview.tcss"
    TITLE = "tcpview"
    COMMANDS = App.COMMANDS | {TcpviewCommands}

    BINDINGS = VIEWER_BINDINGS

    def __init__(self, source, *, msl2: float = 60.0, fin_timeout: float = 60.0, tick: float = 0.1,
                 theme: str | Theme | None = None, at: float | None = None, memory: int | None = None,
                 speed: float | None = None, paused_at_start: bool = False,
                 read_hint: Callable[[Timeline], str | None] | None = None) -> None:
        super().__init__()
        self._start_at = at
        self._read_hint = read_hint
        self._rewind = paused_at_start
        # tcpview's themes and the user's; None picks the default (monochrome under NO_COLOR)
        self._theme_failures = install_themes(self, theme)
        self.session = Session(source, msl2=msl2, fin_timeout=fin_timeout, memory=memory, speed=speed)
        self.tick_seconds = tick
        self._clock: float | None = None  # the capture time the views last showed as "now"
        self._following = True  # whether the footer last offered the way back to live
        self._told_eviction = False
        self._dirty = True
        self._last_tick = time.monotonic()
        self._absolute = False
        self._titles: tuple[str, str, str] = ("", "", "")
        self._last_settle = 0.0
        self._next_draw = 0.0  # no tick refreshes the views before this (see DRAW_SHARE)
        self.draw_share = DRAW_SHARE
        """The most of the time ticks spend drawing (:data:`DRAW_SHARE`; :data:`STREAM_DRAW_SHARE`
        once the source says it is a stream)."""
        self._unsettled = False

    # -- composition ----------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults(self.current_theme)

    def compose(self) -> ComposeResult:
        yield PlayerBar(self.player, getattr(self.source, "name", "source"), id="player")
        yield CountersBar(id="counters")
        yield ConnectionTable(id="table")
        with Vertical(id="ladder-box"):
            yield SlowBar(id="slow-bar")
            yield Ladder(id="ladder")
            yield GraphPane(id="graph")
            yield StreamPane(id="stream")
            yield WhyLine(id="why", classes="-empty")
        yield Prompt(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        # kept, not queried: app.query_one searches the active screen, which may be a modal
        self._table = self.query_one(ConnectionTable)
        self._ladder = self.query_one(Ladder)
        self._graph = self.query_one(GraphPane)
        self._graph.display = False
        self._graph.frames = self.pump.frames.get
        self._stream = self.query_one(StreamPane)
        self._stream.display = False
        self._counters = self.query_one(CountersBar)
        self._bar = self.query_one(PlayerBar)
        self._why = self.query_one(WhyLine)
        self._slow = self.query_one(SlowBar)
        self._prompt = self.query_one(Prompt)
        self._ladder_box = self.query_one("#ladder-box")
        notify_failures(self, self._theme_failures)
        bar = self._bar
        bar.reading = not self.player.live
        if self.player.live:  # as top and htop list: the newest activity first (until a sort is picked)
            self._table.sort_by("idle", reverse=False)
        self._table.focus()
        self._read_source()
        self.set_interval(self.tick_seconds, self._tick, name="ui-tick")
        self.refresh_views()

    def on_unmount(self) -> None:
        self.session.stop.set()
        stop_pacing()

    # -- the worker -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="source", name="read-source")
    def _read_source(self) -> None:
        def posted(info: BatchInfo) -> None:
            if not info.done and self.player.live and self.player.following:
                read_ahead(self.tl)  # here, not on the thread that draws (see read_ahead)
            self.post_message(SourceEnded(info) if info.done else BatchArrived(info))

        self.session.feed(posted)

    def on_batch_arrived(self, message: BatchArrived) -> None:
        bar = self._bar
        bar.read_share = message.info.progress
        bar.preparing = message.info.preparing
        self._source_status()
        self._dirty = True
        self._maybe_start_at()
        self._tell_eviction()
        self._show_kernel_events()

    def _source_status(self) -> None:
        """What a stream says of itself on the bar: how far the reader is behind its producer,
        and the packets the capture lost (a pcapng's statistics)."""
        status = getattr(self.source, "status", None)
        st = status() if status is not None else {}
        if "waiting" in st:  # a stream
            self.draw_share = STREAM_DRAW_SHARE
            if not self._bar.ended:  # while it pours in, the views are read in short turns
                start_pacing()
        self._bar.behind = int(st.get("waiting", 0))
        self._bar.lost = st.get("dropped")

    def _tell_eviction(self) -> None:
        """Say once that the memory budget made the oldest connections leave the timeline."""
        if self._told_eviction or not self.tl.evicted["connections"]:
            return
        self._told_eviction = True
        budget = self.tl.budget or 0
        back = ("going back there reads the file again" if self.session.can_read_again()
                else "seeking back stops at what is kept")
        self.notify(f"The timeline reached its memory budget ({budget >> 20} MiB): the oldest connections and "
                    f"segments leave it, and {back}. --memory sets the budget.",
                    title="memory", timeout=12, markup=False)

    def _maybe_start_at(self) -> None:
        tl, at = self.tl, self._start_at
        if at is None or tl.first_ts is None or tl.last_ts is None:
            return
        if self.loaded or tl.last_ts >= tl.first_ts + at:
            self._start_at = None
            self.seek_offset(at)

    def on_source_ended(self, message: SourceEnded) -> None:
        if not self.session.ended(message.info):  # a reading left for another (read again, switched)
            message.prevent_default()
            return
        bar = self._bar
        bar.reading = False
        bar.read_share = None
        bar.preparing = False
        bar.ended = self.player.live  # a stream's producer stopped: it is not live any more
        self._source_status()
        stop_pacing()
        if message.info.error:
            self.notify(safe(message.info.error), title="capture damaged" if self.tl.packets else "cannot read",
                        severity="error", timeout=15, markup=False)
        if self._read_hint is not None:
            hint, self._read_hint = self._read_hint(self.tl), None  # once: not again on a read again
            if hint:
                self.notify(safe(hint), title="captures far apart", severity="warning", timeout=20, markup=False)
        self._dirty = True
        self._maybe_start_at()
        self._show_kernel_events()
        self.refresh_views()

    # -- the UI tick ----------------------------------------------------------------------
    def _tick(self) -> None:
        if not self._bar.is_attached:  # the app is closing: its widgets are going
            return
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        moved = self.player.tick(dt)
        # a cursor that has just stopped (end of the capture) settles at once
        settle = now - self._last_settle >= SETTLE_SECONDS or (moved and not self.player.playing)
        # a live capture's clock moves on without packets: now, idle and the timers with it
        ticked = self.player.live and self.tl.clock != self._clock
        if settle and self.player.live:  # a quiet stream's reader still tells what it learnt
            self._source_status()
        held = self._bar.far_behind and now - self._last_settle < CATCH_UP_SECONDS
        if held or now < self._next_draw:
            self._dirty = self._dirty or moved or ticked
            if held:
                self._bar.refresh_if_changed()  # (how far behind)
            return
        if moved or ticked or self._dirty or self._table.behind or (settle and self._unsettled):
            self.refresh_views(settle=settle)
            took = time.monotonic() - now
            self._next_draw = now + min(SETTLE_SECONDS, took / self.draw_share)

    def refresh_views(self, force: bool = False, settle: bool = True) -> None:
        """Read the timeline at the cursor into every view (UI thread only).

        Each view repaints only what changed. Timer ticks in between the once-a-second
        ``settle`` ones let what changes with the clock alone lag (idle and age columns, the
        connection count in the title, the scroll bar, the sparklines): over a slow link
        these would otherwise repaint the table on every tick. Keys always settle.
        """
        tl = self.tl
        p = self.player
        self.session.bounds()
        self._clock = tl.clock
        if self._rewind and tl.first_ts is not None:  # a scenario waits at its beginning
            self._rewind = False
            p.rewind()
            self._bar.hint = PAUSED_HINT
        if p.following != self._following:  # the footer offers the way back to live, or not
            self._following = p.following
            self.refresh_bindings()
        t, pos = p.query_time(), p.position()
        if tl.pin is not None and self._start_at is None:
            tl.pin = t  # read again for a cursor: reading goes on as it moves (None: to the end)
        table = self._table
        table.update_view(tl, t, pos, force=force, settle=settle)
        self._ladder.show(tl, table.selected, t)
        self._slow.show(tl, table.selected, t)
        self._show_pane(table.selected, t)
        self._counters.update_view(tl, t, pos, settle=settle)
        self._bar.refresh_if_changed()
        self._update_titles(settle)
        self._dirty = False
        self._unsettled = not settle
        if settle:
            self._last_settle = time.monotonic()

    def _update_titles(self, settle: bool = True) -> None:
        table = self._table
        if settle or not self._titles[0]:
            total = self.tl.conn_count_at(self.player.query_time())
            shown = len(table.rows)
            title = f"Connections {shown}" if shown == total else f"Connections {shown} of {total}"
            q = table.model.query.text
            if q:
                title += f" ─ filter: {safe(q)}"
            if table.model.sort != "id" or table.model.reverse:
                title += f" ─ sort: {sort_title(table.model.sort, table.model.reverse)}"
        else:
            title = self._titles[0]  # the count waits for the next settling update
        cid = table.selected
        c = self.tl.conns.get(cid)
        ladder = "Ladder" if c is None else f"#{cid}  {c.client_text()} ⇄ {c.server_text()}"
        titles = (title, ladder, "absolute seq" if self._absolute else "")
        if titles == self._titles:
            return  # setting a border title repaints the whole box
        old, self._titles = self._titles, titles
        box = self._ladder_box
        # Text, not str: a filter or an address is never read as markup
        if titles[0] != old[0]:
            table.border_title = Text(titles[0])
        if titles[1] != old[1]:
            box.border_title = Text(titles[1])
        if titles[2] != old[2]:
            box.border_subtitle = Text(titles[2])

    # -- messages from the widgets --------------------------------------------------------
    def on_connection_table_row_highlighted(self, message: ConnectionTable.RowHighlighted) -> None:
        self._ladder.show(self.tl, message.cid, self.player.query_time())
        self._slow.show(self.tl, message.cid, self.player.query_time())
        self._show_pane(message.cid, self.player.query_time())
        self._update_titles()

    def on_connection_table_flagged_chosen(self, message: ConnectionTable.FlaggedChosen) -> None:
        self._ladder.show(self.tl, message.cid, self.player.query_time())
        self._ladder.to_flagged(-1 if message.step > 0 else 1 << 62, message.step)

    def on_connection_table_row_selected(self, message: ConnectionTable.RowSelected) -> None:
        self._ladder.focus()

    def on_ladder_row_highlighted(self, message: Ladder.RowHighlighted) -> None:
        self._why.explain_row(self.tl, message.cid, message.row)

    def on_ladder_back_requested(self, message: Ladder.BackRequested) -> None:
        self._table.focus()

    def on_ladder_row_selected(self, message: Ladder.RowSelected) -> None:
        self._inspect(message.cid, message.row)

    def on_player_bar_seek_requested(self, message: PlayerBar.SeekRequested) -> None:
        self._move_cursor(partial(self.player.seek_fraction, message.fraction), pause=False)

    def on_graph_pane_seek_requested(self, message: GraphPane.SeekRequested) -> None:
        self._move_cursor(partial(self.player.seek, message.t), pause=False)

    def _show_pane(self, cid: int | None, t: float | None) -> None:
        """The graph or stream pane, when it is the one shown, reads the selected connection."""
        if self._graph.display:
            self._graph.show(self.tl, cid, t)
        if self._stream.display:
            self._stream.show(self.tl, cid, self.pump.frames.get, t)

    def _switch_pane(self, pane) -> None:
        """Show ``pane`` in the ladder's place (the ladder again when it is shown already)."""
        show = not pane.display
        for other in (self._graph, self._stream):
            other.display = False
        pane.display = show
        self._ladder.display = not show
        if show:
            self._show_pane(self._table.selected, self.player.query_time())
            pane.focus()
        else:
            self._ladder.focus()

    def action_toggle_graph(self) -> None:
        """v: the graph of the selected connection instead of its ladder, and back."""
        self._switch_pane(self._graph)

    def action_toggle_stream(self) -> None:
        """f: what the selected connection carried instead of its ladder, and back."""
        self._switch_pane(self._stream)

    def on_counters_bar_state_clicked(self, message: CountersBar.StateClicked) -> None:
        self.action_set_filter(f"state:{message.state}")

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    def _inspect(self, cid: int, row) -> None:
        from ..engine.output.outer import outer_layers, outer_text
        from ..sources.dissect import dissect

        c = self.tl.conns[cid]
        who = "client → server" if row.c2s else "server → client"
        head = f"#{cid} {c.client_text()} ⇄ {c.server_text()}   {who}   {row.label}"
        got = self.pump.frames.get(row.frame)
        if got is None:
            d, missing = None, f"frame {row.frame}: its bytes are no longer kept (only recent frames are, for this source)"
        else:
            d, missing = dissect(*got), ""
            outer = outer_layers(got[0], got[1], len(got[1]))
            if outer:
                head += f"\nthrough {outer_text(outer)}"
        title = f"frame {row.frame}  at {row.ts - (self.tl.first_ts or 0):.6f} s"
        caps = self.tl.captures  # several captures merged: the file this frame came from
        source = (caps.name(row.frame) or "?") if caps is not None else None
        self.call_from_thread(self.push_screen, DetailScreen(title, head, d, missing, source))

    # -- table / ladder actions -----------------------------------------------------------
    def action_sort_next(self) -> None:
        """Sort the table by the next column."""
        self._table.sort_next()
        self.refresh_views()

    def action_sort_reverse(self) -> None:
        """Reverse the table's order."""
        table = self._table
        table.sort_by(table.model.sort, reverse=not table.model.reverse)
        self.refresh_views()

    def action_sort(self, key: str) -> None:
        """Sort the table by a column key."""
        self._table.sort_by(key, reverse=False)
        self.refresh_views()

    def action_set_filter(self, text: str) -> None:
        """Filter the table with a query."""
        q = self._table.set_query(text)
        if q.errors:
            self.notify("; ".join(q.errors), title="filter", severity="warning", markup=False)
        self.refresh_views()

    def action_clear_filter(self) -> None:
        """Close the input box if open; from the graph or the stream, back to the table (as the
        ladder's Escape); else clear the filter."""
        if self._prompt.is_open:
            self._prompt.action_cancel()
            return
        if self.focused is not None and self.focused in (self._graph, self._stream):
            self._table.focus()
            return
        if self._table.model.query.text:
            self.action_set_filter("")

    def action_evidence(self, step: int) -> None:
        """w / W: the ladder to the next (previous) segment the diagnosis points at."""
        self._ladder.evidence(step)

    def action_toggle_absolute(self) -> None:
        """Absolute or relative sequence numbers in the ladder."""
        self._absolute = not self._absolute
        self._ladder.absolute = self._absolute
        self._update_titles()

    def action_toggle_counters(self) -> None:
        """All states' counters, or only the main four."""
        bar = self._counters
        bar.show_all = not bar.show_all

    def action_inspect(self) -> None:
        """Dissect the frame under the ladder cursor."""
        self._ladder.action_inspect()

    def action_focus_table(self) -> None:
        """Focus the connection table."""
        self._table.focus()

    def action_focus_ladder(self) -> None:
        """Focus the ladder."""
        self._ladder.focus()

    def action_help(self) -> None:
        """Show every key binding."""
        self.push_screen(HelpScreen())
