"""Why it was slow, in the viewer (Pilot): the ``slow`` column shows each connection's verdict
as of the cursor, ``slow:VERDICT`` filters on it, the bar above the ladder shows the selected
connection's breakdown, ``w`` / ``W`` go through the evidence; ``tcpview expert`` counts the
verdicts. The capture: connection 0 waits half a second for the server's answer, connection 1
is held by a zero window for 0.8 s, connection 2 a handshake only."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Flow, cli_here, wait_until, write_frames_pcap

from tcpview.engine.analysis.diagnosis import SHORT, VERDICTS, diagnose, evidence_frames, verdicts_at
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.ladder import Ladder
from tcpview.ui.widgets.slow_bar import SlowBar


def _frames() -> list:
    frames: list = []
    a = Flow(cport=42000, t0=1.0, frames=frames)
    a.handshake()
    a.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    a.s("A")
    a.t += 0.5  # the server thinks
    a.s("PA", b"r" * 500)
    a.c("A")
    a.c("FA")
    a.s("FA")
    a.c("A")
    b = Flow(cport=42001, t0=1.2, frames=frames)
    b.handshake()
    b.s("PA", b"w" * 1000)
    b.c("A", win=0)  # the reader's buffer is full
    b.t += 0.8
    b.c("A", win=65535)  # it read: a window update
    b.s("PA", b"w" * 1000)
    b.c("A")
    c = Flow(cport=42002, t0=1.4, frames=frames)
    c.handshake()
    frames.sort(key=lambda f: f[0])
    return frames


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_frames_pcap(tmp_path / "slow.pcap", _frames())


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


async def test_column_filter_bar_and_evidence_keys(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        await pilot.press("end")  # the cursor at the end: every verdict as of the whole capture
        await pilot.pause()
        tl = app.tl
        codes = verdicts_at(tl)
        assert [VERDICTS[k] for k in codes] == ["server_response", "receive_window", "handshake"]
        table = app.query_one(ConnectionTable)
        assert "slow" in [c.key for c in table.columns()]  # shown at 120 columns
        for index in range(3):
            line = table.render_row(index, 118, table.rich_style, False).text
            assert f" {SHORT[VERDICTS[codes[index]]]} " in line, line
        table.focus()
        await pilot.press("slash", *"slow:receive_window", "enter")
        await pilot.pause()
        assert list(table.rows) == [1]
        await pilot.press("escape", "slash", *"slow:server", "enter")  # the column's short name too
        await pilot.pause()
        assert list(table.rows) == [0]
        assert table.set_query("slow:bogus").errors == [
            "unknown verdict 'bogus': " + ", ".join(VERDICTS)]  # refused: the filter stays
        assert list(table.rows) == [0]
        await pilot.press("escape")
        await pilot.pause()
        assert list(table.rows) == [0, 1, 2]
        table.move_cursor(1)
        await pilot.pause()
        bar = app.query_one(SlowBar)
        text = str(bar.render())
        assert bar.display and text.startswith("slow: receive window ") and "% of " in text, text
        # w / W: the ladder to the evidence (where the zero window's episode begins)
        ladder = app.query_one(Ladder)
        ladder.focus()
        await pilot.press("ctrl+home")  # the ladder's first row (home would seek to the start)
        frames = evidence_frames(tl, 1)
        assert frames
        await pilot.press("w")
        await pilot.pause()
        row = ladder.row(ladder.cursor)
        assert row is not None and row.frame == frames[0]
        first = ladder.cursor
        await pilot.press("w")  # no more evidence after it: the cursor stays, and says so
        await pilot.pause()
        assert ladder.cursor == first or ladder.row(ladder.cursor).frame in frames
        await pilot.press("ctrl+end", "W")
        await pilot.pause()
        assert ladder.row(ladder.cursor).frame == frames[-1]


async def test_the_column_follows_the_cursor(capture: Path) -> None:
    """Half-way through the zero window the verdicts are those of the capture up to there."""
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        tl = app.tl
        t = tl.first_ts + 0.6  # connection 0 still waits for its answer; 1 is in its zero window
        early = diagnose(tl, t)
        app.player.seek(t)
        await pilot.pause()
        table = app.query_one(ConnectionTable)
        got = table.model.verdicts(tl, app.player.query_time())
        assert [VERDICTS[k] for k in got[:2]] == [early.verdict(0), early.verdict(1)]
        assert early.duration[1] < diagnose(tl).duration[1]  # its zero window had not ended yet


def test_expert_counts_the_verdicts(capture: Path) -> None:
    import json

    rc, out, err = cli_here("expert", str(capture), "--json")
    assert rc == 0, err
    verdicts = json.loads(out)["verdicts"]
    assert set(verdicts) == set(VERDICTS)
    assert verdicts["server_response"] == 1 and verdicts["receive_window"] == 1 and sum(verdicts.values()) == 3
    rc, text, _err = cli_here("expert", str(capture))
    assert rc == 0 and "Verdicts (tcpview diagnose): " in text and "receive_window 1" in text
