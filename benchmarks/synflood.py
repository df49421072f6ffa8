"""Benchmark a SYN flood: N SYNs from distinct spoofed sources to one server port.

It writes a pcap (Ethernet / IPv4 / TCP, one 54-byte SYN per record, 100,000 per second of
capture time; source addresses all different, source ports and ISNs random, checksums
correct) in a temporary directory outside the repository, then measures in the same run:

* ``tcpview summary FILE --json > /dev/null`` and ``tshark -n -q -z conv,tcp -r FILE``: wall
  time and peak RSS of each child (``wait4``), best of ``--repeat``;
* in this process, after ``tcpview.engine.warm.ready()``: ``load()`` alone, and the store:
  bytes per connection, as allocated (``Timeline.nbytes()``) and as used (rows in use x row
  size over every table), table by table;
* the targets: summary at most 0.2 of tshark's time, peak RSS at most 400 MB, at most 300
  bytes per connection in the store; each marked met or missed.

Every figure is printed with the 1-minute load average after it was taken.

Usage::

    python benchmarks/synflood.py [-n 1000000] [--repeat 1] [--seed 1] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

TARGETS = {"summary/tshark": 0.2, "peak RSS MB": 400.0, "B/connection": 300.0}
W = 46  # label column

# one pcap record: its header, then Ethernet, IPv4 and TCP headers (a SYN without options)
RECORD = np.dtype([
    ("sec", "<u4"), ("usec", "<u4"), ("incl", "<u4"), ("orig", "<u4"),
    ("eth", "V12"), ("etype", ">u2"),
    ("vihl", "u1"), ("tos", "u1"), ("tlen", ">u2"), ("id", ">u2"), ("frag", ">u2"), ("ttl", "u1"),
    ("proto", "u1"), ("ipsum", ">u2"), ("src", ">u4"), ("dst", ">u4"),
    ("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("off", "u1"), ("flags", "u1"),
    ("win", ">u2"), ("tcpsum", ">u2"), ("urg", ">u2"),
])
FRAME_LEN = RECORD.itemsize - 16  # 54
SERVER = 0xC0000201  # 192.0.2.1 (TEST-NET-1)
PORT = 80
RATE = 100_000  # SYNs per second of capture time


def _fold(s: np.ndarray) -> np.ndarray:
    """The Internet checksum of 16-bit word sums."""
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def write_synflood(path: Path, n: int, seed: int = 1, t0: int = 1_700_000_000) -> None:
    """Write a pcap of ``n`` SYNs from ``n`` different source addresses to SERVER:PORT."""
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.uint64)
    r = np.zeros(n, dtype=RECORD)
    r["sec"] = t0 + i // RATE
    r["usec"] = (i % RATE) * (1_000_000 // RATE)
    r["incl"] = r["orig"] = FRAME_LEN
    r["eth"] = np.void(bytes.fromhex("020000000002" "020000000001"))
    r["etype"] = 0x0800
    r["vihl"], r["tlen"], r["ttl"], r["proto"] = 0x45, 40, 64, 6
    r["id"] = rng.integers(0, 1 << 16, n)
    # odd multiplier: a bijection of 32-bit numbers, so every source differs and looks random
    r["src"] = (i * np.uint64(2654435761) + np.uint64(seed)) & np.uint64(0xFFFFFFFF)
    r["dst"] = SERVER
    r["sport"] = rng.integers(1024, 65536, n)
    r["dport"] = PORT
    r["seq"] = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    r["off"], r["flags"], r["win"] = 5 << 4, 0x02, 64240
    b = r.view(np.uint8).reshape(n, RECORD.itemsize)
    words = b[:, 16 + 14:].astype(np.uint32)
    words = (words[:, 0::2] << 8) | words[:, 1::2]  # the IP and TCP headers as 16-bit words
    r["ipsum"] = _fold(words[:, :10].sum(axis=1, dtype=np.uint32))
    pseudo = words[:, 6:10].sum(axis=1, dtype=np.uint32) + 6 + 20  # addresses, protocol, TCP length
    r["tcpsum"] = _fold(pseudo + words[:, 10:].sum(axis=1, dtype=np.uint32))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        f.write(r.tobytes())


def in_process(path: str) -> dict:
    """load() after ready() in this process, and the store's sizes."""
    from tcpview.engine.pump import load
    from tcpview.engine.warm import ready

    ready()
    t0 = time.perf_counter()
    res = load(path)
    dt = time.perf_counter() - t0
    tl = res.timeline
    return {"load": dt, "load_load": load1(), "packets": tl.packets, "error": res.error, "store": store_sizes(tl),
            "counters": {k: v for k, v in tl.counters_at().items() if v}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tcpview summary beside tshark on a SYN flood")
    ap.add_argument("-n", "--syns", type=int, default=1_000_000, help="SYNs, each from its own source (1000000)")
    ap.add_argument("--seed", type=int, default=1, help="seed for ports, ISNs and IP ids")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command; the best is kept")
    ap.add_argument("--keep", type=Path, help="write the capture into this directory and keep it")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    a = ap.parse_args(argv)
    if shutil.which("tshark") is None:
        print("synflood: tshark is not installed", file=sys.stderr)
        return 2
    tmp = None
    if a.keep is not None:
        a.keep.mkdir(parents=True, exist_ok=True)
        out = a.keep / f"synflood-{a.syns}.pcap"
    else:
        tmp = tempfile.mkdtemp(prefix="tcpview-synflood-")
        out = Path(tmp) / f"synflood-{a.syns}.pcap"
    try:
        load_start = load1()
        t0 = time.perf_counter()
        write_synflood(out, a.syns, a.seed)
        made = time.perf_counter() - t0
        path = str(out)
        env = child_env()
        py_child(WARM_CODE, env)  # the kernels compiled and cached before anything is timed
        summary = best_of(a.repeat, [sys.executable, "-m", "tcpview", "summary", path, "--json"], env)
        tshark = best_of(a.repeat, ["tshark", "-n", "-q", "-z", "conv,tcp", "-r", path])
        tiny = out.with_name("one-syn.pcap")
        tiny.write_bytes(tiny_pcap())
        fixed = best_of(a.repeat, [sys.executable, "-m", "tcpview", "summary", str(tiny), "--json"], env)
        tiny.unlink()
        ip = in_process(path)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    load_end = load1()
    st = ip["store"]
    for name, r in (("tcpview summary", summary), ("tshark", tshark), ("tcpview summary (1 packet)", fixed)):
        if r["rc"] != 0:
            print(f"synflood: {name} exited {r['rc']}: {' / '.join(r['stderr'])}", file=sys.stderr)

    print(f"capture  {a.syns:,} SYNs from distinct sources to 192.0.2.1:{PORT} "
          f"({a.syns * RECORD.itemsize / 1e6:.1f} MB, written in {made:.1f} s"
          + (f", kept in {out}" if a.keep is not None else ", in a temporary directory") + ")")
    print(f"read     {ip['packets']:,} packets, {st['connections']:,} connections; endpoints {ip['counters']}")
    if ip["error"]:
        print(f"  note: the reader stopped early: {ip['error']}")
    print(f"machine  {os.cpu_count()} CPUs; load average {load_start:.2f} at the start, {load_end:.2f} at the end")
    print()
    print(f"{'':<{W}} {'wall s':>8} {'SYNs/s':>12} {'peak RSS MB':>12} {'load':>6}   runs")
    for label, r in (("tcpview summary FILE --json > /dev/null", summary),
                     ("tshark -n -q -z conv,tcp -r FILE", tshark)):
        runs = " ".join(f"{x:.2f}" for x in r["runs"])
        print(f"{label:<{W}} {r['wall']:8.3f} {a.syns / r['wall']:12,.0f} {r['rss'] / 1e6:12.0f} {r['load']:6.2f}   "
              f"{runs}")
    print(f"{'  fixed cost: summary of a 1-packet capture':<{W}} {fixed['wall']:8.3f} {'':>12} "
          f"{fixed['rss'] / 1e6:12.0f} {fixed['load']:6.2f}")
    print(f"{'  per-packet work: load() after ready()':<{W}} {ip['load']:8.3f} {a.syns / ip['load']:12,.0f} "
          f"{'':>12} {ip['load_load']:6.2f}")
    rest = summary["wall"] - fixed["wall"] - ip["load"]
    print(f"{'  the rest: connection dicts and JSON':<{W}} {rest:8.3f}   (summary - fixed cost - load())")
    print()
    print_store(st, W)
    print()
    print_targets([
        ("summary / tshark (wall)", summary["wall"] / tshark["wall"], TARGETS["summary/tshark"], "x"),
        ("summary peak RSS", summary["rss"] / 1e6, TARGETS["peak RSS MB"], "MB"),
        ("store bytes / connection, allocated", per(st, "allocated", "connections"), TARGETS["B/connection"], "B"),
        ("store bytes / connection, used", per(st, "used", "connections"), TARGETS["B/connection"], "B"),
    ], W)
    if a.json:
        print(json.dumps({"syns": a.syns, "load_average": [load_start, load_end], "summary": summary,
                          "tshark": tshark, "fixed": fixed, "load": ip["load"], "store": st}, indent=1))
    return 1 if summary["rc"] or tshark["rc"] else 0


if __name__ == "__main__":
    sys.exit(main())
