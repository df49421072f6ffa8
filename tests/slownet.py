"""Real Linux TCP slowed by one cause at a time, made at test time: a client and a server
namespace joined through a router namespace (veth pairs, TSO/GSO/GRO and checksum offload off,
so segments are as on a wire), with the router and the two programs set up for one cause:

- ``receive_window``: the client reads slowly through a small receive buffer;
- ``application``: the server writes in bursts with pauses;
- ``server_response``: the server waits before answering the client's request;
- ``bottleneck``: a slow link (tbf) with a deep queue towards the client;
- ``loss``: random drops (8%) in the router, both ways (nftables ``numgen random``), of the
  segments that carry data (a lost SYN is the handshake's cause, below; a lost handshake ACK
  or bare FIN is a wait the capture cannot tell from the handshake's or the peer's own, and
  came out as handshake or idle, rightly from where the capture sees it);
- ``handshake``: every other SYN dropped (nftables ``numgen inc``), so each connection's
  first SYN is lost and the client sends it again a second later;
- ``nagle``: the client writes each request in two small writes and then reads the answer
  (write-write-read): Nagle's algorithm holds the second write until the first is
  acknowledged, and the server delays that ACK; ``nodelay``: the same with ``TCP_NODELAY``.

With ``rtt`` the middle is a userspace delay line instead (:data:`BRIDGE`), which makes the
drops itself; the rate limit is the same tbf on its interface towards the client.

``run(cause, path)`` writes the capture (of the server's side, where the data is sent; of the
client's for ``handshake``, which sees the lost SYNs) and removes everything it made, on
every way out. Needs root (namespaces, nftables, tc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from livehelp import read_until, wait_tcpdump_wrote

TOOLS = ("ip", "nft", "tc", "tcpdump", "ethtool")
PORT = 9100

SERVER = r'''
import socket, sys, threading, time
cause = sys.argv[1]
BULK = b"l" * int(sys.argv[3])  # made before any connection: the first write goes at once
REQUESTS = 20
def serve(c):
    try:
        if cause in ("nagle", "nodelay"):
            for _ in range(REQUESTS):
                got = 0
                while got < 200:  # the request's two parts
                    part = c.recv(4096)
                    if not part:
                        return
                    got += len(part)
                c.sendall(b"n" * 100)
        elif cause == "server_response":
            c.recv(4096)
            time.sleep(0.4)  # the server thinks before it answers
            c.sendall(b"r" * 3000)
        elif cause == "application":
            for _ in range(5):
                c.sendall(b"a" * 16000)
                time.sleep(0.15)  # the application has nothing to write for a while
        elif cause == "handshake":
            c.recv(4096)
            c.sendall(b"h" * 2000)
        elif cause == "receive_window":
            c.sendall(b"w" * 60000)
        elif cause == "bottleneck":
            c.sendall(b"b" * 500000)
        else:  # loss
            c.sendall(BULK)
        if len(sys.argv) > 4:  # the kernel's own account of this socket, once all is acknowledged
            for _ in range(3000):
                info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
                if int.from_bytes(info[24:28], "little") == 0 and int.from_bytes(info[144:148], "little") == 0:
                    break  # tcpi_unacked and tcpi_notsent_bytes
                time.sleep(0.01)
            with open(sys.argv[4], "a") as f:
                f.write(f"{c.getpeername()[1]} {info.hex()}\n")
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

CLIENT = r'''
import socket, sys, threading, time
cause, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def one():
    s = socket.socket()
    if cause == "receive_window":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    if cause == "nodelay":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((host, port))
    if cause in ("nagle", "nodelay"):
        for _ in range(20):  # write, write, read
            s.sendall(b"q" * 100)
            s.sendall(b"q" * 100)
            got = 0
            while got < 100:
                part = s.recv(4096)
                if not part:
                    raise SystemExit("the server closed early")
                got += len(part)
    if cause in ("server_response", "handshake"):
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    room = memoryview(bytearray(1 << 20))
    while True:
        got = s.recv_into(room, 1024 if cause == "receive_window" else len(room))
        if not got:
            break
        if cause == "receive_window":
            time.sleep(0.02)  # a slow reader
    s.close()
if cause == "handshake":  # one after the other: the router drops every other SYN
    for _ in range(n):
        one()
else:
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
'''

BRIDGE = r'''
import heapq, random, select, socket, sys, threading, time
devs, delay, drop, syn = sys.argv[1:3], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
socks = []
for dev in devs:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # every protocol
    s.bind((dev, 0))
    socks.append(s)
queue, ready, syns = [], threading.Condition(), [0]
def keep(frame):
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return True  # ARP and the rest pass
    flags = frame[14 + (frame[14] & 15) * 4 + 13]
    if syn and flags & 0x12 == 0x02:
        syns[0] += 1
        return syns[0] % 2 == 0  # every other SYN lost
    return not (drop and not flags & 0x02 and len(frame) > 14 + 100 and random.random() < drop)
def reader():
    n = 0
    while True:
        for s in select.select(socks, [], [])[0]:
            frame, addr = s.recvfrom(65535)
            if addr[2] != socket.PACKET_OUTGOING and keep(frame):
                n += 1
                with ready:
                    heapq.heappush(queue, (time.monotonic() + delay, n, 1 - socks.index(s), frame))
                    ready.notify()
threading.Thread(target=reader, daemon=True).start()
print("ready", flush=True)
while True:
    with ready:
        while not queue or queue[0][0] > time.monotonic():
            ready.wait(queue[0][0] - time.monotonic() if queue else None)
        _due, _n, out, frame = heapq.heappop(queue)
    try:
        socks[out].send(frame)
    except OSError:
        pass  # the link's queue is full (tbf): dropped, as a router would
'''
"""A delay line between two interfaces (the ``rtt`` topology's middle): each frame that
arrives on one leaves the other ``delay`` seconds later, in order; it drops at random (only
segments with data) or every other SYN when asked, as the kernel router's nftables rules do."""

CONNECTIONS = 2
"""Connections each scenario makes."""


def missing() -> str | None:
    """Why this cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, tc)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    return f"needs {', '.join(absent)}" if absent else None


def _run(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, input=stdin.encode() if stdin else None)


def _router(cause: str, r: str, tag: str) -> None:
    """Set up the router namespace for ``cause``."""
    if cause == "bottleneck":  # 8 Mbit/s towards the client, with up to half a second of queue
        _run("ip", "netns", "exec", r, "tc", "qdisc", "add", "dev", f"{tag}1r", "root", "tbf", "rate", "8mbit",
             "burst", "8kb", "latency", "500ms")
    elif cause == "loss":
        _run("ip", "netns", "exec", r, "nft", "-f", "-", stdin=(
            f"table inet {tag} {{\n chain c {{\n  type filter hook forward priority 0;\n"
            "  tcp flags & syn == 0 ip length > 100 numgen random mod 100 < 8 drop\n }\n}\n"))
    elif cause == "handshake":
        _run("ip", "netns", "exec", r, "nft", "-f", "-", stdin=(
            f"table inet {tag} {{\n chain c {{\n  type filter hook forward priority 0;\n"
            "  tcp flags & (syn | ack) == syn numgen inc mod 2 == 0 drop\n }\n}\n"))


def run(cause: str, path: Path, connections: int = CONNECTIONS, live: list[str] | None = None,
        rtt: float = 0.0, tcp_info: Path | None = None, on_router: bool = False, at_client: bool = False) -> Path:
    """Make ``connections`` connections slowed by ``cause`` and write their capture to ``path``
    (``live``: instead of tcpdump, this command captures, given the interface as its last
    argument; it must say "capturing on" on stderr once it does, and its output goes to
    ``path``). ``rtt``: a path with this round-trip time: the middle namespace is then a
    userspace delay line (:data:`BRIDGE`, which also makes the drops), not a kernel router.
    ``tcp_info``: the server writes each connection's ``struct tcp_info`` there once all its
    data is acknowledged (a line ``client-port hex``): the kernel's own chrono counters.
    ``on_router``: capture in the middle namespace, on its interface towards the server, where
    neither end of a connection is a socket of that namespace's kernel. ``at_client``: capture
    on the client's interface."""
    tag = f"ts{os.getpid() % 100000}"
    a, r, b = f"{tag}a", f"{tag}r", f"{tag}b"  # client, router, server
    net = f"10.{150 + os.getpid() % 50}"
    procs: list[subprocess.Popen] = []
    try:
        for ns in (a, r, b):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        # client --(net.1.0/24)-- router --(net.2.0/24)-- server; with an rtt, one net.0.0/24
        # through the delay line
        for side, ns in ((1, a), (2, b)):
            here, there = f"{tag}{side}h", f"{tag}{side}r"
            _run("ip", "link", "add", here, "netns", ns, "type", "veth", "peer", "name", there, "netns", r)
            _run("ip", "-n", ns, "addr", "add", f"{net}.0.{side}/24" if rtt else f"{net}.{side}.2/24", "dev", here)
            if not rtt:
                _run("ip", "-n", r, "addr", "add", f"{net}.{side}.1/24", "dev", there)
            for n, dev in ((ns, here), (r, there)):
                _run("ip", "-n", n, "link", "set", dev, "up")
                _run("ip", "netns", "exec", n, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                     "tx", "off")
            if not rtt:
                _run("ip", "-n", ns, "route", "add", "default", "via", f"{net}.{side}.1")
        if rtt:
            if cause == "bottleneck":
                _router(cause, r, tag)
            line = subprocess.Popen(["ip", "netns", "exec", r, sys.executable, "-c", BRIDGE, f"{tag}1r", f"{tag}2r",
                                     str(rtt / 2), "0.05" if cause == "loss" else "0",
                                     "1" if cause == "handshake" else "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(line)
            assert line.stdout is not None and line.stdout.readline().strip() == "ready"
        else:
            _run("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _router(cause, r, tag)
        bulk = 10000000 if not rtt else 300000  # loss: at 8% without an rtt, a timeout is all but sure
        server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", SERVER, cause, str(PORT),
                                   str(bulk), *([str(tcp_info)] if tcp_info else [])],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        ns, dev = (a, f"{tag}1h") if cause == "handshake" or at_client else (b, f"{tag}2h")
        if on_router:
            ns, dev = r, f"{tag}2r"
        if live is not None:
            out = path.open("wb")
            dump = subprocess.Popen(["ip", "netns", "exec", ns, *live, dev], stdout=out, stderr=subprocess.PIPE)
            out.close()
        else:
            dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-s", "128", "-U", "-w",
                                     str(path), "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(dump)
        read_until(dump.stderr, "capturing on" if live is not None else "listening on", 180)
        subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", CLIENT, cause,
                        f"{net}.0.2" if rtt else f"{net}.2.2", str(PORT), str(connections)], check=True,
                       capture_output=True, timeout=60)
        if live is not None:
            dump.wait(60)  # it ends after its --duration
        else:
            wait_tcpdump_wrote(dump, 30.0)  # a loaded machine (a whole suite beside) can take its time
        return path
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        for ns in (a, r, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
