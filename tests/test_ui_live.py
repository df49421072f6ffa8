"""The app on a live source: a capture file still being written, read with --follow.

The cursor follows the newest data; pause freezes the view while reading goes on; space
jumps back to live.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from helpers import wait_until
from uihelp import T0, write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.counters import CountersBar
from tcpview.ui.widgets.ladder import Ladder
from tcpview.ui.widgets.player_bar import PlayerBar


def split_records(data: bytes, n: int) -> tuple[bytes, bytes]:
    """(file header + first n records, the rest) of a little-endian pcap."""
    pos = 24
    for _ in range(n):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        pos += 16 + incl
    return data[:pos], data[pos:]


async def test_follow_pause_and_back_to_live(tmp_path: Path) -> None:
    full = write_capture(tmp_path / "full.pcap").read_bytes()
    head, rest = split_records(full, 7)  # connection 0 only
    growing = tmp_path / "growing.pcap"
    growing.write_bytes(head)
    source = FileSource(str(growing), follow=True)
    assert source.live
    app = TcpviewApp(source, tick=0.02)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ConnectionTable)

        def counts() -> dict[str, int]:
            return app.query_one(CountersBar).counts

        assert await wait_until(lambda: app.tl.packets == 7 and len(table.rows) == 1, 10, 0.02, asyncio.sleep)
        assert await wait_until(lambda: app.query_one(Ladder).count == 7, 10, 0.02, asyncio.sleep)
        assert app.player.following and app.player.position() == T0 + 0.6
        await pilot.press("space")  # freeze
        assert not app.player.following and app.player.position() == T0 + 0.6
        frozen_bar = app.query_one(PlayerBar).render().plain
        with growing.open("ab") as f:
            f.write(rest)
        assert await wait_until(lambda: app.tl.packets == 19, 10, 0.02, asyncio.sleep)
        # the views have taken the new data in (the capture is longer now; the cursor stayed)
        assert await wait_until(lambda: app.player.duration == pytest.approx(2.6), 10, 0.02, asyncio.sleep)
        assert len(table.rows) == 1 and counts()["CLOSE_WAIT"] == 1  # still as of 0.6 s
        assert counts()["TIME_WAIT"] == 0
        assert "LIVE" not in frozen_bar
        # a modal screen over the main one while data arrives and the view updates
        await pilot.press("question_mark")
        await pilot.press("escape")
        await pilot.press("space")  # back to live
        assert app.player.following
        assert await wait_until(lambda: len(table.rows) == 4, 10, 0.02, asyncio.sleep)
        assert counts()["TIME_WAIT"] == 1 and counts()["SYN_RECEIVED"] == 1
        assert "LIVE" in app.query_one(PlayerBar).render().plain
        # stepping back from live pauses at the previous segment
        await pilot.press("left")
        assert not app.player.following and app.player.position() == T0 + 2.5
        assert counts()["SYN_RECEIVED"] == 0
        await pilot.press("end")
        assert app.player.following
        app.exit()
