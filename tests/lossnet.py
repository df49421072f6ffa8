"""Real Linux TCP under loss, made at test time: a client and a server namespace joined
through a router namespace (veth pairs), random drops in the router on both sides of the
capture point (nftables ``numgen random``), a rate limit (tbf), and traffic that makes every kind of trouble: bulk transfers into a receiver with a
tiny buffer that reads slowly (zero windows, full windows, window updates, probes), lost and
retransmitted segments, keep-alives every second, connections reset (SO_LINGER 0) and refused.

``capture(path, seconds)`` writes what the client's side of the veth saw (tcpdump) and
removes everything it made. Needs root (namespaces, nftables, tc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from livehelp import read_until, wait_tcpdump_wrote
from routednet import routed

TOOLS = ("ip", "nft", "tc", "tcpdump")

SERVER = r'''
import os, socket, sys, threading, time
def sink(conn, slow):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    try:
        while True:
            got = conn.recv(512 if slow else 65536)
            if not got:
                break
            if slow:
                time.sleep(0.05)  # a slow reader: zero windows, window updates, probes
    except OSError:
        pass
    conn.close()
def echo(conn):
    try:
        while True:
            got = conn.recv(4096)
            if not got:
                break
            conn.sendall(got)
    except OSError:
        pass
    conn.close()
def serve(port, handler, **kw):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port == 9001:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), kwargs=kw, daemon=True).start()
threading.Thread(target=serve, args=(9001, sink), kwargs={"slow": True}, daemon=True).start()
threading.Thread(target=serve, args=(9002, sink), kwargs={"slow": False}, daemon=True).start()
threading.Thread(target=serve, args=(9003, echo), daemon=True).start()
print("ready", flush=True)
time.sleep(float(sys.argv[1]))  # serve for that long
'''

CLIENT = r'''
import socket, struct, sys, threading, time
host, seconds = sys.argv[1], float(sys.argv[2])
end = time.time() + seconds
def bulk(port):
    while time.time() < end:
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.settimeout(5)
            blob = b"x" * 65536
            t0 = time.time()
            while time.time() - t0 < 1.5:
                s.sendall(blob)
            s.close()
        except OSError:
            time.sleep(0.1)  # pacing: try again a moment later
def chatter():
    while time.time() < end:
        try:
            s = socket.create_connection((host, 9003), timeout=5)
            s.settimeout(5)
            for _ in range(20):
                s.sendall(b"ping " * 50)
                s.recv(4096)
            if int(time.time() * 10) % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
            s.close()
        except OSError:
            time.sleep(0.1)  # pacing: try again a moment later
def idle():
    try:
        s = socket.create_connection((host, 9003), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        time.sleep(max(0.0, end - time.time()))  # idle to the end: keep-alives every second
        s.close()
    except OSError:
        pass
def refused():
    while time.time() < end:
        try:
            socket.create_connection((host, 9009), timeout=2).close()
        except OSError:
            pass
        time.sleep(0.3)  # pacing: a refused SYN about three times a second
ts = [threading.Thread(target=f, args=a) for f, a in ((bulk, (9001,)), (bulk, (9002,)), (chatter, ()),
                                                     (idle, ()), (refused, ()))]
for t in ts: t.start()
for t in ts: t.join()
'''


def missing() -> str | None:
    """Why this cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, tc)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    return f"needs {', '.join(absent)}" if absent else None


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def capture(path: Path, seconds: float = 8.0, drop_percent: int = 3) -> Path:
    """Run the traffic for ``seconds`` and write the client side's capture to ``path``."""
    tag = f"tv{os.getpid() % 100000}"
    net = f"10.{200 + os.getpid() % 50}"
    # client --(net.1.0/24)-- router --(net.2.0/24)-- server
    with routed(tag, net) as (a, r, b):
        # a rate limit towards the server: queues, bursts
        _run("ip", "netns", "exec", r, "tc", "qdisc", "add", "dev", f"{tag}2r", "root", "tbf", "rate", "20mbit",
             "burst", "32kbit", "latency", "100ms")
        # random drops in the router, both ways: the client's segments after the capture point
        # (captured, then lost: retransmissions), the server's before it (never captured: gaps)
        rules = (f"table inet {tag} {{\n chain c {{\n  type filter hook forward priority 0;\n"
                 f"  meta l4proto tcp numgen random mod 100 < {drop_percent} drop\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", r, "nft", "-f", "-"], input=rules.encode(), check=True,
                       capture_output=True)
        server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", SERVER, str(seconds + 5)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        dump = subprocess.Popen(["ip", "netns", "exec", a, "tcpdump", "-i", f"{tag}1h", "-s", "200", "-U", "-w",
                                 str(path), "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        read_until(dump.stderr, "listening on", 20)
        subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", CLIENT, f"{net}.2.2", str(seconds)],
                       check=False, capture_output=True, timeout=seconds + 60)
        # traffic, not a wait: a second of the closes that go on after the client has exited
        # (FINs and RSTs through the lossy router; the sockets into the slow receiver can take
        # much longer, so there is no end to wait for)
        time.sleep(1.0)
        wait_tcpdump_wrote(dump)
        dump.terminate()
        dump.wait(10)
        server.kill()
        server.wait(10)
        return path
