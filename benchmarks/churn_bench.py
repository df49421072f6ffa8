"""Live capture under connection churn on lo: kernel drops beside tcpdump's, memory under a
budget, evictions, and the TIME_WAIT count beside ``ss``.

Worker processes open and close TCP connections to a local server as fast as this machine
lets them (connect, send a line, the server answers and closes, the client closes): each
connection is a handshake, a request, a reply and a four-way close, about ten packets, and
leaves one socket in TIME_WAIT (the server's side, which closes first).

In one run, with the same churn, on a fresh port each time (TIME_WAIT sockets of one run
stay for 60 s and must not count in the next):

1. ``tcpdump -i lo -w /dev/null 'tcp port P'``: packets captured, dropped by the kernel;
2. ``tcpview summary -i lo -f 'tcp port P' --duration D --memory 64M --json``: its kernel
   drops, peak RSS for the whole run (GNU time), the evictions its summary reports, and its
   TIME_WAIT count beside ``ss -tan state time-wait`` for that port, taken after the churn
   stopped and before the capture ends (no TIME_WAIT expires in between: they last 60 s).

Run as root (capture needs CAP_NET_RAW)::

    python benchmarks/churn_bench.py                  # 20 s each, 2 workers, --memory 64M
    python benchmarks/churn_bench.py --seconds 40 --workers 3 --memory 32M

Only 127.0.0.1 is used and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import GNU_TIME, child_env, load1

TARGET_RSS = 350e6


def _server(lsock: socket.socket, stop) -> None:  # type: ignore[no-untyped-def]
    """Accept, read the request, answer, close first (the server's side goes to TIME_WAIT)."""
    lsock.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = lsock.accept()
        except (TimeoutError, OSError):
            continue
        try:
            c.recv(64)
            c.sendall(b"ok\n")
        except OSError:
            pass
        c.close()


def _client(port: int, stop, count) -> None:  # type: ignore[no-untyped-def]
    """Open, ask, read to the end, close; as fast as it goes, until told to stop."""
    n = 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"hi\n")
            while s.recv(64):
                pass
            s.close()
            n += 1
        except OSError:
            time.sleep(0.01)
    with count.get_lock():
        count.value += n


class Churn:
    """A listening server and client workers, each in its own process."""

    def __init__(self, port: int, workers: int) -> None:
        self.port, self.workers = port, workers
        self.stop = mp.Event()
        self.count = mp.Value("q", 0)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(4096)
        self.procs: list[mp.Process] = []

    def start(self) -> float:
        self.procs = [mp.Process(target=_server, args=(self.lsock, self.stop), daemon=True)
                      for _ in range(max(1, self.workers // 2))]
        self.procs += [mp.Process(target=_client, args=(self.port, self.stop, self.count), daemon=True)
                       for _ in range(self.workers)]
        for p in self.procs:
            p.start()
        return time.monotonic()

    def finish(self) -> int:
        self.stop.set()
        for p in self.procs:
            p.join(5)
        self.lsock.close()
        return int(self.count.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_wait(port: int) -> int:
    """Sockets in TIME_WAIT with ``port`` on either end, as ``ss`` counts them."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( sport = :{port} or dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def run_tcpdump(seconds: float, workers: int) -> dict:
    port = free_port()
    p = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-w", "/dev/null", f"tcp port {port}"],
                         stderr=subprocess.PIPE, text=True)
    p.stderr.readline()  # "listening on lo ..."
    churn = Churn(port, workers)
    t0 = churn.start()
    time.sleep(seconds)
    conns = churn.finish()
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    p.terminate()
    err = p.communicate(timeout=10)[1]
    got = {k: int(n) for n, k in re.findall(r"(\d+) packets? (captured|dropped by kernel)", err)}
    return {"connections": conns, "rate": conns / elapsed, "captured": got.get("captured", 0),
            "dropped": got.get("dropped by kernel", 0), "pps": got.get("captured", 0) / elapsed, "load": load1()}


def run_tcpview(seconds: float, workers: int, memory: str) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tcpview-churn-") as tmp:
        rss_file, out_file = os.path.join(tmp, "rss"), os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", "tcpview", "summary", "-i", "lo", "-f", f"tcp port {port}",
               "--duration", f"{seconds + 3:g}", "--memory", memory, "--json"]
        full = [GNU_TIME, "-f", "%M", "-o", rss_file, *cmd] if GNU_TIME else cmd
        with open(out_file, "wb") as out:
            p = subprocess.Popen(full, stdout=out, stderr=subprocess.PIPE, text=True, env=child_env())
            lines: list[str] = []
            ready = threading.Event()

            def read_err() -> None:
                for line in p.stderr:
                    lines.append(line.rstrip())
                    if "capturing on" in line:
                        ready.set()

            threading.Thread(target=read_err, daemon=True).start()
            if not ready.wait(120):
                p.kill()
                raise SystemExit("tcpview did not start capturing: " + " / ".join(lines[-3:]))
            churn = Churn(port, workers)
            t0 = churn.start()
            time.sleep(seconds)
            conns = churn.finish()
            elapsed = time.monotonic() - t0
            time.sleep(1.0)  # the last closes reach TIME_WAIT; the capture still runs ~2 s
            ss_tw = time_wait(port)
            p.wait(timeout=300)
        summary = json.load(open(out_file))
        try:
            rss = int(open(rss_file).read().split()[-1]) * 1024
        except (OSError, ValueError, IndexError):
            rss = 0
    drops = [int(m.group(2)) for m in (re.search(r"(\d+) packets captured, (\d+) dropped", x) for x in lines) if m]
    captured = [int(m.group(1)) for m in (re.search(r"(\d+) packets captured", x) for x in lines) if m]
    return {"connections": conns, "rate": conns / elapsed, "captured": captured[-1] if captured else 0,
            "dropped": drops[-1] if drops else -1, "rss": rss, "evicted": summary["evicted"],
            "tw_tcpview": summary["counters"].get("TIME_WAIT", 0), "tw_ss": ss_tw,
            "in_summary": len(summary["connections"]), "rc": p.returncode, "load": load1()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="churn per run (< 55: no TIME_WAIT expires)")
    ap.add_argument("--workers", type=int, default=2, help="client processes (servers: half as many)")
    ap.add_argument("--memory", default="64M", help="tcpview's --memory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("churn_bench: needs root (live capture)", file=sys.stderr)
        return 2
    print(f"churn on lo for {a.seconds:g} s, {a.workers} client workers; {os.cpu_count()} CPUs")
    td = run_tcpdump(a.seconds, a.workers)
    print(f"tcpdump -i lo -w /dev/null      {td['connections']:>8,} conns ({td['rate']:,.0f}/s)  "
          f"{td['captured']:>9,} captured ({td['pps']:,.0f} pkt/s)  {td['dropped']:>7,} dropped   load {td['load']:.2f}")
    tv = run_tcpview(a.seconds, a.workers, a.memory)
    ev = tv["evicted"]
    print(f"tcpview summary --memory {a.memory:<6} {tv['connections']:>8,} conns ({tv['rate']:,.0f}/s)  "
          f"{tv['captured']:>9,} captured                {tv['dropped']:>7,} dropped   load {tv['load']:.2f}")
    print(f"  peak RSS {tv['rss'] / 1e6:.0f} MB (target < {TARGET_RSS / 1e6:.0f} MB: "
          f"{'met' if 0 < tv['rss'] < TARGET_RSS else 'MISSED'}); evicted {ev['connections']:,} connections, "
          f"{ev['segments']:,} segments; {tv['in_summary']:,} connections in the summary")
    same = tv["tw_tcpview"] == tv["tw_ss"]
    print(f"  TIME_WAIT: tcpview {tv['tw_tcpview']:,}, ss {tv['tw_ss']:,} ({'equal' if same else 'DIFFERENT'})")
    drops_ok = tv["dropped"] == 0 or td["dropped"] > 0
    print(f"  kernel drops: tcpview {tv['dropped']:,}, tcpdump {td['dropped']:,} "
          f"({'met' if drops_ok else 'MISSED'}: 0 where tcpdump has 0)")
    return 0 if tv["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
