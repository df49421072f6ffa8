"""Simulator speed: frames per second built (scapy) and simulated, and what a paced demo costs.

Run: ``python benchmarks/sim_bench.py [SECONDS]``. Prints, for the default ``busy`` scenario
and a few finite ones, frames built per second of CPU, microseconds per frame, and the rate the
busy demo needs at speed 1 (its frames per simulated second), so the CPU share of a live demo
is the ratio of the two.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcpview.engine.timeline.tracker import Tracker
from tcpview.sim import Engine, load
from tcpview.sim.frames import build_frame, build_frame_reference


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    kw = dict(src_mac="02:00:00:00:00:01", dst_mac="02:00:5e:00:00:01", family=4, src="10.0.0.1",
              dst="10.0.0.2", ttl=64, ip_id=1, sport=40000, dport=80, seq=1, ack=1, flags=0x18, window=502,
              options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))], payload=b"x" * 1448)
    for fn, label in ((build_frame, "build_frame"), (build_frame_reference, "bytes(Ether()/IP()/TCP()/payload)")):
        n = 3000
        t = time.perf_counter()
        for _ in range(n):
            fn(**kw)
        dt = time.perf_counter() - t
        print(f"{label:40s} {dt / n * 1e6:7.1f} us/frame")

    t = time.perf_counter()
    eng = Engine(load("busy"), 1)
    frames = list(eng.frames(max_seconds=seconds))
    dt = time.perf_counter() - t
    n = len(frames)
    print(f"busy, {seconds:g} simulated s: {n} frames, {eng.nconns} connections, {dt:.2f} s CPU "
          f"({n / dt:.0f} frames/s, {dt / n * 1e6:.0f} us/frame incl. simulation)")
    # memory of a long demo: the engine keeps only live connections (frames are handed on)
    tracemalloc.start()
    eng2 = Engine(load("busy"), 1)
    for _ in eng2.frames(max_seconds=seconds):
        pass
    cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"busy engine memory after {seconds:g} simulated s: {cur / 1e6:.1f} MB held, {peak / 1e6:.1f} MB peak")
    print(f"busy demo at speed 1 needs {n / seconds:.0f} frames/s: about {100 * (n / seconds) / (n / dt):.0f}% "
          f"of one core for the simulator")
    t = time.perf_counter()
    tr = Tracker()
    tr.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    print(f"tracker on those frames: {(time.perf_counter() - t) / n * 1e6:.1f} us/frame")
    for name in ("time-wait-storm", "syn-flood", "zero-window"):
        t = time.perf_counter()
        k = sum(1 for _ in Engine(load(name), 1).frames())
        dt = time.perf_counter() - t
        print(f"{name:20s} {k:6d} frames in {dt * 1000:6.0f} ms ({dt / k * 1e6:.0f} us/frame)")


if __name__ == "__main__":
    main()
