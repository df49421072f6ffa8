"""Compiling (first run) or loading (every later run) the engine's kernels before they are needed.

numba compiles a kernel the first time it is called and caches the machine code on disk
(:mod:`tcpview.jit`). Compiling every kernel takes a while once after an install; loading them
takes a fraction of a second. :func:`ready` does either up front, so a live capture does not
stall (and drop packets) on its first batch; :class:`Warmer` lets the viewer start at once
instead, in plain Python, while another process compiles.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from ..jit import CACHE_BASE, CACHE_DIR, JIT_DISABLED, python_mode


def cache_is_warm() -> bool:
    """Whether compiled kernels are cached (then :func:`ready` only loads them)."""
    if JIT_DISABLED:
        return True
    return bool(glob.glob(os.path.join(CACHE_DIR, "**", "loop.track-*.nbi"), recursive=True)) or bool(
        glob.glob(os.path.join(CACHE_DIR, "loop.track-*.nbi")))


def run_every_kernel() -> None:
    """Call every kernel once on tiny inputs (compiling or loading each)."""
    from ..sources.batch import FrameBatch
    from ..sources.pcap import CaptureReader  # noqa: F401  (its scanners)
    from ..sources.scan import scan_pcap, scan_pcapng, scan_tpacket
    from .core.transitions import expire
    from .timeline.tracker import Tracker

    # a SYN (twice), so the state machine, the timers and the readers all run
    syn = bytes.fromhex("000000000000000000000000080045000028000000004006000"
                        "07f0000017f000001d4310050000003e80000000050022000000000000000")
    tr = Tracker(msl2=0.0)
    tr.feed_batch(FrameBatch.of_records([(1, 1.0, 1, syn, 0, len(syn), len(syn)),
                                          (2, 1.2, 1, syn, 0, len(syn), len(syn))]))  # and again: a time span
    tr.advance(2.0)
    tr.make_room(-2)  # the hash table's growth (rebuild_hash)
    w = tr.tl.tables
    expire(w.conns, w.trans, w.timers, w.trans_back, w.trans_ts, w.cnt, w.clk, 2.0)  # no timer was due above
    tl = tr.tl
    tl.counters_at(1.5)
    tl.counter_series(2, 4)
    tl.states_at(1.5)
    tl.conn_stats_at(1.5)
    tl.progress_at(1.5)
    tl.seg_index_before(1.5)
    from .timeline.conn_columns import conn_array_chunks
    from .output.json_rows import RowsWriter

    rows = RowsWriter()
    for part in conn_array_chunks(tl):
        rows.rows(part)
    if len(tl.conns):
        c = tl.conns[0]
        c.records(0, c.n)
        c.trans_times()
        c.numbers()
        c.zeek()
        from .core.passes import one_conn_progress

        v = tl.view()
        one_conn_progress(v.segs, v.trans, v.conns.fl, v.seg_back[: v.n["seg_back"]], v.anom[: v.n["anom"]],
                          c.rows, c.trans_rows, v.start_states(1), v.start_progress(1), np.zeros(2, np.int64))
    from ..sources.batch import frame_array

    out = frame_array(4)
    buf = np.zeros(64, dtype=np.uint8)
    # the capture reader scans the bytes it read, read-only (np.frombuffer): numba compiles that
    # apart, and a live capture through dumpcap reads its stream with that reader
    for chunk in (buf, np.frombuffer(bytes(64), dtype=np.uint8)):
        scan_pcap(chunk, 0, 0, False, 1e-6, 1, 65536, 0, out)
        scan_pcapng(chunk, 0, 0, False, np.zeros(1, np.int32), np.ones(1), np.zeros(1), np.zeros(1, np.int64), 1,
                    65536, 0, out)
    scan_tpacket(buf, 0, 0, 1, 0, out, np.zeros((4, 2), dtype=np.int64))


class Warmer:
    """Gets the kernels ready without making anyone wait (the viewer's first run).

    With a warm cache, :meth:`start` loads the kernels at once. On a first run it starts a
    separate process that compiles them (so this process stays responsive) and puts the
    engine in plain-Python mode meanwhile (:func:`tcpview.jit.python_mode`): it works
    slowly but at once. :meth:`poll` switches to the compiled kernels when they are ready.
    Only the thread that feeds the engine uses it.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self.preparing = False
        """True while the kernels are being compiled in the other process."""

    def start(self) -> None:
        """Load the kernels, or start compiling them in another process."""
        if cache_is_warm() or JIT_DISABLED:
            ready()
            return
        env = dict(os.environ)
        env.setdefault("NUMBA_CACHE_DIR", CACHE_BASE)
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "tcpview.engine.warm"], env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        except OSError:
            ready()  # compile here, then
            return
        self.preparing = True
        python_mode(True)

    def poll(self) -> bool:
        """Whether the compiled kernels are in use (switching to them when they are ready)."""
        if not self.preparing:
            return True
        assert self._proc is not None
        if self._proc.poll() is None:
            return False
        python_mode(False)
        ready()  # loads what the other process compiled (compiles here if it failed)
        self.preparing = False
        return True

    def stop(self) -> None:
        """Stop compiling (the viewer closed first) and leave plain-Python mode."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self.preparing:
            python_mode(False)
            self.preparing = False


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
