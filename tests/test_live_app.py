"""The viewer on a source that keeps growing, in the real Textual app (Pilot).

A capture file still being written, read with --follow: the cursor follows the newest data;
pause freezes the view while reading goes on; space from there plays the past at the chosen
speed, and L (or End) goes back to live.

``tcpview live``: packets captured on lo fill the viewer, and the kernel pane (K) puts the
kernel's states beside the captured ones and finds the connection whose FIN the capture filter
hid (D filters the table to it); the clock moves on without packets. The status line's counts,
the interface picker and switching are in test_live_app_status.py.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from helpers import wait_until
from livehelp import need_root
from uihelp import T0, write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.counters import CountersBar
from tcpview.ui.widgets.ladder import Ladder
from tcpview.ui.widgets.player_bar import PlayerBar


def footer_keys(app: TcpviewApp) -> set[str]:
    """The keys the footer shows now (a binding whose action is not available is left out)."""
    return {b.binding.key for b in app.active_bindings.values() if b.binding.show}


# -- a capture file still being written, read with --follow ---------------------------------------
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
        # space plays the past from the cursor, at the speed chosen (slow here: the test waits
        # for keys); it does not jump to live
        await pilot.press("minus", "minus", "minus", "minus")
        assert app.player.speed == 0.1
        await pilot.press("space")
        assert app.player.playing and not app.player.following
        assert T0 + 0.6 <= app.player.position() < T0 + 2.6
        assert await wait_until(lambda: app.player.position() > T0 + 0.6, 10, 0.02, asyncio.sleep)
        bar = app.query_one(PlayerBar).render().plain
        assert "LIVE" not in bar and "0.1x" in bar
        # the footer offers the way back to live while the cursor is in the past
        assert "L" in footer_keys(app)
        await pilot.press("L")  # back to live
        assert app.player.following
        await pilot.pause()
        assert "L" not in footer_keys(app)
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


# -- tcpview live on lo -------------------------------------------------------------------------
async def test_live_app_with_kernel_pane(lo_traffic):
    need_root()
    from tcpview.engine.core.tcp import STATE_NAMES
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.kernel_pane import KernelPane

    t = lo_traffic
    t.listener("cw")
    t.listener("hidden")
    cwp, hp = t.ports["cw"], t.ports["hidden"]
    bpf = f"tcp port {cwp} or (tcp port {hp} and not (src port {hp} and tcp[tcpflags] & tcp-fin != 0))"
    src = LiveSource("lo", bpf)
    app = LiveApp(src)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            cw = t.close_wait("cw")
            hid = t.time_wait("hidden")
            assert await wait_until(lambda: len(app.tl.conns) == 2, 8, 0.05, pilot.pause)
            conns = {(c.cport, c.sport): c.id for c in app.tl.conns}
            cw_id, hid_id = conns[(cw[0][1], cw[1][1])], conns[(hid[0][1], hid[1][1])]
            def cw_states() -> tuple[str, str]:  # a connection as of the newest published view
                c = app.tl.conns[cw_id]
                return STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]

            # the ACK of the client's FIN may come a delayed-ACK later
            assert await wait_until(lambda: cw_states() == ("FIN_WAIT_2", "CLOSE_WAIT"), 8, 0.05, pilot.pause)
            pane = app.query_one(KernelPane)
            assert not pane.display
            await pilot.press("K")
            assert await wait_until(lambda: pane.snap_ts is not None and hid_id in pane.results,
                                    8, 0.05, pilot.pause)
            assert pane.display
            assert not pane.results[cw_id].disagree
            assert pane.results[hid_id].disagree
            assert pane.differing() == [hid_id]
            # D: the table lists exactly the connection the kernel disagrees with
            await pilot.press("D")
            table = app.query_one(ConnectionTable)
            assert await wait_until(lambda: list(table.rows) == [hid_id], 8, 0.05, pilot.pause)
            assert await wait_until(lambda: f"#{hid_id}" in pane.render().plain, 8, 0.05, pilot.pause)
            text = pane.render().plain
            assert f"#{hid_id}" in text and "≠ differs" in text and "TIME_WAIT" in text
            assert "1 of 2 local connections differ" in text
            await pilot.press("q")
    finally:
        src.close()


# -- the clock: live time moves on without packets ------------------------------------------------
def _bar_seconds(app) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The bar's ``cursor / duration`` (mm:ss.mmm each), in seconds."""
    import re

    from tcpview.ui.widgets.player_bar import PlayerBar

    m = re.search(r"(\d+):(\d+\.\d+) / (\d+):(\d+\.\d+)", app.query_one(PlayerBar).render().plain)
    assert m, app.query_one(PlayerBar).render().plain
    return int(m[1]) * 60 + float(m[2]), int(m[3]) * 60 + float(m[4])


def _counter(app, state: str) -> int:  # type: ignore[no-untyped-def]
    """The count the counters bar shows for ``state``."""
    import re

    from tcpview.ui.widgets.counters import CountersBar

    m = re.search(rf"{state} (\d+)", app.query_one(CountersBar).render().plain)
    assert m
    return int(m[1])


def _idle(app, port: int) -> float:  # type: ignore[no-untyped-def]
    """The idle column the table shows for the connection on ``port`` (seconds)."""
    import re

    from tcpview.ui.widgets.conn_table import ConnectionTable

    table = app.query_one(ConnectionTable)
    for y in range(table.size.height):
        text = table.render_line(y).text
        if f":{port} " in text:
            return float(re.findall(r" (\d+(?:\.\d+)?)s\b", text)[-1])
    raise AssertionError(f"no row for port {port}")


async def test_live_clock_idle_and_timers_move_without_packets(lo_traffic):
    """A capture that goes quiet: the bar's time keeps moving with the wall clock, idle grows,
    and the TIME_WAIT (2·MSL = 2 s here) expires on screen with no new packet."""
    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp

    t = lo_traffic
    port = t.listener("quiet")
    src = LiveSource("lo", f"tcp port {port}")
    app = LiveApp(src, msl2=2.0)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            t.time_wait("quiet")  # the client closes first: its end stays in TIME_WAIT
            assert await wait_until(lambda: _counter(app, "TIME_WAIT") == 1, 8, 0.05, pilot.pause)
            packets, last = app.tl.packets, app.tl.last_ts
            at, total = _bar_seconds(app)
            assert at == total  # live: the cursor is now
            idle = _idle(app, port)
            assert idle < 1.0
            # nothing more is sent: still the clock moves on, idle with it
            assert await wait_until(lambda: _bar_seconds(app)[0] >= at + 1.0, 8, 0.05, pilot.pause)
            assert await wait_until(lambda: _idle(app, port) >= idle + 1.0, 8, 0.05, pilot.pause)
            # and the TIME_WAIT ends after 2 s of capture time, as in the kernel
            assert await wait_until(lambda: _counter(app, "TIME_WAIT") == 0, 8, 0.05, pilot.pause)
            now, total = _bar_seconds(app)
            assert now == total and now >= 2.0
            assert app.tl.packets == packets and app.tl.last_ts == last  # no packet moved it
            await pilot.press("q")
    finally:
        src.close()
