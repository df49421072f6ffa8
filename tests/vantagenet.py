"""The same connections captured at two points at once: a client and a server namespace joined
through a router namespace (veth pairs, segmentation and checksum offload off, so both taps
see the same segments), tcpdump on the client's interface and on the server's, and nftables
in the router dropping every Nth data segment each way (with a counter per direction: what
was lost between the two captures). Everything made is removed on every way out. Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from livehelp import TCPDUMP_OPTS, read_until, tcpdump_drops, wait_tcpdump_wrote
from routednet import routed

TOOLS = ("ip", "nft", "tcpdump", "ethtool", "editcap")
PORT = 9200

SERVER = r'''
import socket, sys, threading
def serve(c):
    want = int(sys.argv[2])
    got = 0
    while got < want:
        b = c.recv(65536)
        if not b:
            break
        got += len(b)
    c.sendall(b"s" * int(sys.argv[3]))
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

CLIENT = r'''
import socket, sys, threading
host, port, n, up, down = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def one():
    s = socket.socket()
    s.settimeout(30)
    s.connect((host, port))
    s.sendall(b"c" * up)
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    s.close()
    assert got == down, got
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
'''


@dataclass
class TwoTaps:
    """What :func:`capture` made."""

    client: Path
    """The capture on the client's interface."""
    server: Path
    """The capture on the server's interface."""
    dropped: dict[str, int]
    """Data segments the router dropped: ``c2s`` and ``s2c``."""
    connections: int
    client_port: int
    """The port the client connects to (the server's)."""
    tap_drops: int = 0
    """Packets the two taps' tcpdumps dropped in their kernel buffers (a busy machine): the
    captures then miss segments the router passed or dropped."""


def missing() -> str | None:
    """Why this cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    return f"needs {', '.join(absent)}" if absent else None


def _run(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin).stdout


def _counters(ns: str, table: str) -> dict[str, int]:
    """The packets each named counter of the router's table counted."""
    out = json.loads(_run("ip", "netns", "exec", ns, "nft", "-j", "list", "counters", "table", "inet", table))
    return {c["counter"]["name"]: int(c["counter"]["packets"]) for c in out["nftables"] if "counter" in c}


def capture(folder: Path, connections: int = 3, every: int = 7, up: int = 60000, down: int = 200000,
            tcpdump_opts: list[str] | None = None) -> TwoTaps:
    """Run ``connections`` connections (``up`` bytes to the server, then ``down`` back) through
    the router, which drops every ``every``-th data segment each way, captured on both ends
    (``tcpdump_opts``: instead of the tests' options, e.g. a larger buffer for much traffic)."""
    tag = f"tw{os.getpid() % 100000}"
    net = f"10.{100 + os.getpid() % 40}"
    procs: list[subprocess.Popen] = []
    with routed(tag, net, ("tso", "gso", "gro", "tx"), need_ethtool=True) as (a, r, b):
        try:
            # every Nth segment with data, each way, counted: the handshake and the closes pass
            rule = f"tcp flags & (syn | fin | rst) == 0 ip length > 100 numgen inc mod {every} == 0"
            _run("ip", "netns", "exec", r, "nft", "-f", "-", stdin=(
                f"table inet {tag} {{\n counter c2s {{}}\n counter s2c {{}}\n"
                f" chain c {{\n  type filter hook forward priority 0;\n"
                f"  ip saddr {net}.1.2 {rule} counter name c2s drop\n"
                f"  ip saddr {net}.2.2 {rule} counter name s2c drop\n }}\n}}\n"))
            server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", SERVER, str(PORT), str(up), str(down)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(server)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            paths = {"client": folder / "client.pcap", "server": folder / "server.pcap"}
            dumps = []
            for name, ns, dev in (("client", a, f"{tag}1h"), ("server", b, f"{tag}2h")):
                d = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, *(tcpdump_opts or TCPDUMP_OPTS), "-w",
                                      str(paths[name]), "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                procs.append(d)
                dumps.append(d)
                read_until(d.stderr, "listening on", 20)
            subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", CLIENT, f"{net}.2.2", str(PORT),
                            str(connections), str(up), str(down)], check=True, capture_output=True, timeout=120)
            tap_drops = sum(tcpdump_drops(wait_tcpdump_wrote(d)) for d in dumps)
            dropped = _counters(r, tag)
            for d in dumps:
                d.terminate()
                d.wait(10)
            return TwoTaps(paths["client"], paths["server"], dropped, connections, PORT, tap_drops)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(10)
