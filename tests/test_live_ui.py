"""``tcpview live`` in the real Textual app (Pilot): packets captured on lo fill the viewer, and
the kernel pane (K) puts the kernel's states beside the captured ones and finds the
connection whose FIN the capture filter hid (D filters the table to it)."""

from __future__ import annotations

import time

from test_live_support import lo_traffic, need_root  # noqa: F401 - fixture


async def _until(pilot, pred, timeout: float = 8.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await pilot.pause(0.05)
    return bool(pred())


async def test_live_app_with_kernel_pane(lo_traffic):
    need_root()
    from tcpview.model import STATE_NAMES
    from tcpview.sources.live import LiveSource
    from tcpview.ui.conn_table import ConnectionTable
    from tcpview.ui.kernel_view import KernelPane, LiveApp

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
            assert await _until(pilot, lambda: len(app.tl.conns) == 2)
            conns = {(c.cport, c.sport): c.id for c in app.tl.conns}
            cw_id, hid_id = conns[(cw[0][1], cw[1][1])], conns[(hid[0][1], hid[1][1])]
            c = app.tl.conns[cw_id]
            # the ACK of the client's FIN may come a delayed-ACK later
            assert await _until(pilot, lambda: (STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]])
                                == ("FIN_WAIT_2", "CLOSE_WAIT"))
            pane = app.query_one(KernelPane)
            assert not pane.display
            await pilot.press("K")
            assert await _until(pilot, lambda: pane.snap_ts is not None and hid_id in pane.results)
            assert pane.display
            assert not pane.results[cw_id].disagree
            assert pane.results[hid_id].disagree
            assert pane.differing() == [hid_id]
            # D: the table lists exactly the connection the kernel disagrees with
            await pilot.press("D")
            await pilot.pause(0.1)
            table = app.query_one(ConnectionTable)
            assert list(table.rows) == [hid_id]
            await pilot.pause(0.1)
            text = pane.render().plain
            assert f"#{hid_id}" in text and "≠ differs" in text and "TIME_WAIT" in text
            assert "1 of 2 local connections differ" in text
            await pilot.press("q")
    finally:
        src.close()


async def test_live_app_says_when_the_kernel_dropped_packets(lo_traffic):
    """Packets lost before the app could read them (a small ring filled while nobody read)
    are announced: the states shown may be wrong."""
    need_root()
    import socket

    from tcpview.sources.live import LiveSource
    from tcpview.ui.kernel_view import LiveApp

    t = lo_traffic
    port = t.listener("flood")
    src = LiveSource("lo", f"tcp port {port}", buffer_mb=2)
    try:
        cli, srv = t.pair("flood")
        for s in (cli, srv):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(25000):
            cli.send(b"x")
            srv.send(b"y")
            if i % 50 == 0:
                srv.recv(4096)
        dropped = src.status()["dropped"]
        assert dropped > 0
        app = LiveApp(src)
        async with app.run_test(size=(120, 30)) as pilot:
            assert await _until(pilot, lambda: any("dropped" in n.message for n in app._notifications))
            note = next(n for n in app._notifications if "dropped" in n.message)
            import re

            told = int(re.search(r"(\d+) in all", note.message).group(1))
            assert told >= dropped and note.severity == "warning"  # a late ACK may add one more
            await pilot.press("q")
    finally:
        src.close()
