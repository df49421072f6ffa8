"""Shared test helpers: frames built with scapy, captures written with a small struct writer,
and a way to run ``python -m tcpview`` as a user would.

The capture writer is written here from the file-format specs (not with tcpview's own code),
so the reader under test is checked against an independent implementation: pcap with
microsecond or nanosecond timestamps in either byte order, and pcapng with any number of
interfaces, each with its own link type and timestamp resolution.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback

from tcpview.engine.tracker import Tracker

REPO = Path(__file__).resolve().parent.parent

# pcap link-layer header types used by the tests
DLT_NULL = 0
DLT_EN10MB = 1
DLT_RAW = 101
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_IPV4 = 228
DLT_IPV6 = 229
DLT_LINUX_SLL2 = 276

C, S = 0, 1  # client, server (the tracker's side numbers)


# -- capture writers ---------------------------------------------------------------------------
def pcap_bytes(
    packets: Iterable[tuple],
    linktype: int = DLT_EN10MB,
    nano: bool = False,
    endian: str = "<",
    snaplen: int = 262144,
) -> bytes:
    """A classic pcap file. ``packets`` holds ``(ts, data)`` or ``(ts, data, origlen)``."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    mult = 1_000_000_000 if nano else 1_000_000
    for p in packets:
        ts, data = p[0], bytes(p[1])
        orig = p[2] if len(p) > 2 else len(data)
        ticks = round(ts * mult)
        sec, frac = divmod(ticks, mult)
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), orig))
        out.append(data)
    return b"".join(out)


def _ng_block(endian: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(endian + "II", btype, total) + body + struct.pack(endian + "I", total)


def pcapng_bytes(
    interfaces: Sequence[tuple[int, int]],
    packets: Iterable[tuple[int, float, bytes]],
    endian: str = "<",
) -> bytes:
    """A pcapng file with one section.

    Args:
        interfaces: ``(linktype, tsresol_power_of_ten)`` per interface, e.g. ``(1, 6)`` for
            Ethernet in microseconds, ``(113, 9)`` for SLL in nanoseconds.
        packets: ``(interface_id, ts, data)`` written as Enhanced Packet Blocks.
    """
    shb = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = [_ng_block(endian, 0x0A0D0D0A, shb)]
    res = []
    for lt, power in interfaces:
        opt = struct.pack(endian + "HH", 9, 1) + bytes([power]) + b"\0\0\0"
        opt += struct.pack(endian + "HH", 0, 0)
        out.append(_ng_block(endian, 1, struct.pack(endian + "HHI", lt, 0, 0) + opt))
        res.append(10**power)
    for iid, ts, data in packets:
        data = bytes(data)
        ticks = round(ts * res[iid])
        body = struct.pack(endian + "IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
        out.append(_ng_block(endian, 6, body + data))
    return b"".join(out)


# -- frames --------------------------------------------------------------------------------------
def eth(**kw) -> Ether:
    """An Ethernet header with fixed addresses: scapy would otherwise look the destination up
    (ARP / neighbour solicitation on the network) to fill it in."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


def wrap(pkt, link: str = "ether") -> tuple[int, bytes]:
    """Put an IP packet (scapy) into a link layer; returns ``(linktype, frame bytes)``.

    ``link`` is one of ether, vlan, qinq, sll, sll2, null, loop, raw, ipv4/ipv6 (228/229).
    """
    v6 = pkt.haslayer(IPv6)
    if link == "ether":
        return DLT_EN10MB, bytes(eth() / pkt)
    if link == "vlan":
        return DLT_EN10MB, bytes(eth() / Dot1Q(vlan=42) / pkt)
    if link == "qinq":
        return DLT_EN10MB, bytes(eth() / Dot1AD(vlan=100) / Dot1Q(vlan=42) / pkt)
    if link == "sll":
        return DLT_LINUX_SLL, bytes(CookedLinux(pkttype=0) / pkt)
    if link == "sll2":
        return DLT_LINUX_SLL2, bytes(CookedLinuxV2(pkttype=0) / pkt)
    if link == "null":
        # BSD loopback: the address family in the writer's (here little-endian) byte order
        return DLT_NULL, bytes(Loopback(type=(30 if v6 else 2)) / pkt)
    if link == "loop":
        # OpenBSD DLT_LOOP: the address family always big-endian
        return DLT_LOOP, struct.pack("!I", 24 if v6 else 2) + bytes(pkt)
    if link == "raw":
        return DLT_RAW, bytes(pkt)
    if link == "ipv4":
        assert not v6
        return DLT_IPV4, bytes(pkt)
    if link == "ipv6":
        assert v6
        return DLT_IPV6, bytes(pkt)
    raise ValueError(link)


class Flow:
    """Builds the frames of one TCP conversation, keeping each side's next sequence number.

    ``c(...)`` sends from the client, ``s(...)`` from the server. ``seq`` defaults to the
    sender's next sequence number and ``ack`` (when the flags hold A) to the peer's, so a test
    only spells out seq/ack where the scenario needs something unusual (crossing FINs, a
    retransmission, a wrong ACK). Frames are kept as ``(ts, linktype, bytes)``.
    """

    def __init__(
        self,
        cip: str = "10.0.0.1",
        sip: str = "10.0.0.2",
        cport: int = 40000,
        sport: int = 80,
        cisn: int = 1000,
        sisn: int = 5000,
        t0: float = 100.0,
        dt: float = 0.001,
        link: str = "ether",
        frames: list | None = None,
    ) -> None:
        self.ip = {C: cip, S: sip}
        self.port = {C: cport, S: sport}
        self.nxt = {C: cisn, S: sisn}
        self.t = t0
        self.dt = dt
        self.link = link
        self.v6 = ":" in cip
        self.frames: list[tuple[float, int, bytes]] = frames if frames is not None else []

    def packet(self, side: int, flags: str, data: bytes = b"", seq: int | None = None,
               ack: int | None = None, win: int = 8192, options: list | None = None):
        """The scapy IP/TCP packet (not recorded, sequence numbers not advanced)."""
        peer = 1 - side
        seq = self.nxt[side] if seq is None else seq
        if ack is None:
            ack = self.nxt[peer] if "A" in flags else 0
        ipl = IPv6(src=self.ip[side], dst=self.ip[peer]) if self.v6 else IP(src=self.ip[side], dst=self.ip[peer])
        tcp = TCP(sport=self.port[side], dport=self.port[peer], flags=flags, seq=seq & 0xFFFFFFFF,
                  ack=ack & 0xFFFFFFFF, window=win, options=options or [])
        return ipl / tcp / data if data else ipl / tcp

    def send(self, side: int, flags: str, data: bytes = b"", seq: int | None = None,
             ack: int | None = None, win: int = 8192, options: list | None = None,
             at: float | None = None) -> int:
        """Record one segment; returns its frame number (1-based across ``frames``)."""
        start = self.nxt[side] if seq is None else seq
        pkt = self.packet(side, flags, data, seq, ack, win, options)
        seg_len = len(data) + ("S" in flags) + ("F" in flags)
        end = (start + seg_len) & 0xFFFFFFFF
        if ((end - self.nxt[side]) & 0xFFFFFFFF) < 0x80000000:
            self.nxt[side] = end
        self.t = self.t + self.dt if at is None else at
        lt, raw = wrap(pkt, self.link)
        self.frames.append((self.t, lt, raw))
        return len(self.frames)

    def c(self, flags: str, data: bytes = b"", **kw) -> int:
        """Send from the client (see :meth:`send`)."""
        return self.send(C, flags, data, **kw)

    def s(self, flags: str, data: bytes = b"", **kw) -> int:
        """Send from the server (see :meth:`send`)."""
        return self.send(S, flags, data, **kw)

    def handshake(self) -> None:
        """SYN, SYN+ACK, ACK."""
        self.c("S")
        self.s("SA")
        self.c("A")


def track(frames: Iterable[tuple[float, int, bytes]], **kw) -> Tracker:
    """Feed ``(ts, linktype, bytes)`` frames (numbered from 1) into a new Tracker."""
    tr = Tracker(**kw)
    for i, (ts, lt, raw) in enumerate(frames, 1):
        tr.feed_frame(i, ts, lt, raw)
    return tr


def states(tr: Tracker, cid: int = 0) -> tuple[str, str]:
    """(client, server) state names of connection ``cid`` now."""
    from tcpview.engine.model import STATE_NAMES

    c = tr.tl.conns[cid]
    return STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]


def seg_states(tr: Tracker, cid: int = 0) -> list[tuple[str, str]]:
    """Per segment of connection ``cid``: (client_state, server_state) after it."""
    return [(s.client_state, s.server_state) for s in tr.tl.segments(cid)]


def write_frames_pcap(path: Path, frames: Sequence[tuple[float, int, bytes]], **kw) -> Path:
    """Write Flow frames (all of one link type) as a pcap file."""
    lts = {lt for _t, lt, _b in frames}
    assert len(lts) == 1, lts
    path.write_bytes(pcap_bytes([(t, b) for t, _lt, b in frames], linktype=lts.pop(), **kw))
    return path


# -- running the CLI -----------------------------------------------------------------------------
def cli(*args: str, input: bytes | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``python -m tcpview ARGS`` in a subprocess; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COLUMNS", None)
    p = subprocess.run(
        [sys.executable, "-m", "tcpview", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


@pytest.fixture
def run_cli():
    """The :func:`cli` helper as a fixture."""
    return cli


@pytest.fixture
def write_pcap(tmp_path: Path):
    """Write a pcap from Flow frames: ``write_pcap(frames, name="x.pcap", nano=..., endian=...)``."""

    def _write(frames, name: str = "capture.pcap", **kw) -> Path:
        return write_frames_pcap(tmp_path / name, frames, **kw)

    return _write


def corpus_dir() -> Path | None:
    """The shared corpus of public captures (TCPVIEW_PCAP_CORPUS, else ../shared/pcaps)."""
    env = os.environ.get("TCPVIEW_PCAP_CORPUS")
    p = Path(env) if env else REPO.parent / "shared" / "pcaps"
    return p if p.is_dir() else None


# -- real loopback traffic ------------------------------------------------------------------------
SS_STATES = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED", "FIN-WAIT-1": "FIN_WAIT_1",
    "FIN-WAIT-2": "FIN_WAIT_2", "TIME-WAIT": "TIME_WAIT", "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING", "LISTEN": "LISTEN",
}

SCENARIOS = ("time_wait", "close_wait", "refused", "abort", "half_close", "server_first", "established", "reuse")


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
    import random
    import socket

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
    import re

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
    import signal
    import socket
    import time

    base = _free_block(len(SCENARIOS))
    ports = {name: base + i for i, name in enumerate(SCENARIOS)}
    lo, hi = base, base + len(SCENARIOS) - 1
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", *TCPDUMP_OPTS, "-w", str(path), f"tcp and host 127.0.0.1 and portrange {lo}-{hi}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    keep: list[socket.socket] = []
    try:
        from test_live_support import wait_for_text

        wait_for_text(dump.stderr, "listening on", 20)

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

        # half-close: the client shuts down its sending side, the server keeps answering
        cli, srv = pair("half_close")
        cli.sendall(b"request")
        cli.shutdown(socket.SHUT_WR)
        assert read_to_eof(srv) == b"request"
        for i in range(3):
            srv.sendall(bytes([65 + i]) * 20000)
            time.sleep(0.02)
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
        time.sleep(0.05)
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

        time.sleep(0.3)  # let the last ACKs land
        ss = ss_sockets(lo, hi)
        time.sleep(0.2)
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
    import shutil

    if os.geteuid() != 0:
        return "needs root for tcpdump on lo"
    for tool in ("tcpdump", "ss"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="session")
def loopback_capture(tmp_path_factory) -> LoopbackCapture:
    """One real loopback capture per test session (see :func:`make_loopback_capture`)."""
    why = can_capture()
    if why:
        pytest.skip(why)
    return make_loopback_capture(tmp_path_factory.mktemp("lo") / "loopback.pcap")
