"""What ``tcpview sockets`` shows of each socket beside the states, against ``ss -tano`` on real
sockets: Recv-Q and Send-Q (a listener's accept queue and backlog), the pending timer; the
states as the JSON says them, in the table too; Enter for every field of a connection's
sockets and the process holding them."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

import pytest
from helpers import wait_until
from livehelp import env_with_repo, ss_rows, ss_state, tcpview_cmd, wait_settled

from tcpview.kernel.procnet import parse_proc_tcp
from tcpview.kernel.snapshot import NONE, snapshot

SS_TIMER = re.compile(r"timer:\((\w+),([^,]+),(\d+)\)")


def _need_ss() -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")


def _ss_seconds(text: str) -> float:
    """ss -o's time left (``115min``, ``1min59sec``, ``58sec``, ``1.196ms`` for 1.196 s, ``200ms``)."""
    m = re.fullmatch(r"(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)\.)?(?:(\d+)ms)?", text)
    assert m, text
    mins, secs, dotted, ms = (int(g) if g else 0 for g in m.groups())
    return mins * 60 + secs + dotted + ms / 1000


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return host.removeprefix("::ffff:"), int(port) if port.isdigit() else 0


def _ss_sockets() -> dict[tuple, dict]:
    """``ss -tano state all``: (local, peer) -> Recv-Q, Send-Q, state and timer (kind, seconds, count)."""
    out = subprocess.run(["ss", "-tanoH", "state", "all"], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        t = SS_TIMER.search(line)
        timer = (t.group(1), _ss_seconds(t.group(2)), int(t.group(3))) if t else None
        rows[(_addr(f[3]), _addr(f[4]))] = {"state": f[0], "recv": int(f[1]), "send": int(f[2]), "timer": timer}
    return rows


class Sockets:
    """Real sockets on 127.0.0.1 in the cases a queue or a timer shows; all closed by close()."""

    def __init__(self) -> None:
        self.keep: list[socket.socket] = []

    def sock(self) -> socket.socket:
        s = socket.socket()
        self.keep.append(s)
        return s

    def listener(self, backlog: int = 8) -> socket.socket:
        s = self.sock()
        s.bind(("127.0.0.1", 0))
        s.listen(backlog)
        return s

    def connect(self, ls: socket.socket) -> socket.socket:
        c = self.sock()
        c.connect(ls.getsockname())
        return c

    def accept(self, ls: socket.socket) -> socket.socket:
        s, _ = ls.accept()
        self.keep.append(s)
        return s

    def close(self) -> None:
        for s in self.keep:
            s.close()


@pytest.fixture
def socks():
    s = Sockets()
    yield s
    s.close()


def _ports(scene: dict[str, tuple]) -> set[int]:
    """The ports of the scene's sockets (a listener's peer port 0 aside)."""
    return {port for ends in scene.values() for _ip, port in ends} - {0}


def _scene(s: Sockets) -> dict[str, tuple]:
    """The sockets the tests look at, by name: ``(local, peer)`` of each."""
    waiting = s.listener(backlog=7)  # two connections in its accept queue, never accepted
    s.connect(waiting), s.connect(waiting)
    cw_l = s.listener()  # CLOSE_WAIT with 1234 unread bytes
    c = s.connect(cw_l)
    cw = s.accept(cw_l)
    c.sendall(b"x" * 1234)
    c.close()
    ka_l = s.listener()  # a keepalive timer
    ka = s.connect(ka_l)
    ka.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    ka.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 7000)
    s.accept(ka_l)
    tw_l = s.listener()  # TIME_WAIT: the timewait timer
    tw = s.connect(tw_l)
    tw_s = s.accept(tw_l)
    tw_end = (tw.getsockname(), tw.getpeername())
    tw.close()
    assert tw_s.recv(1) == b""
    tw_s.close()
    zw_l = s.listener()  # a sender stuck on a full receiver: Send-Q and a retransmission/probe timer
    zw = s.sock()
    zw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    zw.connect(zw_l.getsockname())
    zw_s = s.accept(zw_l)
    zw_s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    zw.setblocking(False)
    try:
        while True:
            zw.send(b"z" * 65536)
    except BlockingIOError:
        pass
    return {
        "listener": (waiting.getsockname(), ("0.0.0.0", 0)),
        "close_wait": (cw.getsockname(), cw.getpeername()),
        "keepalive": (ka.getsockname(), ka.getpeername()),
        "time_wait": tw_end,
        "sender": (zw.getsockname(), zw.getpeername()),
        "receiver": (zw_s.getsockname(), zw_s.getpeername()),
    }


def test_queues_and_timers_equal_ss_for_real_sockets(socks: Sockets) -> None:
    _need_ss()
    scene = _scene(socks)
    wait_settled(_ports(scene))  # the last segments of the handshakes and closes are sent
    mine = before = after = None

    def held_still() -> bool:  # the same queues and states on either side of our reading
        nonlocal mine, before, after
        before = _ss_sockets()
        mine = {(s.local, s.remote): s for s in snapshot().sockets}
        after = _ss_sockets()
        def strip(rows: dict) -> dict:  # the timers tick: their kinds only
            return {k: {**v, "timer": v["timer"] and v["timer"][0]} for k, v in rows.items()}

        return all(strip(before).get(k) == strip(after).get(k) for k in scene.values())

    assert wait_until(held_still, 10, 0.05), "the sockets never held still between two ss readings"
    for name, key in scene.items():
        ss = after[key]
        k = mine[key]
        assert (k.rx_queue, k.send_q) == (ss["recv"], ss["send"]), (name, k, ss)
        assert (k.timer_name if k.timer else None) == (ss["timer"] and ss["timer"][0]), (name, k, ss)
        if k.timer:  # ss writes only the minutes from ten minutes up
            slack = 61 if ss["timer"][1] >= 600 else 1.5
            assert abs(k.timer_left - ss["timer"][1]) < slack, (name, k.timer_left, ss["timer"])
            assert k.timer_count == ss["timer"][2], name
    assert mine[scene["listener"]].rx_queue == 2 and mine[scene["listener"]].send_q == 7
    assert mine[scene["close_wait"]].rx_queue == 1235  # the bytes, and the FIN counted as ss counts it
    assert mine[scene["keepalive"]].timer_name == "keepalive" and mine[scene["keepalive"]].timer_left > 6000
    assert mine[scene["time_wait"]].timer_name == "timewait"
    assert mine[scene["sender"]].send_q > 0


def test_json_states_equal_ss_and_the_table_says_what_the_json_says(socks: Sockets) -> None:
    """Each socket's state in ``sockets --once --json`` is ss's; a listener's row is LISTEN with
    a client NONE, and the table in the app writes every state as the JSON does."""
    _need_ss()
    scene = _scene(socks)
    wait_settled(_ports(scene))
    p = subprocess.run(tcpview_cmd("sockets", "--once", "--json"), capture_output=True, text=True,
                       env=env_with_repo(), timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    rows = ss_rows()
    conns = json.loads(p.stdout)["connections"]
    ends = {}  # (this end, the other end) -> its state as the JSON says it
    for c in conns:
        ce, se = (c["client"]["ip"], c["client"]["port"]), (c["server"]["ip"], c["server"]["port"])
        ends[(ce, se)], ends[(se, ce)] = c["client"]["state"], c["server"]["state"]
    for name in ("close_wait", "keepalive", "sender", "receiver"):
        local, peer = scene[name]
        assert ends[(local, peer)] == ss_state(rows, local, peer), name
    listener = next(c for c in conns if (c["server"]["ip"], c["server"]["port"]) == scene["listener"][0]
                    and c["client"]["port"] == 0)
    assert (listener["client"]["state"], listener["server"]["state"]) == (NONE, "LISTEN")
    assert ss_state(rows, scene["listener"][0], ("0.0.0.0", 0)) == "LISTEN"


async def test_the_table_shows_states_queues_and_timers_and_enter_shows_everything(socks: Sockets) -> None:
    _need_ss()
    from tcpview.ui.screens.socket_detail import SocketDetailScreen
    from tcpview.ui.sockets_app import SocketsApp
    from tcpview.ui.widgets.socket_table import SocketTable

    scene = _scene(socks)
    wait_settled(_ports(scene))  # the last segments of the handshakes and closes are sent
    port = scene["close_wait"][0][1]
    app = SocketsApp(interval=0.3)
    async with app.run_test(size=(150, 40)) as pilot:  # wide enough for the timer column
        table = app.query_one(SocketTable)
        assert await wait_until(lambda: app.table.version >= 1, 10, 0.05, pilot.pause)
        app.action_set_filter(f"port:{port}")
        peer = f"{scene['close_wait'][1][0]}:{scene['close_wait'][1][1]} "

        def settled() -> bool:  # the close's FIN acknowledged: the queues the scene left
            rows = [table.render_line(y).text for y in range(table.size.height)]
            return any(peer in ln and "CLOSE_WAIT" in ln and re.search(r"\b1235\s+0\b", ln) for ln in rows)

        assert await wait_until(settled, 10, 0.05, pilot.pause)
        lines = [table.render_line(y).text for y in range(table.size.height)]
        head = lines[0]
        assert "Recv-Q" in head and "Send-Q" in head and "timer" in head and "age" not in head
        listen = next(ln for ln in lines if "*:*" in ln)
        proc = f"python\\S* {os.getpid()}"  # the process holding the sockets: this one
        assert re.search(rf"\bNONE\s+LISTEN\s+{proc}\s+0\s+8\s", listen), listen  # accept queue 0, backlog 8
        row = next(ln for ln in lines if f"{scene['close_wait'][1][0]}:{scene['close_wait'][1][1]} " in ln)
        assert "CLOSE_WAIT" in row and re.search(rf"{proc}\s+0/1235\s+0/0\s+\d+us\s+\d+\s", row), row
        # sorting by Recv-Q: the biggest first, and the cursor on it
        while table.sort != "recvq":
            await pilot.press("s")
        await pilot.pause()
        assert table.cursor == 0 and table.rows[0][1].queue(True) == 1235
        assert "▼" in table.render_line(0).text
        # Enter: every field of both ends, and the process holding the CLOSE_WAIT socket (this one)
        await pilot.press("enter")
        assert await wait_until(lambda: isinstance(app.screen, SocketDetailScreen), 10, 0.05, pilot.pause)
        text = app.screen.text.plain
        cw = next(s for s in socks.keep if s.fileno() >= 0 and _ends(s) == scene["close_wait"])
        inode = os.fstat(cw.fileno()).st_ino
        assert "client end" in text and "server end" in text
        assert re.search(r"state\s+CLOSE_WAIT", text) and re.search(r"Recv-Q\s+1235\s", text)
        assert re.search(rf"inode\s+{inode}\b", text) and re.search(r"uid\s+\d+", text)
        assert re.search(rf"process\s+\S+\s+\(pid {os.getpid()}, fd {cw.fileno()}\)", text), text
        assert re.search(r"rto\s+[\d.]+ s", text) and re.search(r"cwnd\s+\d+ segments", text)
        assert re.search(r"ss -ti\s+.*\brtt:[\d.]+/[\d.]+ .*\bcwnd:\d+", text), text
        await pilot.press("escape")
        assert not isinstance(app.screen, SocketDetailScreen)


def _ends(s: socket.socket) -> tuple | None:
    try:
        return s.getsockname(), s.getpeername()
    except OSError:
        return None


def test_timer_fields_of_proc_net_tcp() -> None:
    """/proc's ``tr:tm->when retrnsmt`` and ``timeout`` read as ss reads them, for a full socket
    and for the shorter lines of TIME_WAIT and request sockets."""
    from tcpview.kernel.procnet import timer_left_text

    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    # keepalive, 0xAEA60 ticks left, rto 20 ticks, ato 4, cwnd 10, ssthresh 7; TIME_WAIT, 6000 ticks
    # left; a request socket: the SYN+ACK timer, 100 ticks, 2 retransmissions
    text = (head
            + "   0: 0100007F:1F90 0100007F:A000 01 00000010:00000020 02:000AEA60 00000000  1000        0 4242 2 "
              "0000000000000000 20 4 1 10 7\n"
            + "   1: 0100007F:A001 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 "
              "0000000000000000\n"
            + "   2: 0100007F:1F90 0100007F:A002 0C 00000000:00000000 01:00000064 00000002     0        0 0 1 "
              "0000000000000000\n")
    ka, tw, req = parse_proc_tcp(text, 4)
    hz = os.sysconf("SC_CLK_TCK")
    assert (ka.tx_queue, ka.rx_queue, ka.uid, ka.inode) == (16, 32, 1000, 4242)
    assert ka.timer_name == "keepalive" and ka.timer_left == pytest.approx(0xAEA60 / hz)
    assert (ka.rto, ka.ato, ka.cwnd, ka.ssthresh) == (pytest.approx(20 / hz), pytest.approx(4 / hz), 10, 7)
    assert tw.timer_name == "timewait" and tw.timer_left == pytest.approx(6000 / hz) and tw.cwnd is None
    assert req.timer_name == "on" and req.timer_count == 2 and req.timer_left == pytest.approx(100 / hz)
    assert tw.timer_text() == f"timewait {timer_left_text(6000 / hz)}"
    assert [timer_left_text(x) for x in (7139.2, 119.5, 58.4, 1.196, 0.2)] == [
        "118min", "1min59sec", "58sec", "1.196sec", "200ms"]
