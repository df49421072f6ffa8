"""The Textual app driven with Pilot on a capture with known states (see uihelp).

Every expectation comes from the TCP rules applied to the frames written in
``uihelp.frames`` (times are seconds after the first packet). Filtering and sorting the
connection table are in test_ui_app_filter.py; the shared fixture and helpers in uiapphelp.py.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from helpers import wait_until
from uiapphelp import SIZES, capture_fixture, loaded, seek  # noqa: F401  (capture_fixture: the capture fixture)
from uihelp import T0, Notes, palette_offers

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.counters import CountersBar
from tcpview.ui.widgets.ladder import Ladder
from tcpview.ui.widgets.why_line import WhyLine


def line_text(widget, y: int) -> str:  # type: ignore[no-untyped-def]
    """What a Line-API widget renders on its content line y."""
    return widget.render_line(y).text


def counters(app: TcpviewApp) -> dict[str, int]:
    return dict(app.query_one(CountersBar).counts)


@pytest.mark.parametrize("size", SIZES)
async def test_opens_at_the_end_with_the_final_states(capture: Path, size: tuple[int, int]) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=size) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        assert list(table.rows) == [0, 1, 2, 3]
        assert app.player.following and app.player.position() == pytest.approx(T0 + 2.6)
        c = counters(app)
        assert (c["TIME_WAIT"], c["CLOSE_WAIT"], c["FIN_WAIT_2"], c["SYN_SENT"], c["SYN_RECEIVED"]) == (1, 1, 1, 1, 1)
        assert c["ESTABLISHED"] == 0
        # the rows on screen: header then one line per connection with both states
        assert "client" in line_text(table, 0)
        row0, row1, row2, row3 = (line_text(table, y) for y in (1, 2, 3, 4))
        assert "10.0.0.1:40000" in row0 and "FIN_WAIT_2" in row0 and "CLOSE_WAIT" in row0
        assert "TIME_WAIT" in row1 and "CLOSED" in row1
        assert row2.count("CLOSED") == 2
        assert "SYN_SENT" in row3 and ("SYN_RECEIVED" in row3 or "SYN_RECV" in row3)


async def test_step_and_seek_move_the_cursor(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("home")
        assert app.player.position() == pytest.approx(T0)
        await pilot.press("right", "right")
        assert app.player.position() == pytest.approx(T0 + 0.2)
        await pilot.press("period")
        assert app.player.position() == pytest.approx(T0 + 0.3)
        await pilot.press("left")
        assert app.player.position() == pytest.approx(T0 + 0.2)
        await pilot.press("comma")
        assert app.player.position() == pytest.approx(T0 + 0.1)
        await pilot.press("right_square_bracket")  # +10% of 2.6 s
        assert app.player.position() == pytest.approx(T0 + 0.36)
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert app.player.position() == pytest.approx(T0)  # clamped at the start
        await pilot.press("G")
        assert app.player.following
        await pilot.press("g")
        assert app.player.position() == pytest.approx(T0)
        await pilot.press("end")
        assert app.player.position() == pytest.approx(T0 + 2.6)
        await seek(app, pilot, 1.25)
        assert app.player.offset() == pytest.approx(1.25)


async def test_counters_follow_the_cursor_back_and_forth(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        await seek(app, pilot, 0.55)  # conn 0 after the client's FIN
        c = counters(app)
        assert (c["FIN_WAIT_1"], c["CLOSE_WAIT"], c["ESTABLISHED"], c["TIME_WAIT"]) == (1, 1, 0, 0)
        await seek(app, pilot, 1.25)  # conn 1 established, conn 0 half-closed
        c = counters(app)
        assert (c["FIN_WAIT_2"], c["CLOSE_WAIT"], c["ESTABLISHED"]) == (1, 1, 2)
        await seek(app, pilot, 0.25)  # back: only conn 0, established
        c = counters(app)
        assert (c["ESTABLISHED"], c["CLOSE_WAIT"], c["FIN_WAIT_2"]) == (2, 0, 0)
        assert list(app.query_one(ConnectionTable).rows) == [0]
        await seek(app, pilot, 1.65)  # conn 1: server's FIN acked the client's
        c = counters(app)
        assert (c["TIME_WAIT"], c["LAST_ACK"]) == (1, 1)
        await seek(app, pilot, 2.05)  # refused SYN is there, no RST yet
        assert counters(app)["SYN_SENT"] == 1 and counters(app)["LISTEN"] == 1
        await pilot.press("end")
        c = counters(app)
        assert (c["TIME_WAIT"], c["CLOSE_WAIT"], c["LAST_ACK"], c["SYN_RECEIVED"]) == (1, 1, 0, 1)


async def test_ladder_shows_the_world_as_of_the_cursor(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        ladder = app.query_one(Ladder)
        assert ladder.cid == 0 and ladder.count == 7
        await seek(app, pilot, 0.55)
        assert ladder.count == 6
        last = ladder.row(5)
        assert last is not None and last.client_state == "FIN_WAIT_1" and last.server_state == "CLOSE_WAIT"
        assert "FIN" in last.label and "seq=6" in last.label  # relative: 1 + 5 bytes of data
        why = app.query_one(WhyLine)
        assert "CLOSE_WAIT" in why.explanation and "close()" in why.explanation
        # rendered: the client's new state on the left, the server's on the right of the arrow
        text = line_text(ladder, ladder.count - round(ladder.scroll_y))
        assert text.index("FIN_WAIT_1") < text.index("▶") < text.index("CLOSE_WAIT")
        await seek(app, pilot, 0.15)
        assert ladder.count == 2
        assert ladder.row(1).server_state == "SYN_RECEIVED"  # type: ignore[union-attr]
        await pilot.press("right")  # the handshake's ACK
        assert ladder.count == 3
        row = ladder.row(2)
        assert row is not None and row.client_state == "ESTABLISHED" and row.server_state == "ESTABLISHED"
        assert "three-way handshake" in app.query_one(WhyLine).explanation
        # absolute sequence numbers on a key
        await pilot.press("a")
        await pilot.pause()
        assert "seq=1001" in ladder.row(2).label  # type: ignore[union-attr]
        await pilot.press("a")
        await pilot.pause()
        assert "seq=1 " in ladder.row(2).label  # type: ignore[union-attr]


async def test_selecting_a_connection_and_moving_in_its_ladder(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table, ladder = app.query_one(ConnectionTable), app.query_one(Ladder)
        await pilot.press("j")
        await pilot.pause()
        assert table.selected == 1 and ladder.cid == 1 and ladder.count == 8
        await pilot.press("enter")  # to the ladder
        await pilot.pause()
        assert ladder.has_focus and ladder.cursor == 7
        await pilot.press("k")
        await pilot.pause()
        row = ladder.row(ladder.cursor)
        assert row is not None and row.client_state == "TIME_WAIT" and row.server_state == "LAST_ACK"
        assert not ladder.follow
        assert "TIME_WAIT" in app.query_one(WhyLine).explanation
        await pilot.press("k", "k", "k", "k", "k", "k", "k", "k")  # stops at the first row
        assert ladder.cursor == 0
        await pilot.press("escape")
        await pilot.pause()
        assert table.has_focus
        await pilot.press("j", "j", "j", "j")
        assert table.selected == 3
        await pilot.press("k")
        assert table.selected == 2 and ladder.cid == 2


@pytest.mark.parametrize(("key", "pane"), [("f", "StreamPane"), ("v", "GraphPane")])
async def test_escape_in_the_stream_or_the_graph_goes_back_to_the_table(capture: Path, key: str, pane: str) -> None:
    """As in the ladder (its Escape), Escape in the stream or the graph that took the ladder's
    place goes back to the table; there a second one clears the filter."""
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        app.action_set_filter("port:80")
        await pilot.press("j", "enter", key)  # conn 1's ladder, then its stream (or graph) instead
        await pilot.pause()
        shown = app.query_one(pane)
        if not shown.has_focus:
            shown.focus()
        await pilot.pause()
        assert shown.display and shown.has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert table.has_focus and table.model.query.text == "port:80"
        await pilot.press("escape")
        await pilot.pause()
        assert table.model.query.text == ""


async def test_enter_on_a_segment_shows_scapy_dissection_as_plain_text(capture: Path) -> None:
    from textual.widgets import Static

    from tcpview.ui.screens.detail import DetailScreen

    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        await pilot.press("j", "enter")  # conn 1's ladder
        ladder = app.query_one(Ladder)
        await pilot.press(*["k"] * 4)  # the server's data segment (1.3)
        row = ladder.row(ladder.cursor)
        assert row is not None and "len=7" in row.label
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        show = str(app.screen.query_one("#detail-show", Static).render())
        hexdump = str(app.screen.query_one("#detail-hex", Static).render())
        assert "###[ TCP ]###" in show and "sport" in show
        # the payload is network text: shown literally, the escape made visible
        assert "[b]ok" in show and "\\x1b" in show and "\x1b" not in show
        assert "5B 62 5D 6F 6B 1B 5D" in hexdump
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailScreen)


async def test_clicking_the_timeline_seeks(capture: Path) -> None:
    from tcpview.ui.widgets.player_bar import PlayerBar

    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        bar = app.query_one(PlayerBar)
        drawn = re.search("[━╸┄─]+", bar.build().plain)  # the timeline, as the bar draws it
        assert drawn is not None
        x0, x1 = drawn.span()
        assert x1 - x0 >= 8
        await pilot.click(PlayerBar, offset=(1 + x0, 0))
        await pilot.pause()
        assert app.player.fraction() == pytest.approx(0.0, abs=0.02)
        mid = x0 + (x1 - x0 - 1) // 2
        await pilot.click(PlayerBar, offset=(1 + mid, 0))
        await pilot.pause()
        assert app.player.fraction() == pytest.approx(0.5, abs=0.05)
        assert len(app.query_one(ConnectionTable).rows) == 2  # 1.3 s: conns 0 and 1


async def test_play_moves_the_cursor_and_stops_at_the_end(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)), tick=0.02)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("home")
        for _ in range(4):
            await pilot.press("plus")  # 1x -> 2x, 5x, 10x, 100x
        assert app.player.speed == 100
        await pilot.press("minus", "minus", "minus")
        assert app.player.speed == 2  # 2.6 s of capture in 1.3 s
        # Pilot waits for an idle app, which a playing one is not until the end: call the
        # action the space key runs and let the UI ticks move the cursor meanwhile
        app.action_play_pause()
        assert app.player.playing
        # the ticks move the cursor: check it once it has passed 0.2 s, short of the end
        await wait_until(lambda: app.player.position() > T0 + 0.2, 10, 0.05, asyncio.sleep)
        assert app.player.playing and T0 + 0.2 < app.player.position() < T0 + 2.0
        await wait_until(lambda: not app.player.playing, 10, 0.05, asyncio.sleep)
        assert not app.player.playing and app.player.position() == pytest.approx(T0 + 2.6)
        assert counters(app)["TIME_WAIT"] == 1
        app.action_play_pause()  # at the end: plays again from the start
        assert app.player.playing and app.player.position() < T0 + 0.5
        await pilot.press("space")
        assert not app.player.playing
        await pilot.press("g", "plus", "plus", "plus", "plus", "space")  # 100x: through to the end
        assert not app.player.playing and app.player.position() == pytest.approx(T0 + 2.6)


def spy_refresh(widget) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Record the regions of every ``refresh`` of ``widget`` (an empty tuple: all of it)."""
    calls: list[tuple] = []
    original = widget.refresh

    def refresh(*regions, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(regions)
        return original(*regions, **kwargs)

    widget.refresh = refresh
    return calls


async def test_views_repaint_only_what_changed(capture: Path) -> None:
    """Every repainted cell goes down the wire (SSH): an update that changes nothing repaints
    nothing, and a step repaints the one table row that changed, not the table."""
    from tcpview.ui.widgets.player_bar import PlayerBar

    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        app.seek_offset(1.35)  # conn 0 is done; conn 1 has 4 segments
        await pilot.pause()
        table, ladder = app.query_one(ConnectionTable), app.query_one(Ladder)
        widgets = (table, ladder, app.query_one(CountersBar), app.query_one(PlayerBar), app.query_one("#ladder-box"))
        calls = [spy_refresh(w) for w in widgets]
        app.refresh_views()
        await pilot.pause()
        assert calls == [[], [], [], [], []]
        assert line_text(table, 2).split()[5] == "4"  # conn 1: pkts
        app.action_step(1)  # 1.4 s: conn 1's fifth segment, an ACK; conn 0 (the ladder's) unchanged
        await pilot.pause()
        assert line_text(table, 2).split()[5] == "5"
        assert calls[0] and all(len(regions) == 1 for regions in calls[0])  # never the whole table
        assert {(r.y, r.height) for (r,) in calls[0]} == {(2, 1)}
        assert calls[1] == [] and calls[4] == []  # the ladder and its box did not change
        assert calls[3] and all(regions for regions in calls[3])  # the clock's cells only


async def test_clock_columns_wait_for_the_settling_tick(capture: Path) -> None:
    """While the cursor moves by itself, idle/age count to the time they last showed until
    the once-a-second settling update; a key brings them to the cursor at once."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(150, 40)) as pilot:  # wide enough for both clock columns beside slow
        await loaded(app, pilot)
        app.seek_offset(1.35)
        await pilot.pause()
        table = app.query_one(ConnectionTable)
        keys = [c.key for c in table.columns()]
        assert keys[keys.index("idle") + 1] == "age"
        assert table.clock == pytest.approx(T0 + 1.35)
        before = line_text(table, 1)

        def idle_age(line: str) -> list[str]:
            return [w for w in line.split() if w.endswith("s") and w[0].isdigit() and not w.endswith("ms")][-2:]

        assert idle_age(before) == ["0.75s", "1.3s"]  # conn 0: last segment at 0.6, first at 0
        app.player.t = T0 + 1.38  # as a playing cursor moves between ticks
        app.refresh_views(settle=False)
        await pilot.pause()
        assert table.clock == pytest.approx(T0 + 1.35) and line_text(table, 1) == before
        app.refresh_views(settle=True)
        await pilot.pause()
        assert table.clock == pytest.approx(T0 + 1.38)
        assert idle_age(line_text(table, 1)) == ["0.78s", "1.4s"]
        app.seek_offset(1.2)  # backwards: never counts from a time after the cursor
        app.refresh_views(settle=False)
        assert table.clock == pytest.approx(T0 + 1.2)


async def test_help_lists_every_binding(capture: Path) -> None:
    from textual.widgets import Static

    from tcpview.ui.screens.help import HelpScreen, key_rows

    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.query_one("#help-keys", Static)
        assert keys.region.height > 20
        table = keys.content
        from rich.console import Console

        console = Console(width=100, record=True)
        console.print(table)
        text = console.export_text()
        for b in TcpviewApp.BINDINGS:
            assert (b.tooltip or b.description) in text  # type: ignore[union-attr]
        assert len(key_rows()) >= len(TcpviewApp.BINDINGS) + len(Ladder.BINDINGS)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_runs_actions(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        await pilot.press("home")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"step forward")
        assert await palette_offers(app, pilot, "step forward")
        await pilot.press("enter")
        assert await wait_until(lambda: app.player.position() == pytest.approx(T0 + 0.1), 10, 0.02, pilot.pause)
        await pilot.press("ctrl+p")
        await pilot.press(*"filter: state close_wait")
        assert await palette_offers(app, pilot, "state close_wait")
        await pilot.press("enter")
        table = app.query_one(ConnectionTable)
        assert await wait_until(lambda: table.model.query.text == "state:CLOSE_WAIT", 10, 0.02, pilot.pause)


async def test_a_cut_short_capture_is_a_notification_not_a_crash(capture: Path, tmp_path: Path) -> None:
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 20])  # the last record loses its end
    app = TcpviewApp(FileSource(str(cut)))
    notes = Notes()
    async with app.run_test(size=(80, 24), message_hook=notes) as pilot:
        await loaded(app, pilot)
        assert app.load_error and "cut short" in app.load_error
        assert [n.severity for n in notes] == ["error"]
        assert len(app.query_one(ConnectionTable).rows) == 4  # everything before the damage
        await pilot.press("home", "right")
        assert app.player.position() == pytest.approx(T0 + 0.1)


async def test_the_player_bar_says_how_much_is_read_while_a_file_loads(capture: Path) -> None:
    """While a file loads the bar shows "read N%" itself: nothing covers it (Textual's own
    ``loading`` would put a loading indicator over the whole bar)."""
    from tcpview.engine.pump import BatchInfo
    from tcpview.ui.messages import BatchArrived
    from tcpview.ui.widgets.player_bar import PlayerBar

    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        bar = app.query_one(PlayerBar)
        bar.reading = True  # as while the reader runs; then what it posts mid-file
        app.post_message(BatchArrived(BatchInfo(10, 0.42)))
        await pilot.pause()
        assert not bar.loading
        assert "read 42%" in bar.build().plain
