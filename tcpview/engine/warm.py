"""Compiling (first run) or loading (every later run) the engine's kernels before they are needed.

numba compiles a kernel the first time it is called and caches the machine code on disk
(:mod:`tcpview.jit`). Compiling every kernel takes a while once after an install; loading them
takes a fraction of a second. :func:`ready` does either up front, so a live capture does not
stall (and drop packets) on its first batch.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable

import numpy as np

from ..jit import CACHE_DIR, JIT_DISABLED


def cache_is_warm() -> bool:
    """Whether compiled kernels are cached (then :func:`ready` only loads them)."""
    if JIT_DISABLED:
        return True
    return bool(glob.glob(os.path.join(CACHE_DIR, "**", "track.track-*.nbi"), recursive=True)) or bool(
        glob.glob(os.path.join(CACHE_DIR, "track.track-*.nbi")))


def run_every_kernel() -> None:
    """Call every kernel once on tiny inputs (compiling or loading each)."""
    from ..sources.batch import FrameBatch
    from ..sources.pcap import CaptureReader  # noqa: F401  (its scanners)
    from ..sources.scan import scan_pcap, scan_pcapng
    from .tracker import Tracker

    # a SYN, so the state machine, the timers and the readers all run
    syn = bytes.fromhex("000000000000000000000000080045000028000000004006000"
                        "07f0000017f000001d4310050000003e80000000050022000000000000000")
    tr = Tracker(msl2=0.0)
    tr.feed_batch(FrameBatch.of_records([(1, 1.0, 1, syn, 0, len(syn), len(syn))]))
    tr.advance(2.0)
    tl = tr.tl
    tl.counters_at(1.5)
    tl.counter_series(2, 4)
    tl.states_at(1.5)
    tl.conn_stats_at(1.5)
    tl.seg_index_before(1.5)
    if len(tl.conns):
        c = tl.conns[0]
        c.records(0, c.n)
        c.trans_times()
    from ..sources.batch import frame_array

    out = frame_array(4)
    buf = np.zeros(64, dtype=np.uint8)
    scan_pcap(buf, 0, 0, False, 1e-6, 1, 65536, 0, out)
    scan_pcapng(buf, 0, 0, False, np.zeros(1, np.int32), np.ones(1), np.zeros(1), np.zeros(1, np.int64), 1, 65536, 0,
                out)


def ready(say: Callable[[str], None] | None = None) -> float:
    """Compile or load every kernel now; returns the seconds it took. ``say`` is told once
    when this is the first run (compiling), so the user knows why they wait."""
    start = time.perf_counter()
    if say is not None and not cache_is_warm():
        say("preparing the engine: compiling it once after install (this takes a minute)...")
    run_every_kernel()
    return time.perf_counter() - start


if __name__ == "__main__":
    ready()
