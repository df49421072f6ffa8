"""The app on a live source: a capture file still being written, read with --follow.

The cursor follows the newest data; pause freezes the view while reading goes on; space from
there plays the past at the chosen speed, and L (or End) goes back to live.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from helpers import wait_until
from uihelp import T0, write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp


def footer_keys(app: TcpviewApp) -> set[str]:
    """The keys the footer shows now (a binding whose action is not available is left out)."""
    return {b.binding.key for b in app.active_bindings.values() if b.binding.show}


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
        table = app._table
        assert await wait_until(lambda: app.tl.packets == 7 and len(table.rows) == 1, 10, 0.02, asyncio.sleep)
        assert await wait_until(lambda: app._ladder.count == 7, 10, 0.02, asyncio.sleep)
        assert app.player.following and app.player.position() == T0 + 0.6
        await pilot.press("space")  # freeze
        assert not app.player.following and app.player.position() == T0 + 0.6
        frozen_bar = app._bar.render().plain
        with growing.open("ab") as f:
            f.write(rest)
        assert await wait_until(lambda: app.tl.packets == 19, 10, 0.02, asyncio.sleep)
        await asyncio.sleep(0.1)  # a few ticks
        assert len(table.rows) == 1 and app._counters._counts["CLOSE_WAIT"] == 1  # still as of 0.6 s
        assert app._counters._counts["TIME_WAIT"] == 0
        assert "LIVE" not in frozen_bar
        # a modal screen over the main one while data arrives and the view updates
        await pilot.press("question_mark")
        await pilot.press("escape")
        # space plays the past from the cursor, at the speed chosen (slow here: the test waits
        # for keys); it does not jump to live
        await pilot.press("minus", "minus", "minus", "minus")
        assert app.player.speed == 0.1
        await pilot.press("space")
        assert app.player.playing and not app.player.following
        assert T0 + 0.6 <= app.player.position() < T0 + 2.6
        assert await wait_until(lambda: app.player.position() > T0 + 0.6, 10, 0.02, asyncio.sleep)
        assert "LIVE" not in app._bar.render().plain and "0.1x" in app._bar.render().plain
        # the footer offers the way back to live while the cursor is in the past
        assert "L" in footer_keys(app)
        await pilot.press("L")  # back to live
        assert app.player.following
        await pilot.pause()
        assert "L" not in footer_keys(app)
        assert await wait_until(lambda: len(table.rows) == 4, 10, 0.02, asyncio.sleep)
        assert app._counters._counts["TIME_WAIT"] == 1 and app._counters._counts["SYN_RECEIVED"] == 1
        assert "LIVE" in app._bar.render().plain
        # stepping back from live pauses at the previous segment
        await pilot.press("left")
        assert not app.player.following and app.player.position() == T0 + 2.5
        assert app._counters._counts["SYN_RECEIVED"] == 0
        await pilot.press("end")
        assert app.player.following
        app.exit()
