"""Benchmark reading one capture: ``tcpview summary`` beside tshark and tcpdump, and its parts.

In one run, on the same file (page cache warm, compiled kernels cached), it measures and
prints side by side:

* ``tcpview summary FILE --json > /dev/null`` end to end: wall time and peak RSS of the
  child (``wait4``), best of ``--repeat``;
* ``tshark -n -q -z conv,tcp -r FILE`` (wall, peak RSS) and ``tcpdump -r FILE -w /dev/null``;
* tcpview's parts: the summary of a one-packet capture (run as plain Python, as a small
  capture is: see ``startup_bench.py``), the interpreter's
  start-up (``python -c pass``), importing what the summary imports, loading the compiled
  kernels from the cache (``tcpview.engine.warm.ready()`` in a fresh process), the
  per-packet work alone (``tcpview.engine.pump.load()`` in this process after ``ready()``,
  best of ``--repeat``; packets/s), of which reading the file (``CaptureReader.batches()``,
  the compiled scanners), and writing the summary (``write_summary_json``, as the command does);
* the store: bytes per segment and per connection, as allocated (``Timeline.nbytes()``: every
  table's capacity and the hash table) and as used (rows in use x row size, summed over the
  tables of ``columns.Tables.LAYOUT``), table by table;
* the ratios against their targets, each marked met or missed;
* the cold cache: ``ready()`` in a fresh process with ``NUMBA_CACHE_DIR`` set to a new
  temporary directory (compiling every kernel, as the first run after an install does), and
  where the kernels are cached by default (``tcpview.jitcache.CACHE_DIR``).

Every figure is printed with the 1-minute load average after it was taken: on a shared
machine a busy neighbour makes every wall time longer.

Usage::

    python benchmarks/make_capture.py -c 1000000     # once: 1M packets of nginx+wrk on lo
    python benchmarks/engine_bench.py [CAPTURE] [--repeat 3] [--tshark-repeat 1] [--no-cold] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.make_capture import DEFAULT_OUT
from benchmarks.measure import (
    WARM_CODE,
    best_of,
    child_env,
    load1,
    per,
    print_store,
    print_targets,
    py_child,
    store_sizes,
    tiny_pcap,
)

TARGETS = {
    "summary/tshark": 0.1,  # wall
    "summary/tcpdump": 10.0,  # wall
    "load/tcpdump": 3.0,  # wall: the per-packet work alone
    "peak RSS MB": 250.0,  # tcpview summary
    "B/segment": 48.0,  # the whole store
}

# what `tcpview summary FILE --json` imports before it reads
IMPORTS = ("tcpview.cli", "tcpview.cli.offline", "tcpview.cli.report", "tcpview.engine.pump",
           "tcpview.sources.pcap")

PARTS_CODE = """
import json, time
t0 = time.perf_counter()
import {imports}
t1 = time.perf_counter()
from tcpview.engine.warm import ready
r = ready()
print(json.dumps({{"imports": t1 - t0, "ready": r}}))
""".format(imports=", ".join(IMPORTS))

WHERE_CODE = "import json, tcpview.jitcache as j; print(json.dumps({'cache_dir': j.CACHE_DIR}))"


W = 46  # label column


class _Counting:
    """A text sink that only counts what it is given."""

    size = 0

    def write(self, text: str) -> None:
        self.size += len(text)


def in_process(path: str, repeat: int) -> dict:
    """In this process, after ready(): reading the file alone and load() (best of ``repeat``
    each), the store's sizes, and the time to write the summary from the last load."""
    from tcpview.cli.report import write_summary_json
    from tcpview.engine.pump import load
    from tcpview.engine.warm import ready
    from tcpview.sources.pcap import CaptureError, CaptureReader

    ready()
    reads = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        with CaptureReader(path) as reader:
            try:
                for _batch in reader.batches():
                    pass
            except CaptureError:
                pass
        reads.append(time.perf_counter() - t0)
    read_load = load1()
    res, loads = None, []
    for _ in range(max(1, repeat)):
        res = None
        t0 = time.perf_counter()
        res = load(path)
        loads.append(time.perf_counter() - t0)
    assert res is not None
    load_load = load1()
    tl = res.timeline
    t0 = time.perf_counter()
    out = _Counting()
    write_summary_json(tl, path, None, out)
    size = out.size
    report = time.perf_counter() - t0
    return {"read": min(reads), "reads": reads, "read_load": read_load, "load": min(loads), "loads": loads,
            "load_load": load_load, "report": report, "report_load": load1(), "report_mb": size / 1e6,
            "packets": tl.packets, "tcp_packets": tl.tcp_packets, "error": res.error, "store": store_sizes(tl)}


def cold(env: dict) -> dict:
    """ready() with an empty cache of its own (compiles everything), then again (loads it)."""
    tmp = tempfile.mkdtemp(prefix="tcpview-numba-cold-")
    try:
        e = dict(env, NUMBA_CACHE_DIR=tmp)
        first = py_child(WARM_CODE, e)
        second = py_child(WARM_CODE, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"compile": first["ready"], "compile_wall": first["wall"], "compile_load": first["load"],
            "reload": second["ready"], "reload_load": second["load"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tcpview summary beside tshark and tcpdump on one capture")
    ap.add_argument("capture", nargs="?", type=Path, default=DEFAULT_OUT,
                    help=f"capture to read (default {DEFAULT_OUT}, made by make_capture.py)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measure; the best is kept")
    ap.add_argument("--tshark-repeat", type=int, default=1, help="runs of tshark (slow); the best is kept")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache compile (about a minute of CPU)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    a = ap.parse_args(argv)
    if not a.capture.is_file():
        print(f"engine_bench: {a.capture}: no such capture (run benchmarks/make_capture.py first)", file=sys.stderr)
        return 2
    for tool in ("tshark", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"engine_bench: {tool} is not installed", file=sys.stderr)
            return 2
    path = str(a.capture)
    size = a.capture.stat().st_size
    env = child_env()
    load_start = load1()

    with open(path, "rb") as f:  # page cache warm: nobody pays for the first read
        while f.read(1 << 24):
            pass
    warm = py_child(WARM_CODE, env)  # and the kernels compiled and cached, if they were not
    where = py_child(WHERE_CODE, {k: v for k, v in env.items() if k != "NUMBA_CACHE_DIR"})["cache_dir"]

    summary = best_of(a.repeat, [sys.executable, "-m", "tcpview", "summary", path, "--json"], env)
    tshark = best_of(a.tshark_repeat, ["tshark", "-n", "-q", "-z", "conv,tcp", "-r", path])
    tcpdump = best_of(a.repeat, ["tcpdump", "-r", path, "-w", os.devnull])
    with tempfile.TemporaryDirectory(prefix="tcpview-bench-") as tmp:
        tiny = Path(tmp) / "one-syn.pcap"
        tiny.write_bytes(tiny_pcap())
        fixed = best_of(a.repeat, [sys.executable, "-m", "tcpview", "summary", str(tiny), "--json"], env)
    bare = best_of(a.repeat, [sys.executable, "-c", "pass"], env)
    parts = [py_child(PARTS_CODE, env) for _ in range(max(1, a.repeat))]
    imports = min(parts, key=lambda p: p["imports"])
    readyp = min(parts, key=lambda p: p["ready"])
    ip = in_process(path, a.repeat)
    cc = None if a.no_cold else cold(env)
    load_end = load1()

    pkts = ip["packets"]
    st = ip["store"]
    failed = [(n, r) for n, r in (("tcpview summary", summary), ("tshark", tshark), ("tcpdump", tcpdump),
                                  ("tcpview summary (1 packet)", fixed)) if r["rc"] != 0]
    for name, r in failed:
        print(f"engine_bench: {name} exited {r['rc']}: {' / '.join(r['stderr'])}", file=sys.stderr)

    print(f"capture  {path}: {size / 1e6:.1f} MB, {pkts:,} packets ({ip['tcp_packets']:,} TCP), "
          f"{st['connections']:,} connections, {st['segments']:,} segments")
    if ip["error"]:
        print(f"  note: the reader stopped early: {ip['error']}")
    print(f"machine  {os.cpu_count()} CPUs; load average {load_start:.2f} at the start, {load_end:.2f} at the end")
    print(f"kernels  cached in {where} by default (tcpview.jitcache.CACHE_DIR; NUMBA_CACHE_DIR moves it);")
    print(f"         ready() before timing took {warm['ready']:.1f} s (tens of seconds: it compiled them)")
    print()

    def runs(xs: list[float]) -> str:
        return " ".join(f"{x:.2f}" for x in xs)

    def line(label: str, s: float, rate: bool = False, rss: float | None = None, load: float = 0.0,
             note: str = "") -> None:
        r = f"{pkts / s:12,.0f}" if rate and s else f"{'':>12}"
        m = f"{rss / 1e6:12.0f}" if rss is not None else f"{'':>12}"
        print(f"{label:<{W}} {s:8.3f} {r} {m} {load:6.2f}   {note}")

    print(f"{'end to end':<{W}} {'wall s':>8} {'packets/s':>12} {'peak RSS MB':>12} {'load':>6}   runs")
    line("tcpview summary FILE --json > /dev/null", summary["wall"], True, summary["rss"], summary["load"],
         runs(summary["runs"]))
    line("tshark -n -q -z conv,tcp -r FILE", tshark["wall"], True, tshark["rss"], tshark["load"], runs(tshark["runs"]))
    line("tcpdump -r FILE -w /dev/null", tcpdump["wall"], True, tcpdump["rss"], tcpdump["load"], runs(tcpdump["runs"]))
    print()
    print(f"{'tcpview, part by part':<{W}} {'s':>8} {'packets/s':>12} {'peak RSS MB':>12} {'load':>6}")
    line("summary of a 1-packet capture (plain Python)", fixed["wall"], rss=fixed["rss"], load=fixed["load"],
         note=runs(fixed["runs"]))
    line("  interpreter start-up (python -c pass)", bare["wall"], load=bare["load"])
    line("  imports", imports["imports"], load=imports["load"])
    line("  compiled kernels from the cache (ready())", readyp["ready"], load=readyp["load"])
    line("per-packet work: load() after ready()", ip["load"], True, load=ip["load_load"], note=runs(ip["loads"]))
    line("  of which reading (CaptureReader.batches())", ip["read"], True, load=ip["read_load"],
         note=runs(ip["reads"]))
    line(f"writing the summary ({ip['report_mb']:.0f} MB of JSON)", ip["report"], load=ip["report_load"])
    total = bare["wall"] + imports["imports"] + readyp["ready"] + ip["load"] + ip["report"]
    print(f"{'sum of the parts':<{W}} {total:8.3f}   (end to end {summary['wall']:.3f})")
    print()
    print_store(st, W)
    print()
    targets = [
        ("summary / tshark (wall)", summary["wall"] / tshark["wall"], TARGETS["summary/tshark"], "x"),
        ("summary / tcpdump (wall)", summary["wall"] / tcpdump["wall"], TARGETS["summary/tcpdump"], "x"),
        ("per-packet work / tcpdump (wall)", ip["load"] / tcpdump["wall"], TARGETS["load/tcpdump"], "x"),
        ("summary peak RSS", summary["rss"] / 1e6, TARGETS["peak RSS MB"], "MB"),
        ("store bytes / segment, allocated", per(st, "allocated", "segments"), TARGETS["B/segment"], "B"),
        ("store bytes / segment, used", per(st, "used", "segments"), TARGETS["B/segment"], "B"),
    ]
    print_targets(targets, W)
    if cc is not None:
        print()
        print(f"cold cache (NUMBA_CACHE_DIR a new empty directory): ready() compiles every kernel in "
              f"{cc['compile']:.1f} s ({cc['compile_wall']:.1f} s with the interpreter; load {cc['compile_load']:.2f});"
              f" the next run loads them in {cc['reload']:.2f} s (load {cc['reload_load']:.2f})")
    if a.json:
        print(json.dumps({"capture": path, "bytes": size, "packets": pkts, "load_average": [load_start, load_end],
                          "cache_dir": where, "summary": summary, "tshark": tshark, "tcpdump": tcpdump,
                          "fixed": fixed, "python_start": bare, "imports": imports["imports"],
                          "ready": readyp["ready"], "read": ip["reads"], "load": ip["loads"], "report": ip["report"],
                          "store": st, "targets": {t[0]: [t[1], t[2]] for t in targets}, "cold": cc}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
