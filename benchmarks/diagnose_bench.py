"""Benchmark ``tcpview diagnose`` beside ``tcpview summary`` on one capture.

* ``tcpview summary FILE --json > /dev/null`` end to end (the peer: the summary itself);
* in one process, after the capture is read (compiled kernels): the pass that splits every
  connection's time and gives its verdict (``verdicts_at``, what the table and ``tcpview
  expert`` use), the breakdown with every connection's episodes (``diagnose``), and the
  evidence's words for every connection (``Diagnoses.of``, what ``--json`` prints);
* ``tcpview diagnose FILE --json > /dev/null`` end to end.

Target: diagnosing every connection (the pass and the breakdown) costs at most half the
summary. Usage::

    python benchmarks/make_capture.py -c 1000000     # once: 1M packets of nginx+wrk on lo
    python benchmarks/diagnose_bench.py [--capture FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.make_capture import DEFAULT_OUT
from benchmarks.measure import best_of, child_env, load1

TARGET = 0.5

IN_PROCESS = r'''
import json, sys, time
from tcpview import jit
jit.use_compiled()
from tcpview.engine.pump import load
from tcpview.engine.analysis.diagnosis import diagnose, verdicts_at
path, repeat = sys.argv[1], int(sys.argv[2])
tl = load(path, warm=False).timeline
verdicts_at(tl)  # the kernel loaded from its cache once, as in any run after the first
best = {"pass": 1e9, "breakdown": 1e9, "evidence": 1e9}
for _ in range(repeat):
    tl.remember("limits", None)
    tl.remember("diagnoses", None)
    t0 = time.perf_counter()
    verdicts_at(tl)
    t1 = time.perf_counter()
    d = diagnose(tl)
    t2 = time.perf_counter()
    for row in range(len(d)):
        d.of(row).as_dict()
    t3 = time.perf_counter()
    best = {"pass": min(best["pass"], t1 - t0), "breakdown": min(best["breakdown"], t2 - t0),
            "evidence": min(best["evidence"], t3 - t2)}
v = tl.view()
print(json.dumps(dict(best, packets=tl.packets, segments=v.n_seg, connections=v.n_conn, verdicts=d.counts())))
'''


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit status 1 when the target is missed."""
    ap = argparse.ArgumentParser(description="tcpview diagnose beside tcpview summary on one capture")
    ap.add_argument("--capture", default=str(DEFAULT_OUT), help=f"capture to read (default {DEFAULT_OUT})")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, the best kept")
    a = ap.parse_args(argv)
    if not os.path.exists(a.capture):
        print(f"diagnose_bench: {a.capture}: no such capture (run benchmarks/make_capture.py first)",
              file=sys.stderr)
        return 2
    env = child_env()
    summary = best_of(a.repeat, [sys.executable, "-m", "tcpview", "summary", a.capture, "--json"], env)
    command = best_of(a.repeat, [sys.executable, "-m", "tcpview", "diagnose", a.capture, "--json"], env)
    inner = json.loads(subprocess.run([sys.executable, "-c", IN_PROCESS, a.capture, str(a.repeat)], env=env,
                                      check=True, capture_output=True, text=True).stdout)
    s = summary["wall"]
    print(f"capture: {a.capture}: {inner['packets']:,} packets, {inner['segments']:,} TCP segments, "
          f"{inner['connections']:,} connections (load average {load1():.1f}, best of {a.repeat})")
    print(f"verdicts: {', '.join(f'{k} {n}' for k, n in inner['verdicts'].items() if n)}")
    print(f"  tcpview summary FILE --json > /dev/null      {s:8.3f} s   (the peer)")
    for label, key in (("the pass and verdicts (verdicts_at)", "pass"),
                       ("the breakdown with episodes (diagnose)", "breakdown"),
                       ("every connection's evidence in words", "evidence")):
        print(f"  {label:44} {inner[key]:8.3f} s   {inner[key] / s:5.2f}x the summary")
    print(f"  tcpview diagnose FILE --json > /dev/null     {command['wall']:8.3f} s   "
          f"{command['wall'] / s:5.2f}x the summary (reading included)")
    ok = inner["breakdown"] <= TARGET * s
    print(f"diagnosing every connection: {inner['breakdown'] / s:.2f}x the summary "
          f"(target <= {TARGET}x: {'met' if ok else 'missed'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
