"""The kernel table from sock_diag against ``ss -tinpH`` on real sockets of the test: each
socket's process (pid, command) and tcp_info (cwnd, mss exact, rtt as ss rounds it), IPv4 and
IPv6, every state (TIME_WAIT, SYN_RECV); the JSON's ``process`` and ``info``; the process
filters in the socket table and in the engine's connection rows; the sockets view's proc
column; the proc column and filters of the live table."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

import pytest
from helpers import Flow, track, wait_until
from livehelp import env_with_repo, need_root, tcpview_cmd

from tcpview.kernel.procnet import norm_ip
from tcpview.kernel.snapshot import snapshot
from tcpview.kernel.tcpinfo import JSON_FIELDS

USERS = re.compile(r'users:\(\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')
SS_STATES = {"ESTAB": "ESTABLISHED", "SYN-RECV": "SYN_RECEIVED", "SYN-SENT": "SYN_SENT"}


def _need_ss() -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return norm_ip(host.strip("[]").split("%")[0]), int(port) if port.isdigit() else 0


def ss_sockets(ports: set[int]) -> dict[tuple, dict]:
    """``ss -tinpH state all``, the sockets on ``ports``: (local, peer) -> state, process and
    the tcp_info figures compared (cwnd, mss, rtt/rttvar as ss writes them)."""
    out = subprocess.run(["ss", "-tinpH", "state", "all"], capture_output=True, text=True, check=True).stdout
    rows: dict[tuple, dict] = {}
    key = None
    for line in out.splitlines():
        if not line[:1].isspace():
            f = line.split()
            key = (_addr(f[3]), _addr(f[4]))
            if key[0][1] not in ports and key[1][1] not in ports:
                key = None
                continue
            u = USERS.search(line)
            rows[key] = {"state": SS_STATES.get(f[0], f[0].replace("-", "_")),
                         "pid": int(u.group(2)) if u else None, "comm": u.group(1) if u else None}
        elif key is not None:
            info = rows[key]
            for name, pat in (("cwnd", r"\bcwnd:(\d+)"), ("mss", r"\bmss:(\d+)"), ("rtt", r"\brtt:([\d.]+/[\d.]+)")):
                m = re.search(pat, line)
                if m:
                    info[name] = int(m.group(1)) if name != "rtt" else m.group(1)
    return rows


def ours(ports: set[int]) -> dict[tuple, dict]:
    """The same figures from tcpview's table (sock_diag), for the same sockets."""
    snap = snapshot()
    assert snap.source == "sock_diag"
    rows = {}
    for s in snap.sockets:
        key = (_addr(f"{s.local[0]}:{s.local[1]}"), _addr(f"{s.remote[0]}:{s.remote[1]}"))
        if key[0][1] not in ports and key[1][1] not in ports:
            continue
        p = s.process
        row = {"state": s.state_name, "pid": p.pid if p else None, "comm": p.comm if p else None}
        if s.info is not None:
            row["cwnd"] = s.info.cwnd
            if s.info.get("snd_mss"):
                row["mss"] = s.info.get("snd_mss")
            if s.info.rtt_us:
                row["rtt"] = f"{s.info.rtt_us / 1000:g}/{(s.info.get('rttvar') or 0) / 1000:g}"
        rows[key] = row
    return rows


def _same_moment(ports: set[int]) -> tuple[dict, dict]:
    """ss and tcpview at the same moment: ss before and after tcpview's read agree."""
    got: list = []

    def stable() -> bool:
        before = ss_sockets(ports)
        mine = ours(ports)
        after = ss_sockets(ports)
        got[:] = [before, mine]
        return before == after

    assert wait_until(stable, 10, 0.1)
    return got[0], got[1]


class Scene:
    """Real sockets on 127.0.0.1 and ::1: established pairs that moved data both ways and
    went idle, a TIME_WAIT, a listener; all closed by close()."""

    def __init__(self) -> None:
        self.keep: list[socket.socket] = []
        self.ports: set[int] = set()

    def listener(self, family: int = socket.AF_INET) -> socket.socket:
        ls = socket.socket(family)
        self.keep.append(ls)
        ls.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        ls.listen(8)
        self.ports.add(ls.getsockname()[1])
        return ls

    def pair(self, ls: socket.socket) -> tuple[socket.socket, socket.socket]:
        c = socket.socket(ls.family)
        self.keep.append(c)
        c.connect(ls.getsockname()[:2])
        s, _ = ls.accept()
        self.keep.append(s)
        for a, b, n in ((c, s, 200_000), (s, c, 50_000)):  # data both ways: rtt, cwnd, bytes acked
            a.sendall(b"x" * n)
            got = 0
            while got < n:
                got += len(b.recv(65536))
        return c, s

    def close(self) -> None:
        for s in self.keep:
            s.close()


@pytest.fixture
def scene():
    s = Scene()
    yield s
    s.close()


def _idle(ports: set[int]) -> None:
    """Every socket on ``ports`` has nothing in flight (the last ACKs arrived)."""
    def idle() -> bool:
        return all(s.info is None or not s.info.get("unacked") for s in snapshot(owners=False).sockets
                   if s.local[1] in ports or s.remote[1] in ports)

    assert wait_until(idle, 10, 0.05)


def test_process_and_tcp_info_equal_ss(scene: Scene) -> None:
    """Per socket: state, pid and command, cwnd and mss exactly, rtt/rttvar as ss writes them
    (ss rounds µs to its %g of milliseconds); IPv4, IPv6 and a TIME_WAIT."""
    _need_ss()
    ls4 = scene.listener()
    scene.pair(ls4)
    c, s = scene.pair(ls4)
    c.close()  # the client closes first: TIME_WAIT, held by the kernel alone
    assert s.recv(1) == b""
    s.close()
    if socket.has_ipv6:
        try:
            scene.pair(scene.listener(socket.AF_INET6))
        except OSError:
            pass  # no ::1 here: IPv4 only
    _idle(scene.ports)
    theirs, mine = _same_moment(scene.ports)
    assert len(theirs) >= 4
    assert mine == theirs
    states = {r["state"] for r in mine.values()}
    assert {"LISTEN", "ESTABLISHED", "TIME_WAIT"} <= states
    me = [r for r in mine.values() if r["state"] == "ESTABLISHED"]
    assert all(r["pid"] == os.getpid() and r["cwnd"] >= 1 and r["mss"] > 0 for r in me)
    assert all(r["pid"] is None for r in mine.values() if r["state"] == "TIME_WAIT")
    if socket.has_ipv6 and any(":" in k[0][0] for k in mine):
        assert any(k[0][0] == "::1" and r["state"] == "ESTABLISHED" for k, r in mine.items())


def _nft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], capture_output=True, text=True)


def test_syn_recv_is_read_as_ss_reads_it(scene: Scene) -> None:
    """A half-open connection (the handshake's last ACK dropped by an nft rule): the server's
    request socket is SYN_RECEIVED with no process, as in ss."""
    need_root()
    _need_ss()
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    ls = scene.listener()
    port = ls.getsockname()[1]
    table = f"tcpview_sockdiag_{os.getpid()}"
    if _nft("add", "table", "inet", table).returncode != 0:
        pytest.skip("nft cannot add a table here")
    try:
        assert _nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }").returncode == 0
        rule = _nft("add", "rule", "inet", table, "out", "tcp", "dport", str(port), "tcp", "flags", "==", "ack", "drop")
        assert rule.returncode == 0, rule.stderr
        c = socket.socket()
        scene.keep.append(c)
        c.connect(ls.getsockname())  # SYN, SYN+ACK; the ACK never reaches the listener

        def half_open() -> bool:
            return any(r["state"] == "SYN_RECEIVED" for r in ss_sockets({port}).values())

        assert wait_until(half_open, 5, 0.05)
        theirs, mine = _same_moment({port})
        assert mine == theirs
        syn = [r for r in mine.values() if r["state"] == "SYN_RECEIVED"]
        assert len(syn) == 1 and syn[0]["pid"] is None
        client = mine[(_addr(f"127.0.0.1:{c.getsockname()[1]}"), _addr(f"127.0.0.1:{port}"))]
        assert client["state"] == "ESTABLISHED" and client["pid"] == os.getpid()
    finally:
        _nft("delete", "table", "inet", table)


def test_json_gives_each_end_its_process_and_tcp_info(scene: Scene) -> None:
    _need_ss()
    ls = scene.listener()
    c, _s = scene.pair(ls)
    port = ls.getsockname()[1]
    _idle({port})
    p = subprocess.run(tcpview_cmd("sockets", "--once", "--json"), capture_output=True, text=True,
                       env=env_with_repo(), timeout=60)
    assert p.returncode == 0, p.stderr
    theirs = ss_sockets({port})
    doc = json.loads(p.stdout)
    assert doc["table_source"] == "sock_diag"
    conns = [x for x in doc["connections"] if x["server"]["port"] == port]
    est = next(x for x in conns if x["client"]["port"] == c.getsockname()[1])
    comm = open(f"/proc/{os.getpid()}/comm").read().strip()
    for side in ("client", "server"):
        end = est[side]
        assert end["process"] == {"pid": os.getpid(), "comm": comm, "user": "root" if os.geteuid() == 0
                                  else end["process"]["user"]}
        assert list(end["info"]) == list(JSON_FIELDS)
        local = (end["ip"], end["port"])
        peer = est["server" if side == "client" else "client"]
        ss_row = theirs[(local, (peer["ip"], peer["port"]))]
        assert end["info"]["cwnd"] == ss_row["cwnd"] and end["info"]["mss"] == ss_row["mss"]
        assert f"{end['info']['rtt_us'] / 1000:g}" == ss_row["rtt"].split("/")[0]
    # µs, bytes: the client sent 200,000 bytes and got 50,000
    ci = est["client"]["info"]
    assert ci["bytes_acked"] >= 200_000 and ci["bytes_received"] >= 50_000 and ci["unacked"] == 0
    assert ci["delivery_rate"] is None or ci["delivery_rate"] > 0
    listener = next(x for x in conns if x["client"]["state"] == "NONE")
    assert listener["client"]["process"] is None and listener["client"]["info"] is None
    assert listener["server"]["process"]["pid"] == os.getpid()


def test_process_filters_in_the_socket_table(scene: Scene) -> None:
    from tcpview.kernel.history import KernelTable
    from tcpview.ui.widgets.socket_table import check_query, parse_query, passes

    ls = scene.listener()
    scene.pair(ls)
    port = ls.getsockname()[1]
    table = KernelTable()
    table.refresh()
    comm = open(f"/proc/{os.getpid()}/comm").read().strip()
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name

    def listed(text: str) -> int:
        q = parse_query(f"port:{port} {text}")
        assert not q.errors, q.errors
        return sum(1 for cid, c in table.conns if passes(q, cid, c))

    assert listed("") == 2  # the listener and the connection
    assert listed(f"pid:{os.getpid()}") == 2
    assert listed(f"proc:{comm}") == 2 and listed(f"proc:{comm[:3].upper()}") == 2
    assert listed(f"user:{user}") == 2 and listed(f"user:{os.geteuid()}") == 2
    assert listed("pid:1") == 0 and listed("proc:no-such-command") == 0
    assert listed(f"user:{'nobody' if user != 'nobody' else 'root'}") == 0
    assert check_query("pid:abc") == "bad pid 'abc': a process id"
    assert "user: needs a user name or uid" in (check_query("user:") or "")


def test_process_terms_in_the_engine_connection_rows() -> None:
    """The engine takes processes as plain tuples (it imports nothing of the kernel): a table
    without them refuses process terms; with them they filter."""
    from tcpview.engine.analysis.query import ConnRows

    flows = []
    for i in range(3):
        f = Flow(cport=40000 + i, frames=flows[-1].frames if flows else None)
        f.handshake()
        flows.append(f)
    tl = track(flows[-1].frames).tl
    rows = ConnRows()
    assert rows.set_query("proc:nginx").errors == ["not in this table 'proc:nginx'"]
    rows.set_processes({0: [(12, "nginx", "www-data")], 1: [(99, "curl", "root"), (12, "nginx", "www-data")]})
    for text, want in (("proc:nginx", [0, 1]), ("pid:99", [1]), ("user:www-data", [0, 1]), ("user:root", [1]),
                       ("proc:curl pid:12", [1]), ("proc:postgres", []), ("", [0, 1, 2])):
        assert not rows.set_query(text).errors
        assert list(rows.compute(tl, None)) == want, text
    rows.sort = "proc"
    assert rows.set_query("").errors == []
    assert list(rows.compute(tl, None)) == [1, 0, 2]  # curl, nginx, none known last


async def test_sockets_view_shows_the_proc_column_and_filters_by_pid(scene: Scene) -> None:
    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.socket_table import SocketTable

    ls = scene.listener()
    scene.pair(ls)
    port = ls.getsockname()[1]
    app = SocketsApp(interval=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(SocketTable)
        assert await wait_until(lambda: app.table.version >= 1, 10, 0.05, pilot.pause)
        app.action_set_filter(f"port:{port} pid:{os.getpid()}")
        await pilot.pause()
        lines = [table.render_line(y).text for y in range(4)]
        head = lines[0]
        assert "proc" in head and "rtt" in head and "cwnd" in head
        mine = f" {os.getpid()} "
        assert sum(mine in ln for ln in lines[1:]) == 2, lines
        est = next(ln for ln in lines if "ESTABLISHED" in ln)
        assert re.search(rf"{os.getpid()}\s+0/0\s+0/0\s+\d+us\s+\d+\s", est), est
        app.action_set_filter(f"port:{port} pid:1")
        await pilot.pause()
        assert len(table.rows) == 0
        assert "Connections 0 of" in str(table.border_title)


async def test_live_table_has_a_proc_column_and_process_filters(lo_traffic) -> None:
    """``tcpview live`` on lo: each captured connection of this host shows the process holding
    its sockets (this test's), and ``pid:`` filters by it."""
    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.kernel_pane import KernelPane

    t = lo_traffic
    t.listener("p")
    port = t.ports["p"]
    src = LiveSource("lo", f"tcp port {port}")
    app = LiveApp(src)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            t.established("p")
            table = app.query_one(ConnectionTable)
            assert await wait_until(lambda: len(app.tl.conns) == 1, 8, 0.05, pilot.pause)
            mine = f" {os.getpid()}"
            assert await wait_until(lambda: mine in (table.proc_texts or {}).get(0, ""), 8, 0.05, pilot.pause)
            assert await wait_until(lambda: "proc" in table.render_line(0).text
                                    and mine in table.render_line(1).text, 8, 0.05, pilot.pause)
            app.action_set_filter(f"pid:{os.getpid()}")
            assert await wait_until(lambda: list(table.rows) == [0], 8, 0.05, pilot.pause)
            app.action_set_filter("pid:1")
            assert await wait_until(lambda: list(table.rows) == [], 8, 0.05, pilot.pause)
            app.action_set_filter("")
            # K: each end's process and tcp_info as ss -ti writes it
            await pilot.press("K")
            pane = app.query_one(KernelPane)
            assert await wait_until(lambda: "cwnd:" in pane.render().plain, 8, 0.05, pilot.pause)
            text = pane.render().plain
            assert re.search(rf"client \S+{mine} \(\S+\)  rtt [\d.]+ms cwnd \d+ unacked \d+ retrans \d+  "
                             r"ss -ti: .*\brtt:[\d.]+/[\d.]+ .*cwnd:\d+", text), text
            await pilot.press("q")
    finally:
        src.close()


def test_live_summary_json_gives_each_end_its_process(lo_traffic) -> None:
    """``tcpview summary -i lo --json``: each endpoint of this host has the process holding its
    socket while the capture ran ({pid, comm, user}); a refused connection's ends had none."""
    need_root()
    from livehelp import live_summary_json

    t = lo_traffic
    t.listener("est")
    t.reserve("refused")
    doc, _err, (est, rf) = live_summary_json(["-f", t.bpf(), "--duration", "3"],
                                             lambda: (t.established("est"), t.refused()))
    conns = {(c["client"]["port"], c["server"]["port"]): c for c in doc["connections"]}
    comm = open(f"/proc/{os.getpid()}/comm").read().strip()
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name
    c = conns[(est[0][1], est[1][1])]
    for side in ("client", "server"):
        assert c[side]["process"] == {"pid": os.getpid(), "comm": comm, "user": user}
    r = conns[(rf[0][1], rf[1][1])]
    assert r["client"]["process"] is None and r["server"]["process"] is None


STABLE = ("wscale", "rto", "rtt", "ato", "mss", "pmtu", "rcvmss", "advmss", "cwnd", "ssthresh", "bytes_sent",
          "bytes_retrans", "bytes_acked", "bytes_received", "segs_out", "segs_in", "data_segs_out", "data_segs_in",
          "delivered", "unacked", "retrans", "lost", "rcv_rtt", "rcv_space", "rcv_ssthresh", "minrtt", "snd_wnd")
"""The ``ss -ti`` fields of an idle socket that do not move with the clock (lastsnd and the
rates computed from a moving rtt do)."""


def _fields(line: str) -> dict[str, str]:
    return {k: v for k, v in re.findall(r"(?:^|\s)([a-z_]+):([\d./,]+)(?=\s|$)", line) if k in STABLE}


def test_detail_writes_tcp_info_as_ss_does(scene: Scene) -> None:
    """The detail's ``ss -ti`` line has the fields ss writes, with the same values, for idle
    sockets read at the same moment."""
    _need_ss()
    ls = scene.listener()
    scene.pair(ls)
    port = ls.getsockname()[1]
    _idle({port})
    got: list = []

    def same_moment() -> bool:
        def ss_lines() -> dict:
            out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} or dport = :{port} )"],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
            return {_addr(a.split()[2]): _fields(b) for a, b in zip(out[::2], out[1::2], strict=True)}

        before = ss_lines()
        mine = {(s.local[0], s.local[1]): _fields(s.info.ss_text()) for s in snapshot(owners=False).sockets
                if s.state_name == "ESTABLISHED" and port in (s.local[1], s.remote[1]) and s.info is not None}
        got[:] = [before, mine]
        return before == ss_lines() and len(before) == 2

    assert wait_until(same_moment, 10, 0.1)
    theirs, mine = got
    assert mine == theirs
    assert all({"rtt", "cwnd", "mss", "bytes_acked"} <= set(f) for f in mine.values()), mine
