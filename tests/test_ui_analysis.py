"""Analysis in the app (Pilot): tags on ladder rows in their theme colours, ``n`` / ``N`` to
the next / previous flagged segment (across connections from the table), and the
``analysis:`` filter. The capture: connection 0 clean, connection 1 retransmits and gets
duplicate ACKs, connection 2 clean, connection 3 a zero window."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Flow, wait_until, write_frames_pcap
from uihelp import lossy_frames as _frames

from tcpview.engine.output.ladder import tags
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.ladder import Ladder


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_frames_pcap(tmp_path / "flags.pcap", _frames())


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


def _row_tags(ladder: Ladder) -> list[str]:
    row = ladder.row(ladder.cursor)
    assert row is not None
    return [text for text, _kind in tags(row)]


async def test_n_and_shift_n_go_from_flag_to_flag(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        table, ladder = app.query_one(ConnectionTable), app.query_one(Ladder)
        table.focus()
        table.move_cursor(0)
        await pilot.pause()
        await pilot.press("n")  # from the table: the next connection with a flag, on its first flag
        await pilot.pause()
        assert table.selected == 1
        assert ladder.cid == 1
        assert _row_tags(ladder) == ["dup-ack #1"]
        ladder.focus()
        await pilot.press("n", "n")
        await pilot.pause()
        assert _row_tags(ladder) == ["dup-ack #3"]
        await pilot.press("n")
        await pilot.pause()
        assert _row_tags(ladder) == ["retrans"]
        cursor = ladder.cursor
        await pilot.press("n")  # no flag after it: the cursor stays
        await pilot.pause()
        assert ladder.cursor == cursor
        await pilot.press("N")
        await pilot.pause()
        assert _row_tags(ladder) == ["dup-ack #3"]
        # what the row shows: the label and the tag, the tag in its own colour
        lines = [ladder.render_line(y) for y in range(ladder.size.height)]
        strip = next(line for line in lines if "[dup-ack #3]" in line.text)
        tag_style = ladder.get_component_rich_style("ladder--tag-loss")
        assert any(seg.text == "[dup-ack #3]" and seg.style is not None and seg.style.color == tag_style.color
                   for seg in strip)
        table.focus()
        await pilot.press("n")  # on to the zero window
        await pilot.pause()
        assert table.selected == 3
        assert _row_tags(ladder) == ["zero-win"]
        await pilot.press("N")  # back: connection 1, on its last flag
        await pilot.pause()
        assert table.selected == 1
        assert _row_tags(ladder) == ["retrans"]


async def test_the_analysis_filter(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        table.focus()
        for query, expected in (("analysis:retransmission", [1]), ("analysis:dup-ack", [1]),
                                ("an:zero-win", [3]), ("analysis:window_full", [])):
            await pilot.press("slash", *query, "enter")
            await pilot.pause()
            assert list(table.rows) == expected, query
            await pilot.press("escape")
            await pilot.pause()
        assert list(table.rows) == [0, 1, 2, 3]


async def test_unanswered_syns_show_as_half_open_on_the_counters_bar(tmp_path: Path) -> None:
    from tcpview.ui.widgets.counters import CountersBar

    frames: list = []
    for i in range(5):  # SYNs never answered
        Flow(cip=f"10.9.0.{i + 1}", cport=50000 + i, t0=1.0 + i * 0.1, frames=frames).c("S")
    ok = Flow(cport=41000, t0=2.0, frames=frames)
    ok.handshake()
    frames.sort(key=lambda f: f[0])
    path = write_frames_pcap(tmp_path / "flood.pcap", frames)
    app = TcpviewApp(FileSource(str(path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        bar = app.query_one(CountersBar)
        assert app.tl.half_open_at() == 5
        assert "half-open 5" in bar.build().plain
        app.seek_offset(0.25)  # three SYNs so far
        await pilot.pause()
        assert "half-open 3" in bar.build().plain
        app.seek_offset(1.5)
        await pilot.pause()
        assert "half-open 5" in bar.build().plain


async def test_zeek_column_and_filter(tmp_path: Path) -> None:
    # one more connection, refused (REJ), after the four established ones (S1)
    frames = _frames()
    r = Flow(cport=41009, t0=5.0, frames=frames)
    r.c("S")
    r.s("RA")
    path = write_frames_pcap(tmp_path / "mixed.pcap", frames)
    app = TcpviewApp(FileSource(str(path)))
    async with app.run_test(size=(140, 40)) as pilot:
        await _loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        assert "zeek" in [c.key for c in table.columns()]
        lines = [table.render_line(y).text for y in range(table.size.height)]
        header = next(line for line in lines if "zeek" in line)
        at = header.index("zeek")
        cells = [line[at: at + 6].strip() for line in lines if line.strip()[:1].isdigit()]
        assert cells == ["S1", "S1", "S1", "S1", "REJ"]
        table.focus()
        for query, expected in (("zeek:REJ", [4]), ("history:^Sr$", [4]), ("zeek:S1 port:41003", [3])):
            await pilot.press("slash", *query, "enter")
            await pilot.pause()
            assert list(table.rows) == expected, query
            await pilot.press("escape")
            await pilot.pause()
