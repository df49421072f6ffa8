"""What the reading benchmarks share: timing a child process (wall, peak RSS), the load average
beside each figure, and the size of a timeline's store table by table."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load1() -> float:
    """The 1-minute load average now."""
    return os.getloadavg()[0]


def child_env() -> dict[str, str]:
    """The environment for children that import tcpview from this checkout."""
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_child(cmd: list[str], env: dict | None = None, stdout: str = os.devnull) -> dict:
    """Run ``cmd`` with stdout to ``stdout``: its wall time, peak RSS, exit status, the end of
    its stderr and the load average after it.

    The peak RSS is GNU time's ``%M``: a child spawned straight from this process would report
    at least this process's own peak (Linux keeps the high-water mark of the memory an exec
    replaces, and Python spawns with vfork), however small the child. Without GNU time it is
    the child's ``wait4`` figure, an upper bound."""
    with tempfile.TemporaryDirectory(prefix="tcpview-bench-") as tmp, open(stdout, "wb") as out, \
            open(os.path.join(tmp, "stderr"), "w+b") as err:
        rss_file = os.path.join(tmp, "rss")
        full = [GNU_TIME, "-f", "%M", "-o", rss_file, *cmd] if GNU_TIME else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=out, stderr=err, env=env)
        _pid, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
        try:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1]) * 1024
        except (OSError, ValueError, IndexError):
            rss = usage.ru_maxrss * 1024
    return {"wall": wall, "rss": rss, "rc": p.returncode, "stderr": tail, "load": load1()}


def best_of(n: int, cmd: list[str], env: dict | None = None) -> dict:
    """The fastest of n runs of ``cmd`` (with the largest peak RSS seen in any run)."""
    runs = [run_child(cmd, env) for _ in range(max(1, n))]
    best = min(runs, key=lambda r: r["wall"])
    return dict(best, rss=max(r["rss"] for r in runs), runs=[r["wall"] for r in runs],
                rc=max(runs, key=lambda r: abs(r["rc"]))["rc"])


def py_child(code: str, env: dict) -> dict:
    """Run Python ``code`` in a fresh interpreter: the JSON object it prints last, with its wall
    time and the load average after it."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"a child failed: {' / '.join(p.stderr.strip().splitlines()[-2:])}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]), wall=wall, load=load1())


# compile the kernels (the first run after an install) or load them; says which
WARM_CODE = """
import json
from tcpview.engine.warm import cache_is_warm, ready
warm = cache_is_warm()
print(json.dumps({"was_warm": warm, "ready": ready()}))
"""


def tiny_pcap() -> bytes:
    """A pcap of one SYN on Ethernet: what the summary costs when there is nothing to read."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    tcp = struct.pack("!HHIIBBHHH", 54321, 80, 1000, 0, 5 << 4, 0x02, 8192, 0, 0)
    frame = b"\0" * 12 + b"\x08\x00" + ip + tcp
    return (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)


def store_sizes(tl) -> dict:  # type: ignore[no-untyped-def]
    """The store of timeline ``tl``: per table ``(name, rows in use, bytes per row, bytes used,
    bytes allocated)`` and the totals (``allocated`` is ``tl.nbytes()``, the hash included)."""
    import numpy as np

    from tcpview.engine.core import columns as col

    v = tl.view()
    w = tl.tables
    tables = []
    for name, (dt, _counter, _cap) in col.Tables.LAYOUT.items():
        row = dt.itemsize if isinstance(dt, np.dtype) else np.dtype(dt[0]).itemsize * dt[1]
        rows = v.n[name]
        tables.append((name, rows, row, rows * row, getattr(w, name).nbytes))
    tables.append(("hash", None, w.hash.itemsize, None, w.hash.nbytes))
    used = sum(t[3] for t in tables if t[3] is not None)
    return {"tables": tables, "used": used, "allocated": tl.nbytes(), "segments": v.n_seg,
            "connections": v.n_conn}


def print_store(st: dict, width: int) -> None:
    """The store table by table, then bytes per segment and per connection."""
    print(f"{'store':<{width}} {'rows':>12} {'B/row':>6} {'used MB':>9} {'alloc MB':>9}")
    for name, rows, rb, used, alloc in st["tables"]:
        if not rows and name != "hash":
            continue
        rs = f"{rows:12,}" if rows is not None else f"{'':>12}"
        us = f"{used / 1e6:9.2f}" if used is not None else f"{'':>9}"
        print(f"{'  ' + name:<{width}} {rs} {rb:6d} {us} {alloc / 1e6:9.2f}")
    for what in ("used", "allocated"):
        label = "  whole store, used" if what == "used" else "  whole store, allocated (tl.nbytes())"
        mb = f"{st[what] / 1e6:9.2f}"
        cols = f"{mb} {'':>9}" if what == "used" else f"{'':>9} {mb}"
        print(f"{label:<{width}} {'':>12} {'':>6} {cols}   {per(st, what, 'segments'):.1f} B/segment, "
              f"{per(st, what, 'connections'):.0f} B/connection")


def per(st: dict, what: str, unit: str) -> float:
    """Bytes of the store (``used`` or ``allocated``) per segment or per connection."""
    return st[what] / st[unit] if st[unit] else 0.0


def mark(value: float, target: float) -> str:
    """``met`` when value <= target, else ``MISSED``."""
    return "met" if value <= target else "MISSED"


def print_targets(rows: list[tuple[str, float, float, str]], width: int) -> None:
    """``(label, value, target, unit)`` rows, each marked met or missed."""
    print(f"{'against the targets':<{width}} {'value':>10} {'target':>10}")
    for label, val, target, unit in rows:
        print(f"{label:<{width}} {val:10.3f} {'<= ' + format(target, 'g'):>10} {unit:<3} {mark(val, target)}")
