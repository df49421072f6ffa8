"""``tcpview live`` lists the connections as top does: the newest activity first, so a new
connection appears at the top instead of below the last row; the title says so, and a sort the
user picks stays. Real connections on lo, captured by the real app (Pilot)."""

from __future__ import annotations

from helpers import wait_until
from livehelp import need_root


async def test_new_connections_come_first_until_the_user_sorts(lo_traffic):
    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable

    t = lo_traffic
    t.listener("web")
    src = LiveSource("lo", t.bpf())
    app = LiveApp(src)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.query_one(ConnectionTable)
            ends = []
            for n in range(1, 4):
                ends.append(t.time_wait("web"))
                assert await wait_until(lambda n=n: len(table.rows) == n, 8, 0.05, pilot.pause)
            by_port = {c.cport: c.id for c in app.tl.conns}
            newest = [by_port[cli[1]] for cli, _srv in reversed(ends)]
            assert list(table.rows) == newest  # the newest first, not id order
            assert "sort: newest activity first" in str(table.border_title)
            # from the top, the cursor stays there: the newest row selected and in view
            assert table.cursor == 0 and table.selected == newest[0] and table.scroll_offset.y == 0
            # a quiet connection that talks again comes back to the top
            a_cli, a_srv = t.pair("web")
            b_cli, _b_srv = t.pair("web")

            def cid(sock) -> int:  # type: ignore[no-untyped-def]
                return {c.cport: c.id for c in app.tl.conns}.get(sock.getsockname()[1], -1)

            assert await wait_until(lambda: len(table.rows) == 5 and int(table.rows[0]) == cid(b_cli), 8, 0.05,
                                    pilot.pause)
            a_cli.sendall(b"again")
            assert a_srv.recv(16) == b"again"
            assert await wait_until(lambda: int(table.rows[0]) == cid(a_cli), 8, 0.05, pilot.pause)
            assert table.selected == cid(a_cli)
            # moved down, the cursor keeps its connection while the rows move
            await pilot.press("j")
            kept = table.selected
            t.time_wait("web")
            assert await wait_until(lambda: len(table.rows) == 6, 8, 0.05, pilot.pause)
            assert table.selected == kept and int(table.rows[0]) != kept
            # the user picks a sort: it stays as connections come and talk
            await pilot.press("s")
            picked = table.model.sort
            assert picked != "idle" and "newest activity first" not in str(table.border_title)
            t.time_wait("web")
            b_cli.sendall(b"more")
            assert await wait_until(lambda: len(table.rows) == 7, 8, 0.05, pilot.pause)
            await pilot.pause(0.3)
            assert table.model.sort == picked and not table.model.reverse
            assert list(table.rows) == list(table.model.compute(app.tl, table.t))
            await pilot.press("q")
    finally:
        src.close()
