"""Benchmark the start of ``tcpview summary``: the first run after an install (an empty kernel
cache), then warm, on captures from one packet to a million, each beside tshark.

In one run it measures and prints:

* the captures: one packet (one SYN), a corpus-sized one (~100 packets), the largest of at most
  1 MB (8,000 packets), 100k and 1M packets; all but the first are real nginx+wrk traffic on
  lo made by ``make_capture.py`` (kept in ``--dir``, made once);
* **empty cache** (``NUMBA_CACHE_DIR`` a new directory each time): the first-ever
  ``tcpview summary FILE --json`` of each capture (a small one is answered as plain Python
  while the compile it starts runs in the background; that compile is then stopped; a large
  one is read as plain Python until the compile is published, then compiled), and the compile
  of every kernel (``python -m tcpview.engine.warm``: wall, and the CPU time of its processes);
* **warm** (the cache compiled once): ``tcpview summary FILE --json`` beside
  ``tshark -q -z conv,tcp -r FILE`` for each capture (best of ``--repeat``; tshark on the
  large captures best of ``--tshark-repeat``); for the 1M capture the per-packet work alone
  (``load()`` after ``ready()`` in a process of its own) beside ``tcpdump -r FILE -w /dev/null``;
* **served by the resident engine** (``tcpview/resident``: a process that keeps everything
  loaded and forks for each command, started as a command typed at a terminal starts it):
  the same summaries, beside the same tshark figures;
* **plain Python or compiled, by size**: ``summary`` of the first N packets of the 100k capture
  with the kernels forced either way: where compiled starts to pay
  (``tcpview.engine.warm.PYTHON_MAX_PACKETS`` is chosen from this);
* **what loading costs**: numba's import, its set-up with the first kernel, each group of
  kernels (``ready(groups)``), and which kernels each command loads (``tcpview.jit.loaded``);
* **merging kernels, the potential**: each kernel's compile time (one process, numba's
  compile events) and the load time of one more kernel;
* the figures against the issue's targets, each marked met or missed.

The children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed, a first run
writes the ``.pyc`` files), as an installed package does. Every figure is printed with the
1-minute load average after it: on a shared machine a busy neighbour makes every wall time
longer (the compile's CPU time much less so).

Usage::

    python benchmarks/startup_bench.py [--dir DIR] [--repeat 3] [--tshark-repeat 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import REPO, best_of, child_env, load1, mark, py_child, run_child, tiny_pcap
from tcpview.engine.warm import PYTHON_MAX_PACKETS

TARGETS = {
    "first": 3.0,  # s: first-ever summary of a capture of at most 1 MB, empty cache
    "warm/tshark small": 1.0,  # warm summary of a capture of at most 1 MB, / tshark
    "warm/tshark 1M": 0.1,  # warm summary of the 1M capture, / tshark
    "load/tcpdump 1M": 2.0,  # the per-packet work, / tcpdump -r -w /dev/null
    "compile": 30.0,  # s: every kernel, empty cache
}
CAPTURES = (("1 packet", 0), ("~100 packets", 100), ("<= 1 MB", 8000), ("100k packets", 100_000),
            ("1M packets", 1_000_000))
SMALL = 3  # the first three are at most 1 MB
CUTS = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000)
W = 44

FORCED = """
import sys
from tcpview import jit
jit.use_python() if sys.argv[1] == "python" else jit.use_compiled()
from tcpview.cli import run
sys.argv[1:] = sys.argv[2:]
run()
"""

PER_PACKET = """
import json, sys, time
from tcpview.engine.warm import ready
from tcpview.engine.pump import load
ready()
runs = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    res = load(sys.argv[1])
    runs.append(time.perf_counter() - t0)
print(json.dumps({"load": min(runs), "runs": runs, "packets": res.timeline.packets}))
"""

LOADING = """
import json, time
t0 = time.perf_counter()
import tcpview.cli.offline, tcpview.engine.pump
from tcpview import jit
from tcpview.engine import warm
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
jit.use_compiled()
from tcpview.sources import scan
from tcpview.sources.batch import frame_array
import numpy as np
out, buf = frame_array(4), np.frombuffer(bytes(64), dtype=np.uint8)
t3 = time.perf_counter()
scan.scan_pcap(buf, 0, 0, False, 1e-6, 1, 65536, 0, out)
t4 = time.perf_counter()
scan.scan_pcapng(buf, 0, 0, False, np.zeros(1, np.int32), np.ones(1), np.zeros(1), np.zeros(1, np.int64), 1, 65536, 0,
                 out)
t5 = time.perf_counter()
warm.run_kernels(("read",))
n_read = len(jit.loaded())
t6 = time.perf_counter()
warm.run_kernels(("read", "table"))
n_table = len(jit.loaded())
t7 = time.perf_counter()
warm.run_kernels(warm.GROUPS)
t8 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "numba": t2 - t1, "first": t4 - t3, "second": t5 - t4,
                  "read": t6 - t5, "n_read": n_read - 2, "table": t7 - t6, "n_table": n_table - n_read,
                  "connection": t8 - t7, "n_connection": len(jit.loaded()) - n_table}))
"""

LOADED = """
import io, contextlib, json, sys
from tcpview import jit
from tcpview.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(sys.argv[1:])
print(json.dumps({"loaded": jit.loaded(), "entries": jit.entries()}))
"""

COMPILE_TIMES = """
import json, time
from numba.core import event
from tcpview import jit
from tcpview.engine import warm
jit.use_compiled()
start, took = {}, {}

class Times(event.Listener):
    def on_start(self, ev):
        start[id(ev.data["dispatcher"])] = time.perf_counter()

    def on_end(self, ev):
        d = ev.data["dispatcher"]
        name = d.py_func.__module__ + "." + d.py_func.__name__
        took[name] = took.get(name, 0.0) + time.perf_counter() - start[id(d)]

event.register("numba:compile", Times())
t0 = time.perf_counter()
warm.run_every_kernel()
entries = set(jit.entries())  # (their modules are imported by now)
print(json.dumps({"total": time.perf_counter() - t0, "kernels": {k: s for k, s in took.items() if k in entries}}))
"""


def env_for(cache: str | None) -> dict:
    """Children's environment: this checkout, bytecode caching on, the kernel cache ``cache``."""
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    return env


def make_captures(folder: Path) -> list[tuple[str, Path]]:
    """The benchmark's captures (made once, kept in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for label, count in CAPTURES:
        path = folder / (f"lo-{count}.pcap" if count else "one-syn.pcap")
        if not path.is_file():
            if count == 0:
                path.write_bytes(tiny_pcap())
            else:
                subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_capture.py"), "-c", str(count),
                                "-o", str(path)], check=True)
        out.append((label, path))
    return out


def cut(src: Path, count: int, folder: Path) -> Path:
    """The first ``count`` packets of ``src`` (tcpdump -c)."""
    path = folder / f"cut-{count}.pcap"
    if not path.is_file():
        subprocess.run(["tcpdump", "-r", str(src), "-c", str(count), "-w", str(path)], check=True,
                       stderr=subprocess.DEVNULL)
    return path


def stop_compiles(cache: str) -> None:
    """Kill the compiles under way in ``cache``: every process whose command line names it
    (the compile and its second process; a compile a command just started may not have
    written its lock yet, and left running it would share the CPUs with what is measured next)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if cache.encode() in cmdline and b"tcpview.engine.warm" in cmdline:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def summary_cmd(path: Path) -> list[str]:
    return [sys.executable, "-m", "tcpview", "summary", str(path), "--json"]


def tshark_cmd(path: Path) -> list[str]:
    return ["tshark", "-q", "-z", "conv,tcp", "-r", str(path)]


def first_runs(captures: list[tuple[str, Path]], large: bool) -> list[dict]:
    """The first-ever summary of each capture, each in a new empty cache."""
    rows = []
    for i, (label, path) in enumerate(captures):
        if i >= SMALL and not large:
            continue
        cache = tempfile.mkdtemp(prefix="tcpview-startup-cold-")
        try:
            r = run_child(summary_cmd(path), env_for(cache))
        finally:
            stop_compiles(cache)
            shutil.rmtree(cache, ignore_errors=True)
        rows.append(dict(r, label=label))
    return rows


def compile_every_kernel() -> dict:
    """``python -m tcpview.engine.warm`` in a new empty cache: wall and its processes' CPU time."""
    cache = tempfile.mkdtemp(prefix="tcpview-startup-compile-")
    try:
        before = os.times()
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "tcpview.engine.warm"], env=env_for(cache), check=False)
        wall = time.perf_counter() - t0
        after = os.times()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall": wall, "cpu": cpu, "rc": p.returncode, "load": load1()}


def line(label: str, *cells: str) -> None:
    print(f"{label:<{W}} " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tcpview summary's start, cold and warm, beside tshark")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tcpview-bench" / "startup",
                    help="where the captures are made and kept")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each warm measure; the best is kept")
    ap.add_argument("--tshark-repeat", type=int, default=1, help="runs of tshark on the large captures")
    ap.add_argument("--quick", action="store_true", help="skip the cold runs of the large captures and the "
                    "per-kernel compile times (each a whole compile)")
    a = ap.parse_args(argv)
    for tool in ("tshark", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"startup_bench: {tool} is not installed", file=sys.stderr)
            return 2
    load_start = load1()
    captures = make_captures(a.dir)
    for _label, path in captures:  # page cache warm
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    warm_cache = tempfile.mkdtemp(prefix="tcpview-startup-warm-")
    try:
        return _run(a, captures, warm_cache, load_start)
    finally:
        shutil.rmtree(warm_cache, ignore_errors=True)


def _run(a: argparse.Namespace, captures: list[tuple[str, Path]], warm_cache: str, load_start: float) -> int:
    warm = dict(env_for(warm_cache), TCPVIEW_RESIDENT="0")  # each command a process of its own
    run_child([sys.executable, "-m", "tcpview", "summary", str(captures[0][1])], warm)  # writes the .pyc files
    stop_compiles(warm_cache)

    print(f"machine  {os.cpu_count()} CPUs; load average {load_start:.2f} at the start")
    for label, path in captures:
        print(f"capture  {label:<14} {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print()

    # -- empty cache
    firsts = first_runs(captures, large=not a.quick)
    comp = compile_every_kernel()
    line("empty cache (a new one each)", f"{'wall s':>8}", f"{'load':>6}")
    for r in firsts:
        line(f"  first-ever summary, {r['label']}", f"{r['wall']:8.2f}", f"{r['load']:6.2f}",
             "" if r["rc"] == 0 else f"exit {r['rc']}: {' / '.join(r['stderr'])}")
    line("  compile of every kernel (warm module)", f"{comp['wall']:8.2f}", f"{comp['load']:6.2f}",
         f"CPU {comp['cpu']:.1f} s in its processes")
    print()

    # -- warm
    subprocess.run([sys.executable, "-m", "tcpview.engine.warm"], env=warm, check=True)
    line("warm cache", f"{'tcpview s':>9}", f"{'tshark s':>9}", f"{'ratio':>6}", f"{'load':>6}")
    warm_rows = []
    for i, (label, path) in enumerate(captures):
        tv = best_of(a.repeat, summary_cmd(path), warm)
        ts = best_of(a.repeat if i < SMALL else a.tshark_repeat, tshark_cmd(path))
        warm_rows.append((label, tv, ts))
        line(f"  summary, {label}", f"{tv['wall']:9.3f}", f"{ts['wall']:9.3f}", f"{tv['wall'] / ts['wall']:6.2f}",
             f"{tv['load']:6.2f}", "" if tv["rc"] == 0 else f"exit {tv['rc']}")
    resident_rows = _resident(captures, a.repeat, warm)
    for (label, tv), (_l, _tv, ts) in zip(resident_rows, warm_rows, strict=True):
        line(f"  served by the resident engine, {label}", f"{tv['wall']:9.3f}", f"{ts['wall']:9.3f}",
             f"{tv['wall'] / ts['wall']:6.2f}", f"{tv['load']:6.2f}", "" if tv["rc"] == 0 else f"exit {tv['rc']}")
    big = captures[-1][1]
    work = _per_packet(big, a.repeat, warm)
    dump = best_of(a.repeat, ["tcpdump", "-r", str(big), "-w", os.devnull])
    line(f"  per-packet work, 1M: load() after ready() ({work['packets']:,} packets)", f"{work['load']:9.3f}",
         f"{'':>9}", f"{work['load'] / dump['wall']:6.2f}", f"{work['wall_load']:6.2f}", "x tcpdump")
    line("  tcpdump -r FILE -w /dev/null, 1M", f"{dump['wall']:9.3f}", f"{'':>9}", f"{'':>6}", f"{dump['load']:6.2f}")
    print()

    # -- plain Python or compiled, by size
    line("plain Python or compiled (summary --json)", f"{'packets':>8}", f"{'python s':>9}", f"{'compiled s':>10}")
    crossover = None
    for n in CUTS:
        path = cut(captures[3][1], n, a.dir)
        py = best_of(a.repeat, [sys.executable, "-c", FORCED, "python", "summary", str(path), "--json"], warm)
        co = best_of(a.repeat, [sys.executable, "-c", FORCED, "compiled", "summary", str(path), "--json"], warm)
        if crossover is None and co["wall"] < py["wall"]:
            crossover = n
        line("", f"{n:8d}", f"{py['wall']:9.3f}", f"{co['wall']:10.3f}", f"load {co['load']:.2f}")
    print(f"{'':<{W}} compiled first pays at {crossover or 'none of these'} packets; "
          f"PYTHON_MAX_PACKETS is {PYTHON_MAX_PACKETS}")
    print()

    # -- loading
    parts = min((py_child(LOADING, warm) for _ in range(max(1, a.repeat))), key=lambda p: p["first"] + p["numba"])
    line("what loading costs (warm cache, best run)", f"{'s':>8}")
    line("  tcpview's imports (no numba)", f"{parts['imports']:8.3f}")
    line("  import numba", f"{parts['numba']:8.3f}")
    line("  numba's set-up and the first kernel", f"{parts['first']:8.3f}")
    line("  one more small kernel", f"{parts['second']:8.3f}")
    for g in ("read", "table", "connection"):
        line(f"  ready() group {g} ({parts['n_' + g]} kernels)", f"{parts[g]:8.3f}")
    print()
    hundred_k = str(captures[3][1])
    print("kernels each command loads (compiled: the 100k capture)")
    for cmd in (["summary"], ["summary", "--json"], ["ladder", "--conn", "0"], ["expert"],
                ["graph", "--conn", "0"], ["export", "--conn", "0"]):
        args = [cmd[0], hundred_k, *cmd[1:]]
        got = _loaded(args, warm)
        names = sorted(k.rsplit(".", 1)[-1] for k in got["loaded"])
        line(f"  {' '.join(cmd)}", f"{len(got['loaded']):2d} of {len(got['entries'])}:", ", ".join(names))
    print()

    # -- merging
    if not a.quick:
        cold = tempfile.mkdtemp(prefix="tcpview-startup-kernels-")
        try:
            times = py_child(COMPILE_TIMES, env_for(cold))
        finally:
            shutil.rmtree(cold, ignore_errors=True)
        print(f"compile time per kernel, the helpers it compiled included (one process, {times['total']:.1f} s "
              f"in all, load {times['load']:.2f})")
        for name, s in sorted(times["kernels"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:<{W - 2}} {s:8.2f}")
        print()

    # -- against the targets
    smalls = warm_rows[:SMALL]
    rows = [(f"first-ever summary, {r['label']} (empty cache)", r["wall"], TARGETS["first"], "s") for r in firsts[:SMALL]]
    rows += [(f"warm summary / tshark, {label}", tv["wall"] / ts["wall"], TARGETS["warm/tshark small"], "x")
             for label, tv, ts in smalls]
    label, tv, ts = warm_rows[-1]
    rows.append(("warm summary / tshark, 1M packets", tv["wall"] / ts["wall"], TARGETS["warm/tshark 1M"], "x"))
    rows += [(f"resident engine / tshark, {label}", tv["wall"] / ts["wall"], TARGETS["warm/tshark small"], "x")
             for (label, tv), (_l, _tv, ts) in zip(resident_rows[:SMALL], smalls, strict=True)]
    tv, ts = resident_rows[-1][1], warm_rows[-1][2]
    rows.append(("resident engine / tshark, 1M packets", tv["wall"] / ts["wall"], TARGETS["warm/tshark 1M"], "x"))
    rows.append(("per-packet work / tcpdump, 1M packets", work["load"] / dump["wall"], TARGETS["load/tcpdump 1M"], "x"))
    rows.append(("compile of every kernel, empty cache (wall)", comp["wall"], TARGETS["compile"], "s"))
    print(f"{'against the targets':<{W + 8}} {'value':>8} {'target':>9}")
    for label, val, target, unit in rows:
        print(f"{label:<{W + 8}} {val:8.3f} {'<= ' + format(target, 'g'):>9} {unit:<2} {mark(val, target)}")
    print(f"load average {load1():.2f} at the end")
    failed = [r for r in firsts if r["rc"] != 0] + [tv for _l, tv, _t in warm_rows if tv["rc"] != 0]
    return 1 if failed or comp["rc"] != 0 else 0


def _resident(captures: list, repeat: int, warm: dict) -> list[tuple[str, dict]]:
    """``summary --json`` of each capture served by a resident engine (tcpview/resident) of
    this run's own, started as a command at a terminal starts it, stopped after."""
    folder = tempfile.mkdtemp(prefix="tcpview-startup-resident-")
    env = dict(warm, TCPVIEW_RESIDENT_DIR=folder)
    try:
        run_child(summary_cmd(captures[0][1]), dict(env, TCPVIEW_RESIDENT="1"))
        deadline = time.monotonic() + 60
        while not any(n.endswith(".sock") for n in os.listdir(folder)) and time.monotonic() < deadline:
            time.sleep(0.05)
        env.pop("TCPVIEW_RESIDENT")
        return [(label, best_of(repeat, summary_cmd(path), env)) for label, path in captures]
    finally:
        for name in os.listdir(folder):
            if name.endswith(".lock"):
                with open(os.path.join(folder, name)) as f:
                    pid = f.read().strip()
                if pid:
                    try:
                        os.kill(int(pid), signal.SIGTERM)
                    except OSError:
                        pass
        time.sleep(0.5)
        shutil.rmtree(folder, ignore_errors=True)


def _per_packet(path: Path, repeat: int, env: dict) -> dict:
    """``load()`` after ``ready()`` in a process of its own: the per-packet work alone."""
    p = subprocess.run([sys.executable, "-c", PER_PACKET, str(path), str(max(1, repeat))], env=env,
                       capture_output=True, text=True, check=True)
    return dict(json.loads(p.stdout.strip().splitlines()[-1]), wall_load=load1())


def _loaded(args: list[str], env: dict) -> dict:
    """The kernels ``tcpview ARGS`` loaded, and every kernel its modules define."""
    p = subprocess.run([sys.executable, "-c", LOADED, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
