"""Bytes per second tcpview writes to its terminal: what a slow SSH link has to carry.

Runs ``python -m tcpview ARGS`` (default: the busy demo) under a pseudo-terminal of each
size, TERM=xterm-256color, discards the first seconds (start-up paints the whole screen),
then counts the bytes read from the terminal over the measuring window and prints the mean
and the worst second. Press nothing: this is the app left alone, as on a demo screen.

Usage::

    python benchmarks/term_bytes.py                      # demo at 80x24 and 120x40, 10 s each
    python benchmarks/term_bytes.py --seconds 20 --sizes 80x24
    python benchmarks/term_bytes.py -- replay capture.pcap

A full 80x24 repaint with colours is roughly 10-20 KB, so 50 KB/s means a few full repaints a
second; a view that only changes a clock and a few cells should stay far below that. The last
column estimates what ``ssh -C`` sends: the same bytes through zlib, flushed after every write.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(app_args: list[str], cols: int, rows: int, warmup: float, seconds: float) -> dict:
    """Run the app under a pty of ``cols`` x ``rows``; returns byte counts per second."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ)
    env.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
    for k in ("NO_COLOR", "TEXTUAL_COLOR_SYSTEM", "COLORTERM", "TEXTUAL_DRIVER"):
        env.pop(k, None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "tcpview", *app_args], stdin=slave, stdout=slave,
                            stderr=slave, cwd=REPO, env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    start = time.monotonic()
    per_second: list[int] = []
    warm_bytes = 0
    # what `ssh -C` would send: zlib, flushed after every write as SSH flushes each packet
    zstream = zlib.compressobj(6)
    compressed = 0
    try:
        while True:
            now = time.monotonic() - start
            if now >= warmup + seconds or proc.poll() is not None:
                break
            r, _, _ = select.select([master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            now = time.monotonic() - start
            if now < warmup:
                warm_bytes += len(chunk)
                continue
            sec = int(now - warmup)
            while len(per_second) <= sec:
                per_second.append(0)
            per_second[sec] += len(chunk)
            compressed += len(zstream.compress(chunk)) + len(zstream.flush(zlib.Z_SYNC_FLUSH))
    finally:
        exited = proc.poll()
        if exited is None:
            os.write(master, b"q")
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(3)
        os.close(master)
    if exited is not None:
        raise SystemExit(f"tcpview {' '.join(app_args)} exited with status {exited} during the run")
    per_second = per_second[: int(seconds)] or [0]
    total = sum(per_second)
    return {"cols": cols, "rows": rows, "startup_bytes": warm_bytes, "bytes": total,
            "mean": total / len(per_second), "max": max(per_second), "min": min(per_second),
            "compressed_mean": compressed / len(per_second)}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measuring window per size (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds ignored at start (default 3)")
    p.add_argument("--sizes", default="80x24,120x40", help="comma-separated COLSxROWS (default 80x24,120x40)")
    p.add_argument("app_args", nargs="*", help="tcpview arguments after -- (default: demo)")
    a = p.parse_args(argv)
    app_args = a.app_args or ["demo"]
    print(f"tcpview {' '.join(app_args)}: bytes written to the terminal, TERM=xterm-256color, "
          f"{a.warmup:g} s warm-up then {a.seconds:g} s")
    print(f"{'size':>8}  {'start-up':>9}  {'mean/s':>9}  {'worst s':>9}  {'best s':>9}  {'ssh -C /s':>9}")
    for size in a.sizes.split(","):
        cols, rows = (int(x) for x in size.lower().split("x"))
        r = measure(app_args, cols, rows, a.warmup, a.seconds)
        print(f"{cols:>4}x{rows:<3}  {r['startup_bytes']:>9,}  {r['mean'] / 1024:>7.1f}KB  "
              f"{r['max'] / 1024:>7.1f}KB  {r['min'] / 1024:>7.1f}KB  {r['compressed_mean'] / 1024:>7.1f}KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
