"""The kernel's TCP table (/proc/net/tcp{,6}) against ``ss -tan``, paired into connections,
and beside a live capture of the same sockets."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import time

import pytest
from helpers import Flow, track, wait_until
from livehelp import env_with_repo, need_root, ss_rows, ss_state, tcpview_cmd, wait_fed, wait_settled

from tcpview.engine.core.tcp import STATE_NAMES, TcpState
from tcpview.kernel.compare import compare
from tcpview.kernel.history import KernelTable
from tcpview.kernel.procnet import parse_proc_tcp
from tcpview.kernel.snapshot import NONE, UNKNOWN, KernelSnapshot, snapshot


def _need_ss() -> None:
    import shutil

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")


def _hex4(ip: str, port: int) -> str:
    return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(ip))[0], port)


def _hex6(ip: str, port: int) -> str:
    raw = ipaddress.IPv6Address(ip).packed
    return "".join("%08X" % struct.unpack("<I", raw[i:i + 4])[0] for i in range(0, 16, 4)) + ":%04X" % port


_HDR4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _line(i: int, local: str, remote: str, st: int, inode: int = 1000, uid: int = 0) -> str:
    return (f"   {i}: {local} {remote} {st:02X} 00000000:00000000 00:00000000 00000000 {uid:5d}        0 "
            f"{inode} 1 0000000000000000 100 0 0 10 0\n")


# -- parsing ------------------------------------------------------------------------------------
def test_parse_proc_tcp_addresses_and_states():
    text = _HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 22), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("192.168.1.20", 22), _hex4("203.0.113.9", 51000), 0x01, uid=1000),
        _line(2, _hex4("10.0.0.1", 40000), _hex4("10.0.0.2", 443), 0x06),
        _line(3, _hex4("10.0.0.1", 80), _hex4("10.0.0.3", 50000), 0x0C),  # NEW_SYN_RECV
    ])
    socks = parse_proc_tcp(text, 4)
    assert [(s.local, s.remote, s.state_name) for s in socks] == [
        (("0.0.0.0", 22), ("0.0.0.0", 0), "LISTEN"),
        (("192.168.1.20", 22), ("203.0.113.9", 51000), "ESTABLISHED"),
        (("10.0.0.1", 40000), ("10.0.0.2", 443), "TIME_WAIT"),
        (("10.0.0.1", 80), ("10.0.0.3", 50000), "SYN_RECEIVED"),
    ]
    assert socks[1].uid == 1000
    text6 = _HDR4 + "".join([
        _line(0, _hex6("2001:db8::1", 443), _hex6("2001:db8::99", 55555), 0x08),
        _line(1, _hex6("::ffff:127.0.0.1", 8080), _hex6("::ffff:127.0.0.1", 41000), 0x01),
        "garbage line that is not a socket\n",
    ])
    socks6 = parse_proc_tcp(text6, 6)
    assert [(s.local, s.remote, s.state_name) for s in socks6] == [
        (("2001:db8::1", 443), ("2001:db8::99", 55555), "CLOSE_WAIT"),
        (("::ffff:127.0.0.1", 8080), ("::ffff:127.0.0.1", 41000), "ESTABLISHED"),
    ]


def test_pairing_rules_on_a_synthetic_table():
    """Both ends local -> one connection; a remote peer is UNKNOWN; a local peer without a
    socket is CLOSED; the listening side is the server; listeners have no client (NONE)."""
    text = _HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 8080), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("127.0.0.1", 8080), _hex4("127.0.0.1", 41000), 0x08),  # server CLOSE_WAIT
        _line(2, _hex4("127.0.0.1", 41000), _hex4("127.0.0.1", 8080), 0x05),  # client FIN_WAIT_2
        _line(3, _hex4("127.0.0.1", 41002), _hex4("127.0.0.1", 8080), 0x06),  # client TIME_WAIT
        _line(4, _hex4("192.0.2.2", 50000), _hex4("203.0.113.80", 443), 0x01),  # to another host
        _line(5, _hex4("192.0.2.2", 8080), _hex4("198.51.100.7", 33000), 0x01),  # from another host
        _line(6, _hex4("192.0.2.2", 22), _hex4("198.51.100.7", 40000), 0x08),  # no listener on 22
    ])
    snap = KernelSnapshot(1.0, parse_proc_tcp(text, 4), frozenset({"127.0.0.1", "192.0.2.2"}))
    got = [(c.client, c.server, c.state_text(0), c.state_text(1)) for c in snap.connections()]
    assert got == [
        (("*", 0), ("0.0.0.0", 8080), NONE, "LISTEN"),
        (("127.0.0.1", 41000), ("127.0.0.1", 8080), "FIN_WAIT_2", "CLOSE_WAIT"),
        (("127.0.0.1", 41002), ("127.0.0.1", 8080), "TIME_WAIT", "CLOSED"),
        (("198.51.100.7", 40000), ("192.0.2.2", 22), UNKNOWN, "CLOSE_WAIT"),
        (("198.51.100.7", 33000), ("192.0.2.2", 8080), UNKNOWN, "ESTABLISHED"),
        (("192.0.2.2", 50000), ("203.0.113.80", 443), "ESTABLISHED", UNKNOWN),
    ]
    assert snap.counters()["LISTEN"] == 1 and snap.counters()["CLOSE_WAIT"] == 2
    s = snap.summary()
    assert [c.id for c in s.connections] == list(range(6))
    assert "listening" in s.connections[0].notes and "peer on another host" in s.connections[3].notes
    assert "peer on another host" not in s.connections[1].notes


def test_socket_filter_speaks_the_connection_table_language():
    """The sockets table parses its filter with ConnQuery: the same terms, the same errors,
    and a one-line error for a term it has nothing to match (notes)."""
    from tcpview.engine.analysis.query import ConnQuery
    from tcpview.ui.widgets.socket_table import parse_query, passes

    text = _HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 8080), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("127.0.0.1", 8080), _hex4("127.0.0.1", 41000), 0x08),
        _line(2, _hex4("127.0.0.1", 41000), _hex4("127.0.0.1", 8080), 0x05),
        _line(3, _hex4("10.0.0.5", 50000), _hex4("203.0.113.80", 443), 0x01),
        _line(4, _hex4("10.0.0.55", 50001), _hex4("203.0.113.80", 443), 0x01),
    ])
    snap = KernelSnapshot(1.0, parse_proc_tcp(text, 4), frozenset({"127.0.0.1", "10.0.0.5", "10.0.0.55"}))
    rows = list(enumerate(snap.connections()))

    def ends(query: str) -> list[tuple]:
        q = parse_query(query)
        assert not q.errors, q.errors
        return [(c.client[1], c.server[1]) for cid, c in rows if passes(q, cid, c)]

    assert ends("state:cw") == ends("server:close-wait") == [(41000, 8080)]
    assert ends("client:fin_wait_2 port:8080") == [(41000, 8080)]
    assert ends("state:LISTEN") == [(0, 8080)]
    assert ends("10.0.0.5") == ends("ip:10.0.0.5") == [(50000, 443)]  # an address matches exactly
    assert ends("10.0.0.") == [(50000, 443), (50001, 443)]  # a word matches part of the text
    assert ends("*:*") == [(0, 8080)]
    assert ends(f"id:{rows[-1][0]}") == [(rows[-1][1].client[1], 443)]
    for bad in ("state:nope", "port:99999", "id:x"):
        assert parse_query(bad).errors == ConnQuery.parse(bad).errors
    assert parse_query("is:reset port:443").errors == ["not in this table 'is:reset'"]


# -- the real table against ss ----------------------------------------------------------------------
def test_kernel_states_equal_ss_for_real_sockets(lo_traffic):
    _need_ss()
    t = lo_traffic
    for name in ("time_wait", "close_wait", "established", "server_first"):
        t.listener(name)
    ends = {
        "time_wait": t.time_wait(),
        "close_wait": t.close_wait(),
        "established": t.established(),
        "server_first": t.server_first(),
    }
    wait_settled(t.ports.values())  # every close finished (the kernel's table is still)
    rows = ss_rows()
    snap = snapshot()
    for name, (c, s) in ends.items():
        conn = [k for k in snap.connections() if k.client == c and k.server == s]
        assert len(conn) == 1, name
        k = conn[0]
        assert (k.state_text(0), k.state_text(1)) == (ss_state(rows, c, s), ss_state(rows, s, c)), name
    by = {n: next(k for k in snap.connections() if (k.client, k.server) == e) for n, e in ends.items()}
    assert (by["time_wait"].state_text(0), by["time_wait"].state_text(1)) == ("TIME_WAIT", "CLOSED")
    assert (by["close_wait"].state_text(0), by["close_wait"].state_text(1)) == ("FIN_WAIT_2", "CLOSE_WAIT")
    assert (by["established"].state_text(0), by["established"].state_text(1)) == ("ESTABLISHED", "ESTABLISHED")
    assert (by["server_first"].state_text(0), by["server_first"].state_text(1)) == ("CLOSED", "TIME_WAIT")
    listeners = [k for k in snap.connections() if k.listening and k.server[1] == t.ports["established"]]
    assert len(listeners) == 1 and listeners[0].state_text(1) == "LISTEN"


def test_ipv6_sockets_pair_up():
    _need_ss()
    try:
        ls = socket.socket(socket.AF_INET6)
        ls.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    ls.listen(4)
    cli = socket.create_connection(("::1", ls.getsockname()[1]))
    srv, _ = ls.accept()
    try:
        c, s = cli.getsockname()[:2], srv.getsockname()[:2]
        snap = snapshot()
        k = [k for k in snap.connections() if k.client == c and k.server == s]
        assert len(k) == 1 and k[0].family == 6
        assert (k[0].state_text(0), k[0].state_text(1)) == ("ESTABLISHED", "ESTABLISHED")
        rows = ss_rows()
        assert ss_state(rows, c, s) == "ESTABLISHED"
    finally:
        for x in (cli, srv, ls):
            x.close()


def _ss_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for st, _l, _p in ss_rows():
        if st != "CLOSED":
            counts[st] = counts.get(st, 0) + 1
    return counts


def test_counts_equal_ss_at_the_same_moment(lo_traffic):
    """The whole table's counters equal ss's, read between two identical ss readings."""
    _need_ss()
    t = lo_traffic
    t.listener("tw")
    t.listener("cw")
    t.time_wait("tw")
    t.close_wait("cw")
    before = snap = None

    def held_still() -> bool:
        nonlocal before, snap
        before = _ss_counts()
        snap = snapshot()
        return _ss_counts() == before

    if not wait_until(held_still, 10, 0.05):
        pytest.fail("the socket table never held still for two ss readings")
    mine = {k: v for k, v in snap.counters().items() if v}
    assert mine == before
    assert mine["TIME_WAIT"] >= 1 and mine["CLOSE_WAIT"] >= 1 and mine["LISTEN"] >= 2


def test_sockets_once_cli_text_and_json(lo_traffic):
    _need_ss()
    t = lo_traffic
    port = t.listener("cw")
    c, s = t.close_wait("cw")
    p = subprocess.run(tcpview_cmd("sockets", "--once", "--json"), capture_output=True, text=True,
                       env=env_with_repo(), timeout=60)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert set(data) >= {"source", "packets", "counters", "connections"}
    # Only this test's sockets: the kernel may have handed out this port before, and an earlier
    # user's connections can still sit in TIME_WAIT on it.
    mine = [x for x in data["connections"] if x["server"]["port"] == port and x["client"]["port"] in (0, c[1])]
    assert [(x["client"]["port"], x["client"]["state"], x["server"]["state"]) for x in mine] == [
        (0, NONE, "LISTEN"), (c[1], "FIN_WAIT_2", "CLOSE_WAIT")]
    p = subprocess.run(tcpview_cmd("sockets", "--once"), capture_output=True, text=True, env=env_with_repo(),
                       timeout=60)
    assert p.returncode == 0
    assert p.stdout.startswith("kernel: ")
    line = next(x for x in p.stdout.splitlines() if f"127.0.0.1:{c[1]} " in x)
    assert line.split()[1:5] == [f"127.0.0.1:{c[1]}", f"127.0.0.1:{port}", "FIN_WAIT_2", "CLOSE_WAIT"]
    p = subprocess.run(tcpview_cmd("sockets", "--json"), capture_output=True, text=True, env=env_with_repo(),
                       timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1


def test_kernel_table_refresh_keeps_ids_and_history(lo_traffic):
    t = lo_traffic
    t.listener("a")
    t.listener("b")
    table = KernelTable()
    t.established("a")
    table.refresh()
    ids1 = {c.key: cid for cid, c in table.conns}
    tw_before = table.series("TIME_WAIT")[-1]
    ends = t.time_wait("b")
    table.refresh()
    ids2 = {c.key: cid for cid, c in table.conns}
    for key, cid in ids1.items():
        if key in ids2:
            assert ids2[key] == cid  # the same connection keeps its id
    key = (ends[0], ends[1])
    assert key in ids2 and ids2[key] not in ids1.values()
    series = table.series("TIME_WAIT")
    # one sample per refresh, each the count of that refresh's table (the host's count itself
    # may go down meanwhile: other tests' TIME_WAITs expire)
    assert len(series) == 2 and series[0] == tw_before
    assert series[-1] == table.snap.counters()["TIME_WAIT"] >= 1
    assert table.status()["sockets"] == len(table.snap.sockets)


# -- beside a live capture -----------------------------------------------------------------------
def test_compare_agrees_with_a_full_capture_and_flags_a_missed_fin(lo_traffic):
    need_root()
    from tcpview.engine.pump import PumpThread
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sources.live.capture import LiveSource

    t = lo_traffic
    t.listener("tw")
    t.listener("cw")
    t.listener("est")
    t.listener("hidden")
    hidden = t.ports["hidden"]
    # the server's FIN on the "hidden" port is filtered out: the capture cannot know it closed
    bpf = (f"(tcp port {t.ports['tw']} or tcp port {t.ports['cw']} or tcp port {t.ports['est']}) or "
           f"(tcp port {hidden} and not (src port {hidden} and tcp[tcpflags] & tcp-fin != 0))")
    src = LiveSource("lo", bpf)
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    try:
        tw = t.time_wait("tw")
        cw = t.close_wait("cw")
        est = t.established("est")
        hid = t.time_wait("hidden")
        wait_settled(t.ports.values())
        wait_fed(src, cap)
        cap.wait_idle(5)
        snap = snapshot()
    finally:
        cap.stop()
        src.close()
    res = compare(tr.tl, snap)
    by_ends = {}
    for cid, r in res.items():
        c = tr.tl.conns[cid]
        by_ends[(c.cport, c.sport)] = r
    names = {"tw": tw, "cw": cw, "est": est, "hidden": hid}
    r = {n: by_ends[(e[0][1], e[1][1])] for n, e in names.items()}
    T = TcpState
    assert r["tw"].kernel == (T.TIME_WAIT, T.CLOSED) and not r["tw"].disagree
    assert r["cw"].kernel == (T.FIN_WAIT_2, T.CLOSE_WAIT) and not r["cw"].disagree
    assert r["est"].kernel == (T.ESTABLISHED, T.ESTABLISHED) and not r["est"].disagree
    # the kernel knows better: the client is in TIME_WAIT, the server has closed
    assert r["hidden"].kernel == (T.TIME_WAIT, T.CLOSED)
    # the server's FIN (which may also carry the ACK of the client's FIN) was never seen
    assert STATE_NAMES[r["hidden"].sniffed[0]] in ("FIN_WAIT_1", "FIN_WAIT_2")
    assert STATE_NAMES[r["hidden"].sniffed[1]] == "CLOSE_WAIT"
    assert r["hidden"].disagree


def test_compare_leaves_other_hosts_unknown():
    """Endpoints that are not this host's addresses have no kernel state here (None)."""
    f = Flow(cip="198.51.100.7", sip="203.0.113.80", cport=40000, sport=443)
    f.handshake()
    tr = track(f.frames)
    snap = KernelSnapshot(time.time(), [], frozenset({"127.0.0.1"}))
    res = compare(tr.tl, snap)
    assert res[0].kernel == (None, None) and not res[0].disagree


# -- the sockets view ----------------------------------------------------------------------------
async def test_sockets_app_shows_the_table_and_filters(lo_traffic):
    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.counters import CountersBar
    from tcpview.ui.widgets.socket_table import SocketTable

    t = lo_traffic
    port = t.listener("cw")
    c, s = t.close_wait("cw")
    app = SocketsApp(interval=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        table = app.query_one(SocketTable)
        await wait_until(lambda: app.table.version >= 3, 10, 0.05, pilot.pause)
        assert app.table.version >= 3
        assert await wait_until(lambda: any((k.client, k.server) == (c, s) for _cid, k in table.rows),
                                10, 0.05, pilot.pause)
        rows = {(k.client, k.server): k for _cid, k in table.rows}
        k = rows[(c, s)]
        assert (k.state_text(0), k.state_text(1)) == ("FIN_WAIT_2", "CLOSE_WAIT")
        # the counters bar shows the kernel's counts, with one sample per refresh behind them
        bar = app.query_one(CountersBar)
        assert bar.counts == app.table.snap.counters()
        assert len(app.table.series("CLOSE_WAIT")) == app.table.version
        # what is on screen: the row with both states (filtered to this test's port)
        app.action_set_filter(f"port:{port}")
        # the listener and the connection
        assert await wait_until(lambda: len(table.rows) == 2, 10, 0.05, pilot.pause)
        lines = [table.render_line(y).text for y in range(table.size.height)]
        assert any("LISTEN" in ln and f"0.0.0.0:{port}" not in ln and f"127.0.0.1:{port}" in ln for ln in lines)
        mine = [ln for ln in lines if f"127.0.0.1:{c[1]} " in ln]
        assert mine and "FIN_WAIT_2" in mine[0] and "CLOSE_WAIT" in mine[0] and f"127.0.0.1:{port}" in mine[0]
        # filter on a state: only rows with an endpoint in that state remain
        await pilot.press("slash")
        for ch in "state:cw":
            await pilot.press(ch if ch != ":" else "colon")
        await pilot.press("enter")
        assert await wait_until(lambda: table.conn_query.text == "state:cw", 10, 0.05, pilot.pause)
        assert table.rows and all("CLOSE_WAIT" in (r.state_text(0), r.state_text(1)) for _i, r in table.rows)
        assert (c, s) in {(r.client, r.server) for _i, r in table.rows}
        await pilot.press("escape")
        assert await wait_until(lambda: table.conn_query.text == "", 10, 0.05, pilot.pause)
        # pause: the table stops refreshing
        await pilot.press("space")
        v = app.table.version
        await pilot.pause(0.6)  # a window, not a wait: three refresh intervals go by without a refresh
        assert app.table.version == v
        await pilot.press("q")


async def test_sockets_filter_box_is_visible_and_esc_restores_the_filter(tmp_path):
    """On a synthetic kernel table: the box shows above the footer while typing (the filter
    applies as it is typed) and Esc puts back the filter it was opened with."""
    from textual.widgets import Footer

    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.prompt import Prompt
    from tcpview.ui.widgets.socket_table import SocketTable

    proc = tmp_path / "tcp"
    proc.write_text(_HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 8080), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("127.0.0.1", 8080), _hex4("127.0.0.1", 41000), 0x08),
        _line(2, _hex4("127.0.0.1", 41000), _hex4("127.0.0.1", 8080), 0x05),
    ]))
    app = SocketsApp(KernelTable(files=[str(proc)]), interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        table, prompt, footer = app.query_one(SocketTable), app.query_one(Prompt), app.query_one(Footer)
        await wait_until(lambda: app.table.version >= 1 and len(table.rows) == 2, 10, 0.02, pilot.pause)
        app.action_set_filter("state:listen")
        await pilot.pause()
        assert len(table.rows) == 1
        await pilot.press("slash", *["backspace"] * len("state:listen"), *"state:cw")
        await pilot.pause()
        assert prompt.display and prompt.value == "state:cw" and table.conn_query.text == "state:cw"
        assert [r.state_text(1) for _i, r in table.rows] == ["CLOSE_WAIT"]  # applied while typing
        region = prompt.region
        assert region.height >= 1 and not region.overlaps(footer.region) and region.bottom <= footer.region.y
        assert app.screen.get_widget_at(region.x + 1, region.y)[0] is prompt
        await pilot.press("escape")
        await pilot.pause()
        assert not prompt.display and table.conn_query.text == "state:listen" and len(table.rows) == 1


async def test_sockets_filter_box_takes_the_keys_typed_right_behind_slash(tmp_path):
    """``/state:cw`` arriving in one read fills the box (``s``, sort, stays text) and filters."""
    from uihelp import arrive_at_once

    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.prompt import Prompt
    from tcpview.ui.widgets.socket_table import SocketTable

    proc = tmp_path / "tcp"
    proc.write_text(_HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 8080), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("127.0.0.1", 8080), _hex4("127.0.0.1", 41000), 0x08),
    ]))
    app = SocketsApp(KernelTable(files=[str(proc)]), interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        table, prompt = app.query_one(SocketTable), app.query_one(Prompt)
        await wait_until(lambda: app.table.version >= 1 and len(table.rows) == 2, 10, 0.02, pilot.pause)
        sort = table.sort
        arrive_at_once(app, *"/state:cw")
        assert await wait_until(lambda: prompt.value == "state:cw", 5, 0.02, pilot.pause), prompt.value
        assert await wait_until(lambda: len(table.rows) == 1, 5, 0.02, pilot.pause)
        assert table.sort == sort


async def test_sockets_filter_box_refuses_a_term_the_table_cannot_read(tmp_path):
    """The sockets view speaks the same filter language and refuses the same bad terms as they
    are typed (and notes, which it has none of): the error under the text, the table as it was."""
    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.prompt import Prompt
    from tcpview.ui.widgets.socket_table import SocketTable

    proc = tmp_path / "tcp"
    proc.write_text(_HDR4 + "".join([
        _line(0, _hex4("0.0.0.0", 8080), _hex4("0.0.0.0", 0), 0x0A),
        _line(1, _hex4("127.0.0.1", 8080), _hex4("127.0.0.1", 41000), 0x08),
        _line(2, _hex4("127.0.0.1", 41000), _hex4("127.0.0.1", 8080), 0x05),
    ]))
    app = SocketsApp(KernelTable(files=[str(proc)]), interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        table, prompt = app.query_one(SocketTable), app.query_one(Prompt)
        await wait_until(lambda: app.table.version >= 1 and len(table.rows) == 2, 10, 0.02, pilot.pause)
        for term, says in (("state:bogus", "unknown state 'bogus'"), ("is:reset", "not in this table 'is:reset'"),
                           ("bogus:1", "unknown key 'bogus:'")):
            await pilot.press("slash")
            prompt.insert_text_at_cursor(term)
            await pilot.pause()
            assert prompt.error is not None and prompt.error.startswith(says), prompt.error
            assert table.conn_query.text == "" and len(table.rows) == 2
            await pilot.press("enter")  # refused
            await pilot.pause()
            assert prompt.is_open and table.conn_query.text == ""
            await pilot.press("escape")
            await pilot.pause()


@pytest.mark.parametrize("module", ["tcpview.kernel.history", "tcpview.kernel.compare", "tcpview.sources.live.capture", "tcpview.cli.live"])
def test_headless_parts_import_no_textual_and_no_scapy(module):
    import sys

    code = (
        "import sys, importlib; importlib.import_module(%r); "
        "from tcpview.cli import main; main(['sockets', '--once', '--json']); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'scapy')); "
        "print(','.join(bad), file=sys.stderr)" % module
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_with_repo(),
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", f"{module} pulled in {out.stderr.strip()}"
    json.loads(out.stdout)
