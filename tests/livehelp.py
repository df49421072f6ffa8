"""Helpers for the tests on real traffic: live capture, the kernel's socket table, streaming.

Real TCP on 127.0.0.1: the socket scenarios (:class:`Lo`) and the reading of ``ss``
(:func:`ss_rows`, :func:`ss_state`) live in losockets.py and are imported here again, so tests
import them from either module. :func:`capture_scenarios` records a fixed set of scenarios under
tcpdump for the session-wide ``loopback_capture`` fixture.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from helpers import REPO, reap, wait_until
from losockets import SS_STATES, ss_rows, ss_state
from losockets import Lo as Lo  # imported again for conftest.py's lo_traffic fixture (`as`: a re-export)

# the scenarios of :func:`capture_scenarios`, one port each
SCENARIOS = ("time_wait", "close_wait", "refused", "abort", "half_close", "server_first", "established", "reuse",
             "server_abort")


def need_root() -> None:
    """Skip unless real capture on lo can run (root, tcpdump and ss installed)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to capture on lo")
    for tool in ("tcpdump", "ss"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COLUMNS", None)
    return env


def tcpview_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcpview", *args]


def live_summary_json(args: list[str], traffic: Callable[[], object],
                      stop: bool = False) -> tuple[dict, str, object]:
    """``tcpview summary -i lo ARGS --json``: ``traffic()`` made once it captures (its result
    returned), then Ctrl-C at once when ``stop``; the JSON, stderr and what ``traffic`` gave."""
    p = subprocess.Popen(tcpview_cmd("summary", "-i", "lo", *args, "--json"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_with_repo(), text=True)
    try:
        read_until(p.stderr, "capturing on lo", 30)
        made = traffic()
        if stop:
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        reap(p)
    assert p.returncode == 0, err
    return json.loads(out), err, made


def read_until(stream, text: str, timeout: float) -> str:
    """Read ``stream`` (a pipe) until ``text`` appears; the text read so far."""
    seen = bytearray()
    ended = False
    fd = stream.fileno()

    def arrived() -> bool:
        nonlocal ended
        if select.select([fd], [], [], 0.05)[0]:
            chunk = os.read(fd, 4096)
            ended = not chunk
            seen.extend(chunk)
        return ended or text.encode() in seen

    wait_until(arrived, timeout, 0)
    if text.encode() not in seen:
        why = "stream ended before" if ended else "did not see"
        raise AssertionError(f"{why} {text!r}: {seen.decode(errors='replace')}")
    return seen.decode(errors="replace")


# -- waiting for traffic to be over and captured ------------------------------------------------
# States in which a socket still sends by itself: a handshake or a close is not finished.
MOVING = frozenset({"SYN_SENT", "SYN_RECEIVED", "FIN_WAIT_1", "CLOSING", "LAST_ACK"})


def wait_settled(ports: Iterable[int], timeout: float = 10.0) -> list:
    """Wait until no socket on ``ports`` (local or peer) is in the middle of a handshake or a
    close, as ``ss`` shows them: every packet the scenarios' sockets send on their own (the
    last ACKs) is sent, so a capture on lo has it (the packet socket sees a packet before the
    receiving socket changes state). Returns the :func:`ss_rows` of that moment."""
    ports = set(ports)
    rows: list = []

    def settled() -> bool:
        nonlocal rows
        rows = ss_rows()
        return not any(st in MOVING and (lo[1] in ports or pe[1] in ports) for st, lo, pe in rows)

    assert wait_until(settled, timeout), f"sockets on ports {sorted(ports)} kept opening or closing: {rows}"
    return rows


def wait_fed(src, cap, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``cap`` (a PumpThread reading the LiveSource ``src``) has fed its tracker
    every packet the kernel has put in the capture ring so far (the kernel's count, read by
    ``status()``, less its drops). A partly filled ring block reaches the reader only when the
    kernel retires it, so this can take a block timeout."""

    def fed() -> bool:
        src.status()  # reads the kernel's counters into kernel_seen / kernel_drops
        return cap.records == src.kernel_seen - src.kernel_drops

    assert wait_until(fed, timeout), f"fed {cap.records} of the {src.kernel_seen} packets the kernel captured"


def wait_tcpdump_wrote(dump: subprocess.Popen, timeout: float = 10.0) -> str:
    """Wait until a running ``tcpdump -U`` (stderr a pipe, read past "listening on") has
    written every packet the kernel handed it so far; returns its statistics then (with the
    packets its kernel buffer dropped: see :func:`tcpdump_drops`).

    tcpdump prints its counts on SIGUSR1: it is done when "packets captured" equals "packets
    received by filter", or half of it on lo (where the kernel hands a packet socket each
    packet twice, as sent and as received, and libpcap keeps one)."""
    said = ""

    def wrote() -> bool:
        nonlocal said
        dump.send_signal(signal.SIGUSR1)
        said = read_until(dump.stderr, "dropped by kernel", timeout)
        got, given = map(int, re.findall(r"(\d+) packets? captured, (\d+) packets? received by filter", said)[-1])
        return given in (got, 2 * got)

    assert wait_until(wrote, timeout, 0.05), f"tcpdump did not write all it was handed: {said.strip()}"
    return said


# -- one capture of fixed scenarios (the loopback_capture fixture) ------------------------------
def _split_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def ss_sockets(lo: int, hi: int) -> list[tuple[str, tuple[str, int], tuple[str, int]]]:
    """``ss -tan`` sockets with a local or peer port in [lo, hi]: (state, local, peer)."""
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
    socks = []
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        local, peer = _split_addr(f[3]), _split_addr(f[4])
        if lo <= local[1] <= hi or lo <= peer[1] <= hi:
            socks.append((SS_STATES.get(f[0], f[0]), local, peer))
    return socks


class LoopbackCapture:
    """Real TCP on 127.0.0.1 captured by tcpdump, with ``ss -tan`` read before anything closed.

    Attributes:
        pcap: the capture file.
        ports: scenario name -> server port (all inside ``lo..hi``).
        ss: ``ss_sockets(lo, hi)`` taken while every socket the scenarios keep was still open.
        tcpdump_stats: what tcpdump printed when it stopped (packets captured / dropped).
    """

    def __init__(self, pcap: Path, ports: dict[str, int], lo: int, hi: int, ss: list, tcpdump_stats: str) -> None:
        self.pcap, self.ports, self.lo, self.hi, self.ss = pcap, ports, lo, hi, ss
        self.tcpdump_stats = tcpdump_stats


def _free_block(n: int) -> int:
    """A base port such that base..base+n-1 are unused (no listener, no socket in ss)."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, 32000 - n)
        if ss_sockets(base, base + n - 1):
            continue
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no free port block")


# -U and --immediate-mode: every packet reaches the file at once (without immediate mode
# libpcap holds packets in a ring block and loses the last ones at SIGINT). Immediate mode
# uses one ring slot per packet, each as big as the snapshot length: with the default
# 262144-byte snaplen and 2 MB buffer the ring has about eight slots and a burst on lo
# overflows it. Headers are all the tests need, so a short snaplen and a larger buffer.
TCPDUMP_OPTS = ["-U", "--immediate-mode", "-n", "-s", "256", "-B", "8192"]


def tcpdump_drops(stats: str) -> int:
    """Kernel drops from tcpdump's closing statistics (0 when it printed none)."""
    m = re.search(r"(\d+) packets? dropped by kernel", stats)
    return int(m.group(1)) if m else 0


def make_loopback_capture(path: Path, attempts: int = 3) -> LoopbackCapture:
    """:func:`capture_scenarios`, again when tcpdump reports kernel drops (an incomplete capture)."""
    for _ in range(attempts):
        cap = capture_scenarios(path)
        if tcpdump_drops(cap.tcpdump_stats) == 0:
            return cap
    raise RuntimeError(f"tcpdump kept dropping packets: {cap.tcpdump_stats.strip()}")


def capture_scenarios(path: Path) -> LoopbackCapture:
    """Run every scenario in :data:`SCENARIOS` on 127.0.0.1 under tcpdump (needs root), once."""
    base = _free_block(len(SCENARIOS))
    ports = {name: base + i for i, name in enumerate(SCENARIOS)}
    lo, hi = base, base + len(SCENARIOS) - 1
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", *TCPDUMP_OPTS, "-w", str(path), f"tcp and host 127.0.0.1 and portrange {lo}-{hi}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    keep: list[socket.socket] = []
    try:
        read_until(dump.stderr, "listening on", 20)

        def listener(name: str) -> socket.socket:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", ports[name]))
            s.listen(8)
            keep.append(s)
            return s

        def pair(name: str) -> tuple[socket.socket, socket.socket]:
            ls = listener(name)
            cli = socket.create_connection(("127.0.0.1", ports[name]), timeout=5)
            srv, _ = ls.accept()
            srv.settimeout(5)
            return cli, srv

        def read_to_eof(s: socket.socket) -> bytes:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

        # the client closes first: client TIME_WAIT, server gone
        cli, srv = pair("time_wait")
        cli.sendall(b"ping")
        assert srv.recv(16) == b"ping"
        srv.sendall(b"pong")
        assert cli.recv(16) == b"pong"
        cli.close()
        assert read_to_eof(srv) == b""
        srv.close()

        # the server never closes: client FIN_WAIT_2, server CLOSE_WAIT
        cli, srv = pair("close_wait")
        cli.sendall(b"hello")
        assert srv.recv(16) == b"hello"
        cli.close()
        keep.append(srv)

        # nothing listens: the SYN is answered with RST
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", ports["refused"]))
            raise AssertionError("connect to a port without listener succeeded")
        except ConnectionRefusedError:
            pass
        finally:
            s.close()

        # abortive close (SO_LINGER 0): RST instead of FIN
        cli, srv = pair("abort")
        cli.sendall(b"x" * 100)
        assert len(srv.recv(1000)) == 100
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cli.close()
        try:
            srv.recv(10)
        except ConnectionResetError:
            pass
        srv.close()

        # the server aborts (SO_LINGER 0) after answering: its RST, both CLOSED
        cli, srv = pair("server_abort")
        cli.sendall(b"question")
        assert srv.recv(16) == b"question"
        srv.sendall(b"answer")
        assert cli.recv(16) == b"answer"
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        srv.close()
        try:
            assert cli.recv(10) == b""
        except ConnectionResetError:
            pass
        cli.close()

        # half-close: the client shuts down its sending side, the server keeps answering
        cli, srv = pair("half_close")
        cli.sendall(b"request")
        cli.shutdown(socket.SHUT_WR)
        assert read_to_eof(srv) == b"request"
        for i in range(3):
            srv.sendall(bytes([65 + i]) * 20000)
            time.sleep(0.02)  # pacing: three bursts after the client's FIN, not one stream
        srv.close()
        assert len(read_to_eof(cli)) == 60000
        cli.close()

        # the server closes first: server TIME_WAIT, client gone
        cli, srv = pair("server_first")
        srv.sendall(b"banner")
        assert cli.recv(16) == b"banner"
        srv.close()
        assert read_to_eof(cli) == b""
        cli.close()

        # left open
        cli, srv = pair("established")
        cli.sendall(b"still here")
        assert srv.recv(32) == b"still here"
        keep += [cli, srv]

        # the same 4-tuple twice: the server closes first (server TIME_WAIT), then the client
        # connects again from the same port; the kernel lets the new SYN take over the
        # TIME_WAIT socket, so only the new connection remains
        ls = listener("reuse")
        c1 = socket.socket()
        c1.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c1.bind(("127.0.0.1", 0))
        cport = c1.getsockname()[1]
        c1.connect(("127.0.0.1", ports["reuse"]))
        s1, _ = ls.accept()
        s1.close()
        c1.settimeout(5)
        assert read_to_eof(c1) == b""
        c1.close()
        mine, theirs = ("127.0.0.1", cport), ("127.0.0.1", ports["reuse"])

        def first_over() -> bool:  # the client's socket is gone, the server's in TIME_WAIT
            rows = ss_rows()
            return (ss_state(rows, mine, theirs), ss_state(rows, theirs, mine)) == ("CLOSED", "TIME_WAIT")

        assert wait_until(first_over), "the first connection on the 4-tuple did not close"
        c2 = socket.socket()
        c2.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c2.bind(("127.0.0.1", cport))
        c2.settimeout(5)
        c2.connect(("127.0.0.1", ports["reuse"]))
        s2, _ = ls.accept()
        c2.sendall(b"again")
        s2.settimeout(5)
        assert s2.recv(16) == b"again"
        keep += [c2, s2]

        wait_settled(range(lo, hi + 1))  # the last ACKs are sent
        ss = ss_sockets(lo, hi)
        wait_tcpdump_wrote(dump)
    finally:
        if dump.poll() is None:
            dump.send_signal(signal.SIGINT)
        try:
            dump.wait(10)
        except subprocess.TimeoutExpired:
            dump.kill()
            dump.wait()
        stats = dump.stderr.read().decode(errors="replace")
        for s in keep:
            s.close()
    return LoopbackCapture(path, ports, lo, hi, ss, stats)


def can_capture() -> str | None:
    """Why real capture cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root for tcpdump on lo"
    for tool in ("tcpdump", "ss"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
