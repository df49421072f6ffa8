"""``tcpview live --kernel`` in the real app (Pilot): the ladder shows the kernel's own state
changes as rows of their own in the endpoint's column, and K / D compare the inferred states
with the kernel's traced ones, at the cursor.

Real packets on lo, real tracepoints: one connection fully captured (inference and kernel
agree), one whose server FIN the capture filter hides (inference is wrong: it never saw the
server close; the kernel, like ss, is right).
"""

from __future__ import annotations

from helpers import wait_until
from livehelp import need_root, ss_rows, ss_state
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)


async def test_ladder_and_kernel_pane_from_the_trace(lo_traffic):
    need_root()
    from tcpview.engine.core.tcp import STATE_NAMES
    from tcpview.engine.output.ladder import KERNEL_ROW
    from tcpview.engine.timeline.kernel_feed import KernelFeed
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.kernel_pane import KernelPane
    from tcpview.ui.widgets.ladder import Ladder

    t = lo_traffic
    t.listener("cw")
    t.listener("hidden")
    cwp, hp = t.ports["cw"], t.ports["hidden"]
    bpf = f"tcp port {cwp} or (tcp port {hp} and not (src port {hp} and tcp[tcpflags] & tcp-fin != 0))"
    feed = KernelFeed().start()
    src = LiveSource("lo", bpf)
    app = LiveApp(src, kernel=feed.log)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            cw = t.close_wait("cw")
            hid = t.time_wait("hidden")
            assert await wait_until(lambda: len(app.tl.conns) == 2, 30, 0.05, pilot.pause)
            conns = {(c.cport, c.sport): c.id for c in app.tl.conns}
            cw_id, hid_id = conns[(cw[0][1], cw[1][1])], conns[(hid[0][1], hid[1][1])]
            ladder = app.query_one(Ladder)
            table = app.query_one(ConnectionTable)

            def kernel_rows(cid: int) -> list:
                ladder.show(app.tl, cid, None)
                rows = [ladder.row(i) for i in range(ladder.count)]
                return [r for r in rows if r is not None and r.seg == KERNEL_ROW]

            # the client closed, the server not: the kernel set CLOSE_WAIT on the server's column
            assert await wait_until(lambda: any(r.server_state == "CLOSE_WAIT" for r in kernel_rows(cw_id)),
                                    30, 0.05, pilot.pause)
            rows = kernel_rows(cw_id)
            assert [r.client_state for r in rows if r.client_state][:2] == ["SYN_SENT", "ESTABLISHED"]
            assert all(r.label.startswith("kernel set ") for r in rows)

            pane = app.query_one(KernelPane)
            await pilot.press("K")
            # (the kernel's events come up to a poll later than the packets: wait for both)
            assert await wait_until(lambda: pane.snap_ts is not None and hid_id in pane.results
                                    and pane.results[hid_id].disagree and not pane.results[cw_id].disagree,
                                    30, 0.05, pilot.pause), pane.results
            assert pane.differing() == [hid_id]
            r = pane.results[hid_id]
            # which was right: ss (the kernel's table now) agrees with the trace, not the inference
            rows_ss = ss_rows()
            ce, se = hid
            assert STATE_NAMES[r.kernel[0]] == ss_state(rows_ss, ce, se)
            assert STATE_NAMES[r.sniffed[0]] != ss_state(rows_ss, ce, se)
            await pilot.press("D")
            assert await wait_until(lambda: list(table.rows) == [hid_id], 8, 0.05, pilot.pause)
            await pilot.press("q")
    finally:
        src.close()
        feed.stop()
    assert not feed.inst.path.exists()


async def test_cwnd_and_srtt_graphs_from_the_kernel(lo_traffic):
    """The graph pane of ``live --kernel`` has the sender's graphs: a bulk transfer on lo, the
    kernel's cwnd (and the congestion state changes, if any) and srtt at each ACK, equal to
    the tcp_probe figures the log holds for that socket."""
    need_root()
    import socket
    import threading

    from tcpview.engine.timeline.kernel_feed import KernelFeed
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.graph_pane import GraphPane

    t = lo_traffic
    t.listener("bulk")
    port = t.ports["bulk"]
    feed = KernelFeed().start()
    src = LiveSource("lo", f"tcp port {port}")
    app = LiveApp(src, kernel=feed.log)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            cli, srv = t.pair("bulk")
            drain = threading.Thread(target=lambda: t.read_to_eof(srv), daemon=True)
            drain.start()
            cli.sendall(b"x" * 4_000_000)
            cli.shutdown(socket.SHUT_WR)
            drain.join(10)
            assert await wait_until(lambda: len(app.tl.conns) == 1, 30, 0.05, pilot.pause)
            cid = next(iter(app.tl.conns)).id
            table = app.query_one(ConnectionTable)
            assert await wait_until(lambda: table.selected == cid, 10, 0.05, pilot.pause)
            await pilot.press("v")
            pane = app.query_one(GraphPane)
            assert "cwnd" in pane.kinds() and "srtt" in pane.kinds()
            while pane.kind != "cwnd":
                await pilot.press("m")
            assert await wait_until(lambda: pane.graph is not None and pane.graph.kind == "cwnd"
                                    and any(s.name == "client cwnd" for s in pane.graph.series), 30, 0.05, pilot.pause)
            series = {s.name: s for s in pane.graph.series}
            life = feed.log.lives_for(("127.0.0.1", cli.getsockname()[1]), ("127.0.0.1", port), None)[0]
            want = feed.log.probe_rows[life.probes]["cwnd"]
            got = series["client cwnd"].y
            assert len(got) == len(want) and (got == want).all() and got.max() >= 10
            await pilot.press("m")
            assert pane.kind == "srtt"
            assert await wait_until(lambda: pane.graph is not None and pane.graph.kind == "srtt", 30, 0.05,
                                    pilot.pause)
            srtt = {s.name: s for s in pane.graph.series}["client srtt"].y
            assert (srtt > 0).all() and srtt.max() < 1000  # ms, on lo
            await pilot.press("q")
    finally:
        src.close()
        feed.stop()
