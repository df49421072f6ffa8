"""Kernel-only mode's cost: CPU time per kernel event, beside a packet capture's per packet.

A load of new connections on the loopback of a network namespace made here (each one
accepted, closed by the server, then by the client: ten packets and about fourteen kernel
events) runs for a few seconds while two tcpview processes watch it, each as a user runs it:

- ``tcpview summary --kernel`` (no capture: the tracepoints alone, every socket of the host);
- ``tcpview summary -i lo`` inside the namespace (the packet ring, the compiled engine).

Each is ended with Ctrl-C once the load is over; its CPU time (user + system, from the
kernel's accounting of the child) is divided by what it handled (events read, or packets
captured, as each says on stderr). Other TCP activity of the host adds events to the first
(it sees every namespace): the per-event figure stays fair, the totals differ.

Run as root:

    python benchmarks/kernel_events_bench.py                 # 5,000 connections/s for 5 s
    python benchmarks/kernel_events_bench.py --rate 2000 --seconds 10

The namespace is removed on every exit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _start(cmd: list[str], ready: str, ns: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    full = (["ip", "netns", "exec", ns] if ns else []) + [sys.executable, "-m", "tcpview", *cmd]
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    seen = ""
    deadline = time.monotonic() + 180
    while ready not in seen and time.monotonic() < deadline:
        line = p.stderr.readline()  # type: ignore[union-attr]
        if not line:
            break
        seen += line
    if ready not in seen:
        p.kill()
        raise SystemExit(f"{' '.join(cmd)} did not start: {seen}")
    return p


def _finish(p: subprocess.Popen) -> tuple[float, str]:
    """End ``p`` with SIGINT; (CPU seconds it used, what it said on stderr)."""
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()  # type: ignore[union-attr]
    _pid, _status, usage = os.wait4(p.pid, 0)
    p.returncode = 0
    return usage.ru_utime + usage.ru_stime, err


def main() -> None:
    """Run the load once with both watchers and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5000.0, help="new connections a second (default 5000)")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the load runs (default 5 s)")
    ap.add_argument("--port", type=int, default=47311)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (tracefs, packet capture, namespaces)")
    ns = f"tcpview-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    started: list[subprocess.Popen] = []
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        kern = _start(["summary", "--kernel"], "reading the kernel's TCP events")
        started.append(kern)
        cap = _start(["summary", "-i", "lo", "-f", f"tcp port {args.port}"], "capturing on", ns)
        started.append(cap)
        t0 = time.monotonic()
        load = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(REPO / "tests" / "loadgen.py"),
                               str(args.port), str(args.seconds), str(args.rate)], capture_output=True, text=True,
                              check=True)
        wall = time.monotonic() - t0
        time.sleep(0.5)
        kcpu, kerr = _finish(kern)
        ccpu, cerr = _finish(cap)
    finally:
        for p in started:  # a watcher left running by a failure is ended (Ctrl-C: it cleans up)
            if p.returncode is None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    made = int(load.stdout)
    m = re.search(r"kernel: (\d+) events? read, (none lost|(\d+) lost)", kerr)
    events, lost = (int(m[1]), 0 if m[2] == "none lost" else int(m[3])) if m else (0, -1)
    m = re.search(r"(\d+) packets? captured.*?(\d+) dropped", cerr)
    packets, drops = (int(m[1]), int(m[2])) if m else (0, -1)
    print(f"load: {made} connections in {wall:.1f} s ({made / wall:.0f}/s) on lo in a namespace")
    print(f"{'watcher':<34}{'handled':>12}{'lost':>8}{'CPU s':>8}{'us each':>9}")
    print(f"{'summary --kernel (tracepoints)':<34}{events:>8} ev{lost:>8}{kcpu:>8.2f}"
          f"{(kcpu / events * 1e6 if events else float('nan')):>9.2f}")
    print(f"{'summary -i lo (packet capture)':<34}{packets:>7} pkt{drops:>8}{ccpu:>8.2f}"
          f"{(ccpu / packets * 1e6 if packets else float('nan')):>9.2f}")
    if made:
        print(f"per connection: {events / made:.1f} events, {kcpu / made * 1e6:.0f} us (kernel-only); "
              f"{packets / made:.1f} packets, {ccpu / made * 1e6:.0f} us (capture)")


if __name__ == "__main__":
    main()
