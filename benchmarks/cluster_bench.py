"""The cluster run (``summary FILES... --jobs N``) beside the single-process summary, on an archive
of at least 4M packets of real loopback traffic.

The archive: a capture of real HTTP traffic on 127.0.0.1 (``make_capture.py``: nginx and wrk,
1M packets), written ``--copies`` times one after the other in time, each copy's server port
moved by its number (so every copy's connections are new ones), as a ring of files of
``--per-file`` packets. It lives in a temporary directory, never in the project. The
reference is ``tcpview summary --json`` of the ring merged by ``mergecap`` (one process, one
core); then ``--jobs 1`` and ``--jobs 2`` (and more with ``--workers``) over the ring files. For
each: wall-clock seconds (with the local cluster's start), the stages' own seconds, the
speed-up over one worker and over the single process, bytes read per byte of the archive,
bytes handed from the readers to the trackers, and whether the JSON equals the reference.

Usage::

    python benchmarks/cluster_bench.py [--capture FILE] [--copies 4] [--workers 1 2] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcpview.sources.base import FileSource  # noqa: E402

DEFAULT_CAPTURE = Path(tempfile.gettempdir()) / "tcpview-bench" / "loopback.pcap"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def make_base(path: Path, count: int) -> None:
    """A capture of real loopback traffic (``make_capture.py``), made when missing."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_capture.py"), "-o", str(path), "-c", str(count)],
                   check=True)


def read_frames(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every frame of ``path``: the bytes one after the other, where each starts, its time
    stamp and its wire length, and the link type."""
    bufs, offs, ts, orig, lt, size = [], [], [], [], 1, 0
    for b in FileSource(str(path)).batches(threading.Event()):
        if b is None:
            continue
        f = b.frames
        lens = f.caplen.astype(np.int64)
        within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        bufs.append(b.buf[np.repeat(f.off.astype(np.int64), lens) + within])
        offs.append(size + np.cumsum(lens) - lens)
        size += int(lens.sum())
        ts.append(np.array(f.ts))
        orig.append(np.array(f.origlen))
        lt = int(f.linktype[0])
    return np.concatenate(bufs), np.concatenate(offs), np.concatenate(ts), np.concatenate(orig), lt


def write_ring(base: Path, folder: Path, copies: int, per_file: int) -> list[Path]:
    """The archive: ``copies`` copies of ``base``, one after the other, each with its server
    port (the capture's most used port) moved by the copy's number, in files of ``per_file``
    packets (IPv4 on Ethernet, as the loopback capture is)."""
    data, off, ts, orig, lt = read_frames(base)
    n = len(off)
    caplen = np.diff(np.append(off, len(data)))
    ihl = (data[off + 14] & 15).astype(np.int64) * 4
    tcp = off + 14 + ihl
    sport = (data[tcp].astype(np.int64) << 8) | data[tcp + 1]
    dport = (data[tcp + 2].astype(np.int64) << 8) | data[tcp + 3]
    server = int(np.bincount(np.concatenate([sport, dport])).argmax())
    span = float(ts[-1] - ts[0]) + 1.0
    files: list[Path] = []
    for k in range(copies):
        d = data.copy()
        for col, ports in ((tcp, sport), (tcp + 2, dport)):
            hit = ports == server
            d[col[hit]] = (server + k) >> 8
            d[col[hit] + 1] = (server + k) & 0xFF
        t = ts + k * span
        for start in range(0, n, per_file):
            sel = np.arange(start, min(start + per_file, n))
            files.append(folder / f"ring_{len(files):05d}.pcap")
            _write_pcap(files[-1], d, off[sel], caplen[sel], t[sel], orig[sel], lt)
    return files


def _write_pcap(path: Path, data: np.ndarray, off: np.ndarray, caplen: np.ndarray, ts: np.ndarray,
                orig: np.ndarray, lt: int) -> None:
    head = np.zeros(len(off), dtype=[("sec", "<u4"), ("usec", "<u4"), ("incl", "<u4"), ("orig", "<u4")])
    usec = np.round(ts * 1e6).astype(np.int64)
    head["sec"], head["usec"] = usec // 1_000_000, usec % 1_000_000
    head["incl"], head["orig"] = caplen, orig
    rec = 16 + caplen
    out = np.zeros(int(rec.sum()), dtype=np.uint8)
    starts = np.cumsum(rec) - rec
    hb = head.view(np.uint8).reshape(-1, 16)
    out[(starts[:, None] + np.arange(16)).ravel()] = hb.ravel()
    within = np.arange(int(caplen.sum())) - np.repeat(np.cumsum(caplen) - caplen, caplen)
    out[np.repeat(starts + 16, caplen) + within] = data[np.repeat(off, caplen) + within]
    with open(path, "wb") as f:
        f.write(np.array([0xA1B2C3D4], "<u4").tobytes() + np.array([2, 4], "<u2").tobytes()
                + np.array([0, 0, 262144, lt], "<u4").tobytes())
        f.write(out.tobytes())


def _digest(text: str) -> str:
    doc = json.loads(text)
    doc.pop("source")
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def _timed(args: list[str]) -> tuple[float, float, str, str]:
    """Wall-clock and CPU seconds (the command and every process it started) of ``tcpview ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "tcpview", *args], capture_output=True, text=True, env=_env(),
                       cwd=ROOT)
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode:
        raise SystemExit(f"tcpview {' '.join(args[:3])}...: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return took, cpu, p.stdout, p.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE, help="the loopback capture to copy "
                    f"(made with make_capture.py when missing; default {DEFAULT_CAPTURE})")
    ap.add_argument("--count", type=int, default=1_000_000, help="packets of a capture made here (default 1M)")
    ap.add_argument("--copies", type=int, default=4, help="copies of it in the archive (default 4)")
    ap.add_argument("--per-file", type=int, default=250_000, help="packets per ring file (default 250000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local workers to try (default 1 2)")
    ap.add_argument("--keep", action="store_true", help="keep the archive's directory")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of every --jobs in turn (each speed-up is over the same round's 1 worker)")
    a = ap.parse_args(argv)
    make_base(a.capture, a.count)
    folder = Path(tempfile.mkdtemp(prefix="tcpview-cluster-bench-"))
    try:
        t0 = time.monotonic()
        files = write_ring(a.capture, folder, a.copies, a.per_file)
        merged = folder / "merged.pcap"
        subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), *map(str, files)], check=True)
        size = sum(f.stat().st_size for f in files)
        packets = a.copies * len(read_frames(a.capture)[1])
        print(f"archive: {len(files)} files, {packets:,} packets, {size / 1e6:.0f} MB "
              f"(made in {time.monotonic() - t0:.0f} s); cores: {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        single, single_cpu, out, _ = _timed(["summary", "--json", str(merged)])
        ref = _digest(out)
        print(f"single process (summary --json of the merged file): {single:6.1f} s, {single_cpu:.1f} s of CPU: "
              f"{packets / single / 1e6:.2f} M packets/s, {packets / single_cpu / 1e6:.2f} M per CPU second")
        for _round in range(a.repeat):
            one = None
            for n in a.workers:
                took, cpu, out, err = _timed(["summary", "--json", *map(str, files), "--jobs", str(n)])
                one = one or took
                m = re.search(r"in (\d+) buckets \(([^)]*)\): ([\d.]+) bytes read per byte of the archive, ([\d.]+) handed "
                              r"on to the trackers; workers' CPU: read ([\d.]+) s, track ([\d.]+) s", err)
                if not m:
                    raise SystemExit(f"no figures in: {err}")
                buckets, stages, ratio, staged, read_cpu, track_cpu = m.groups()
                same = "equal" if _digest(out) == ref else "DIFFERENT"
                print(f"--jobs {n}: {took:6.1f} s, {cpu:.1f} s of CPU in all: {packets / took / 1e6:.2f} M packets/s "
                      f"({packets / took / n / 1e6:.2f} per worker), x{one / took:.2f} over 1 worker, "
                      f"x{single / took:.2f} over the single process; {buckets} buckets, stages done at {stages}; "
                      f"workers' CPU: reading and cutting {read_cpu} s ({packets / float(read_cpu) / 1e6:.1f} M packets "
                      f"per CPU second), tracking {track_cpu} s ({packets / float(track_cpu) / 1e6:.1f} M); "
                      f"{ratio} bytes read per byte of the archive, {staged} handed on; JSON {same}")
    finally:
        if a.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
