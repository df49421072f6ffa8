"""Benchmark the engine (reader + decoder + tracker + store) against tshark on one capture.

On the same file, in the same run, it measures:

* tcpview in-process: the wall time of ``tcpview.engine.pump.load()`` (best of ``--repeat``) and
  packets per second;
* ``tcpview summary FILE --json`` as a subprocess under ``/usr/bin/time -v``: wall time and
  peak RSS;
* ``tshark -q -z conv,tcp -r FILE`` the same way;
* memory per stored segment: the packed records (sum of ``len(c.rec)`` over connections /
  segments), the RSS growth of load() / segments, and what tracemalloc counts as still
  allocated after load() / segments (everything the store keeps, connections included).

Targets: tcpview's time at most 0.4 of tshark's, and at most 64 bytes per stored segment.

Usage::

    python benchmarks/make_capture.py            # once: ~1M packets of real loopback HTTP
    python benchmarks/engine_bench.py [CAPTURE] [--repeat 3] [--no-tracemalloc]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.make_capture import DEFAULT_OUT  # noqa: E402

TARGET_RATIO = 0.4
TARGET_BYTES = 64


def rss_bytes() -> int:
    """This process's resident set size now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, int]:
    """Run cmd with stdout discarded; returns (wall seconds, peak RSS bytes, exit status)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if gnu_time:
        full = [gnu_time, "-v", *cmd]
    else:
        full = cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if m:
        rss = int(m.group(1)) * 1024
    else:
        import resource

        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return wall, rss, p.returncode


def in_process(path: str, repeat: int) -> dict:
    """Time load() in this process; keep the last timeline for the memory figures."""
    from tcpview.engine.pump import load

    best = float("inf")
    res = None
    rss_delta = 0
    for _ in range(repeat):
        res = None
        gc.collect()
        before = rss_bytes()
        t0 = time.perf_counter()
        res = load(path)
        dt = time.perf_counter() - t0
        rss_delta = rss_bytes() - before
        best = min(best, dt)
    assert res is not None
    tl = res.timeline
    segments = sum(c.n for c in tl.conns)
    rec_bytes = sum(len(c.rec) for c in tl.conns)
    return {
        "load_s": best,
        "packets": tl.packets,
        "tcp_packets": tl.tcp_packets,
        "connections": len(tl.conns),
        "segments": segments,
        "transitions": len(tl.t_log),
        "record_bytes_per_segment": rec_bytes / segments if segments else 0.0,
        "rss_delta_per_segment": rss_delta / segments if segments else 0.0,
        "error": res.error,
        "time_wait_end": tl.counters_at()["TIME_WAIT"],
    }


def traced(path: str) -> float:
    """Bytes still allocated after load(), per stored segment (tracemalloc, a fresh process)."""
    code = (
        "import sys, tracemalloc, gc\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tcpview.engine.pump import load\n"
        "import tcpview.engine.tracker, tcpview.engine.store, tcpview.engine.decode, tcpview.engine.model\n"
        "gc.collect()\n"
        "tracemalloc.start()\n"
        f"res = load({path!r})\n"
        "gc.collect()\n"
        "cur, _peak = tracemalloc.get_traced_memory()\n"
        "n = sum(c.n for c in res.timeline.conns)\n"
        "print(cur / n if n else 0.0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"engine_bench: tracemalloc run failed: {p.stderr.strip().splitlines()[-1]}")
    return float(p.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tcpview engine vs tshark on one capture")
    ap.add_argument("capture", nargs="?", type=Path, default=DEFAULT_OUT,
                    help=f"capture to read (default {DEFAULT_OUT}, made by make_capture.py)")
    ap.add_argument("--repeat", type=int, default=3, help="in-process load() runs; the best is kept")
    ap.add_argument("--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc run")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    a = ap.parse_args(argv)
    if not a.capture.is_file():
        print(f"engine_bench: {a.capture}: no such capture (run benchmarks/make_capture.py first)", file=sys.stderr)
        return 2
    if shutil.which("tshark") is None:
        print("engine_bench: tshark is not installed", file=sys.stderr)
        return 2
    path = str(a.capture)
    size = a.capture.stat().st_size

    # warm the page cache so neither side pays for the first read
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass

    env = dict(os.environ, PYTHONPATH=str(REPO))
    tv_wall, tv_rss, tv_rc = timed([sys.executable, "-m", "tcpview", "summary", path, "--json"], env)
    ts_wall, ts_rss, ts_rc = timed(["tshark", "-n", "-q", "-z", "conv,tcp", "-r", path])
    ip = in_process(path, a.repeat)
    tm = None if a.no_tracemalloc else traced(path)

    pkts = ip["packets"]
    fig = {
        "capture": path,
        "capture_mb": size / 1e6,
        "packets": pkts,
        "tcp_packets": ip["tcp_packets"],
        "connections": ip["connections"],
        "segments": ip["segments"],
        "tcpview_load_s": ip["load_s"],
        "tcpview_load_pkts_per_s": pkts / ip["load_s"],
        "tcpview_summary_s": tv_wall,
        "tcpview_summary_pkts_per_s": pkts / tv_wall,
        "tcpview_peak_rss_mb": tv_rss / 1e6,
        "tcpview_exit": tv_rc,
        "tshark_s": ts_wall,
        "tshark_pkts_per_s": pkts / ts_wall,
        "tshark_peak_rss_mb": ts_rss / 1e6,
        "tshark_exit": ts_rc,
        "ratio_summary_to_tshark": tv_wall / ts_wall,
        "ratio_load_to_tshark": ip["load_s"] / ts_wall,
        "record_bytes_per_segment": ip["record_bytes_per_segment"],
        "rss_delta_bytes_per_segment": ip["rss_delta_per_segment"],
        "tracemalloc_bytes_per_segment": tm,
        "time_wait_at_end": ip["time_wait_end"],
    }

    def ok(good: bool) -> str:
        return "ok" if good else "MISSED"

    print(f"capture            {path}  ({size / 1e6:.1f} MB, {pkts:,} packets, {ip['connections']:,} connections, "
          f"{ip['segments']:,} segments, TIME_WAIT at end {ip['time_wait_end']:,})")
    if ip["error"]:
        print(f"  note: the reader stopped early: {ip['error']}")
    print(f"tcpview load()     {ip['load_s']:8.2f} s   {pkts / ip['load_s']:>12,.0f} packets/s   (in-process, best of "
          f"{a.repeat})")
    print(f"tcpview summary    {tv_wall:8.2f} s   {pkts / tv_wall:>12,.0f} packets/s   peak RSS {tv_rss / 1e6:,.0f} MB"
          f"   (subprocess, exit {tv_rc})")
    print(f"tshark conv,tcp    {ts_wall:8.2f} s   {pkts / ts_wall:>12,.0f} packets/s   peak RSS {ts_rss / 1e6:,.0f} MB"
          f"   (subprocess, exit {ts_rc})")
    print(f"time ratio         summary/tshark {tv_wall / ts_wall:.3f}   load()/tshark {ip['load_s'] / ts_wall:.3f}"
          f"   target <= {TARGET_RATIO}: {ok(tv_wall / ts_wall <= TARGET_RATIO)}")
    rb = ip["record_bytes_per_segment"]
    whole = tm if tm is not None else ip["rss_delta_per_segment"]
    print(f"bytes per segment  packed records {rb:.1f}   target <= {TARGET_BYTES}: {ok(rb <= TARGET_BYTES)}")
    line = f"                   whole store: RSS growth {ip['rss_delta_per_segment']:.1f}"
    if tm is not None:
        line += f"   tracemalloc {tm:.1f}"
    print(line + f"   (connections and transitions included)   target <= {TARGET_BYTES}: "
          f"{ok(whole <= TARGET_BYTES)}")
    if a.json:
        print(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
