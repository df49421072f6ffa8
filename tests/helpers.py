"""Shared test helpers (no fixtures, no tests: the fixtures are in conftest.py).

- capture files written with a small struct writer, and frames built with scapy;
- :class:`Flow`, one TCP conversation at a time, and :func:`track` to feed a Tracker;
- :func:`cli`, ``python -m tcpview`` run as a user would;
- :func:`wait_until`, the one way the tests wait for something to happen.

The capture writer is written here from the file-format specs (not with tcpview's own code),
so the reader under test is checked against an independent implementation: pcap with
microsecond or nanosecond timestamps in either byte order, and pcapng with any number of
interfaces, each with its own link type and timestamp resolution.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import random
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback

from tcpview.engine.timeline.tracker import Tracker

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


def ng_block(endian: str, btype: int, body: bytes) -> bytes:
    """One pcapng block: type, total length, the body padded to 4 bytes, the length again."""
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
    out = [ng_block(endian, 0x0A0D0D0A, shb)]
    res = []
    for lt, power in interfaces:
        opt = struct.pack(endian + "HH", 9, 1) + bytes([power]) + b"\0\0\0"
        opt += struct.pack(endian + "HH", 0, 0)
        out.append(ng_block(endian, 1, struct.pack(endian + "HHI", lt, 0, 0) + opt))
        res.append(10**power)
    for iid, ts, data in packets:
        data = bytes(data)
        ticks = round(ts * res[iid])
        body = struct.pack(endian + "IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
        out.append(ng_block(endian, 6, body + data))
    return b"".join(out)


# -- frames --------------------------------------------------------------------------------------
def eth(**kw) -> Ether:
    """An Ethernet header with fixed addresses: scapy would otherwise look the destination up
    (ARP / neighbour solicitation on the network) to fill it in."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


def wrap(pkt, link: str = "ether") -> tuple[int, bytes]:
    """Put an IP packet (scapy) into a link layer; returns ``(linktype, frame bytes)``.

    ``link`` is one of ether, vlan, qinq, sll, sll2, null, loop, raw, ipv4/ipv6 (228/229),
    ipoib (242: 20-byte source and destination addresses, type, reserved), arcnet (129: Linux
    ARCnet, RFC 1201 for IPv4 and IPv6).
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
    if link == "ipoib":
        addrs = bytes(range(1, 21)) + bytes.fromhex("80000550") + bytes(16)
        return 242, addrs + struct.pack("!HH", 0x86DD if v6 else 0x0800, 0) + bytes(pkt)
    if link == "arcnet":
        # source, destination, offset, protocol (0xd4 IPv4, 0xc4 IPv6), split flag, sequence
        return 129, bytes([0xBE, 0x50, 0xC0, 0x00, 0xC4 if v6 else 0xD4, 0, 1, 0x6B]) + bytes(pkt)
    if link == "ipv4":
        assert not v6
        return DLT_IPV4, bytes(pkt)
    if link == "ipv6":
        assert v6
        return DLT_IPV6, bytes(pkt)
    raise ValueError(link)


_TCP_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_ETHER = bytes.fromhex("020000000002" "020000000001" "0800")


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether_ipv4_tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int,
                   win: int, data: bytes) -> bytes:
    """``bytes(eth() / IP(src, dst) / TCP(...) / data)`` as scapy builds it (its defaults: IP id
    1, TTL 64; no TCP options), without scapy."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    bits = sum(_TCP_BITS[f] for f in set(flags))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, bits, win, 0, 0)
    tcp_len = len(tcp) + len(data)
    csum = _checksum(s + d + struct.pack("!BBH", 0, 6, tcp_len) + tcp + data)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 1, 0, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETHER + ip + tcp + data


class Flow:
    """Builds the frames of one TCP conversation, keeping each side's next sequence number.

    ``c(...)`` sends from the client, ``s(...)`` from the server. ``seq`` defaults to the
    sender's next sequence number and ``ack`` (when the flags hold A) to the peer's, so a test
    only spells out seq/ack where the scenario needs something unusual (crossing FINs, a
    retransmission, a wrong ACK). Frames are kept as ``(ts, linktype, bytes)``.
    """

    direct = True  # build plain Ethernet/IPv4 frames without scapy (the same bytes, faster)

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
        fast = (self.direct and self.link == "ether" and not self.v6 and not options
                and set(flags) <= set(_TCP_BITS))
        pkt = None if fast else self.packet(side, flags, data, seq, ack, win, options)
        seg_len = len(data) + ("S" in flags) + ("F" in flags)
        end = (start + seg_len) & 0xFFFFFFFF
        if ((end - self.nxt[side]) & 0xFFFFFFFF) < 0x80000000:
            self.nxt[side] = end
        self.t = self.t + self.dt if at is None else at
        if pkt is None:  # the bytes scapy would build, built directly (scapy takes ~1 ms a frame)
            if ack is None:
                ack = self.nxt[1 - side] if "A" in flags else 0
            lt, raw = DLT_EN10MB, ether_ipv4_tcp(self.ip[side], self.ip[1 - side], self.port[side],
                                                 self.port[1 - side], flags, start, ack, win, data)
        else:
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
    from tcpview.engine.core.tcp import STATE_NAMES

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


def end_as(f: Flow, end: str) -> None:
    """End a conversation: ``client`` or ``server`` closes first (four-way close), ``rst``
    (the server resets), ``close_wait`` (the client's FIN only) or ``open`` (nothing)."""
    if end == "client":
        f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    elif end == "server":
        f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
    elif end == "rst":
        f.s("RA")
    elif end == "close_wait":
        f.c("FA"), f.s("A")


def many_connections(n: int = 150, seed: int = 7) -> list:
    """n overlapping conversations with different endings, merged in time order."""
    rng = random.Random(seed)
    frames: list = []
    for i in range(n):
        f = Flow(cport=30000 + i, sport=rng.choice([80, 443, 8080]), t0=rng.uniform(0, 10),
                 dt=rng.uniform(0.001, 0.5), cisn=rng.getrandbits(32), sisn=rng.getrandbits(32), frames=frames)
        f.handshake()
        for _ in range(rng.randrange(0, 3)):
            f.c("PA", b"q" * rng.randrange(1, 50))
            f.s("PA", b"r" * rng.randrange(1, 500))
        end = rng.choice(["client", "server", "rst", "close_wait", "open"])
        end_as(f, end)
    frames.sort(key=lambda x: x[0])
    return frames


def corpus_dir() -> Path | None:
    """The shared corpus of public captures (TCPVIEW_PCAP_CORPUS, else ../shared/pcaps)."""
    env = os.environ.get("TCPVIEW_PCAP_CORPUS")
    p = Path(env) if env else REPO.parent / "shared" / "pcaps"
    return p if p.is_dir() else None


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


def cli_here(*args: str) -> tuple[int, str, str]:
    """``tcpview.cli.main(ARGS)`` in this process; returns (exit status, stdout, stderr) as
    :func:`cli` does, without an interpreter's start-up and the kernels' loading per call (for
    tests that run the command line hundreds of times). A traceback lands in stderr, status 1."""
    from tcpview.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except Exception:
            traceback.print_exc()
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def reap(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and wait for it if it still runs (a test's way out, passed or not)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Ask ``proc`` to end (SIGTERM), and kill it if it has not after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- waiting ---------------------------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 5.0,
    interval: float = 0.02,
    pause: Callable[[float], Awaitable[Any]] | None = None,
) -> Any:
    """Call ``predicate()`` until it returns something true or ``timeout`` seconds have passed.

    Returns the predicate's last value, so ``assert wait_until(...)`` fails when time ran out,
    and a predicate can return what it was waiting for (a screen's text, say). ``timeout`` is a
    deadline that keeps a broken test from hanging, not a speed requirement: make it generous.
    ``interval`` is the sleep between calls (0 when the predicate itself blocks, e.g. on
    ``select``).

    Inside an event loop, pass ``pause``, an async sleep such as ``asyncio.sleep`` or
    ``pilot.pause``, which runs between calls so the loop (the app under test) keeps going;
    then the result is an awaitable (``assert await wait_until(..., pause=pilot.pause)``) and
    the predicate may also be a coroutine function.
    """
    deadline = time.monotonic() + timeout
    if pause is None:
        while True:
            value = predicate()
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(interval)

    async def polled() -> Any:
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value or time.monotonic() >= deadline:
                return value
            await pause(interval)

    return polled()


@contextlib.contextmanager
def running(kernels: str) -> Iterator[None]:
    """The kernels compiled (the session's mode), or run as plain Python (what a command
    chooses for a small capture) while the block runs: ``kernels`` is "compiled" or "python"."""
    from tcpview import jit

    if kernels == "python" and not jit.JIT_DISABLED:
        jit.use_python()
        try:
            yield
        finally:
            jit.use_compiled()
    else:
        yield

