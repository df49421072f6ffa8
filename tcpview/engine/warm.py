"""Which way the engine's kernels run for an input, and compiling them once, in the background.

A kernel runs compiled (numba: machine code, cached on disk) or as the plain Python it is
written in (:mod:`tcpview.jit`). Compiled is far faster per packet, but a process pays a
fixed cost to get there: importing numba, its set-up, and loading each kernel from the cache
(0.6 s together on 2 cores), and on the first run after an install, compiling them (about 35 s
of CPU). Plain Python costs nothing up front. So a :class:`Warmer` chooses per input:

- an input of at most :data:`PYTHON_MAX_PACKETS` packets runs as plain Python, without
  importing numba: it is answered before the compiled kernels could even be loaded;
- a larger one runs compiled when the cache is warm; on a first run it starts in plain Python
  and switches as soon as the compile is done (a command that is through before answers as
  plain Python; a viewer waits for it at the end: it goes on asking);
- a live capture (it goes on) runs compiled whenever it can.

When the cache is cold, the first command starts the compile in a process of its own that
outlives it (:func:`compile_in_background`): the next command finds it warm. The compile is
locked and published whole (:mod:`tcpview.jitcache`), so two commands at once compile once,
nobody reads half a cache, and a compile killed half-way leaves a cold cache, not a broken one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from .. import jit
from ..jitcache import CACHE_BASE, CACHE_DIR, CompileLock, is_whole, publish, staging_dir

PYTHON_MAX_PACKETS = 2000
"""Inputs up to this many packets run as plain Python: there the two ways cost the same.
Measured (``summary --json`` of the first N packets of a loopback capture, the kernels forced
either way, as ``benchmarks/startup_bench.py`` does; 2 cores, best of three, CPU time, load
9): compiled about 0.45-0.5 s whatever N up to 4,000 (numba's import, the kernels from the
cache); plain Python 0.31 s at 1,000 packets, 0.49 s at 2,000, 0.61 s at 2,500, 0.86 s at
4,000. It was 2,500 while numba's compiler set-up ran before the first kernel loaded (about
0.2 s more; :mod:`tcpview.jitload` skips it), and 1,200 while plain Python read the tables'
rows through ``numpy.record``'s attribute lookup (:mod:`tcpview.pyrows` halved it)."""

VIEW_GROUPS = ("read", "table", "connection")
"""The kernels :func:`ready` loads unless told otherwise: ``read`` (the capture scanners and
the loop: what a live capture must have before its first packet), ``table`` (the counters,
states and Zeek's view at a cursor, the connection table's columns and JSON rows) and
``connection`` (one connection's segments, ladder and numbers)."""

GROUPS = (*VIEW_GROUPS, "kernel", "cluster")
"""Every group, what a compile covers: :data:`VIEW_GROUPS`, ``kernel``, the decoder of the
kernel's trace buffers (``--kernel``; compiled on its first use it would show the first
events 10-15 s late), and ``cluster``, a cluster run's cutting of files into buckets."""


def cache_is_warm() -> bool:
    """Whether the compiled kernels are cached whole (then :func:`ready` only loads them)."""
    return jit.JIT_DISABLED or is_whole()


_SYN = bytes.fromhex("000000000000000000000000080045000028000000004006000"
                     "07f0000017f000001d4310050000003e80000000050022000000000000000")


def _read_kernels():
    """The ``read`` group: the capture scanners and the loop, on a tiny input; returns the
    tracker it fed (the other groups ask its timeline)."""
    from ..sources.batch import FrameBatch, frame_array
    from ..sources.scan import scan_pcap, scan_pcapng, scan_tpacket
    from .core.columns import NEED_HASH
    from .core.transitions import expire
    from .timeline.tracker import Tracker

    # a SYN (twice), so the state machine, the timers and the readers all run
    tr = Tracker(msl2=0.0)
    tr.feed_batch(FrameBatch.of_records([(1, 1.0, 1, _SYN, 0, len(_SYN), len(_SYN)),
                                          (2, 1.2, 1, _SYN, 0, len(_SYN), len(_SYN))]))  # and again: a time span
    tr.advance(2.0)
    tr.make_room(NEED_HASH)  # the hash table's growth (rebuild_hash)
    w = tr.tl.tables
    expire(w.arrays(), 2.0)  # no timer was due above
    out = frame_array(4)
    # the capture reader scans the bytes it read, read-only (np.frombuffer): numba compiles that
    # apart (a read-only array is a type of its own), and a live capture through dumpcap reads
    # its stream with that reader; the packet ring's blocks are copied out as bytes too
    for chunk in _chunks():
        scan_pcap(chunk, 0, 0, False, 1e-6, 1, 65536, 0, out)
        scan_pcapng(chunk, 0, 0, False, np.zeros(1, np.int32), np.ones(1), np.zeros(1), np.zeros(1, np.int64), 1,
                    65536, 0, out)
        scan_tpacket(chunk, 0, 0, 1, 0, out, np.zeros((4, 2), dtype=np.int64))
    return tr


def _chunks() -> tuple[np.ndarray, np.ndarray]:
    """Bytes as the readers hand them on: writable, and read-only."""
    return np.zeros(64, dtype=np.uint8), np.frombuffer(bytes(64), dtype=np.uint8)


def _cluster_kernels() -> None:
    """The ``cluster`` group: a cluster run's cutting of a file into buckets (it reads the
    readers' chunks)."""
    from ..sources.batch import frame_array
    from .core.buckets import bucket_frames, copy_frames
    from .core.decode import OUT_SIZE

    out = frame_array(4)
    buf = np.zeros(64, dtype=np.uint8)
    for chunk in _chunks():
        ints = np.zeros(4, dtype=np.int64)
        bucket_frames(chunk, out, 0, 2, np.zeros(OUT_SIZE, dtype=np.int64), ints, ints)
        copy_frames(chunk, ints, ints, buf, ints)


def _query_kernels(tl, groups: Sequence[str]) -> None:
    """The ``table`` and ``connection`` groups, asked of the tiny timeline ``tl``."""
    if "table" in groups:
        from .output.json_rows import RowsWriter
        from .timeline.conn_columns import conn_array_chunks

        tl.counters_at(1.5)
        tl.counter_series(2, 4)
        tl.states_at(1.5)
        tl.conn_stats_at(1.5)
        tl.progress_at(1.5)
        tl.seg_index_before(1.5)
        from .analysis.diagnosis import diagnose, verdicts_at

        verdicts_at(tl, 1.5)  # the table's verdict column
        diagnose(tl)
        rows = RowsWriter()
        for part in conn_array_chunks(tl):
            rows.rows(part)
        _pairing_kernels()
    if "connection" in groups and len(tl.conns):
        c = tl.conns[0]
        c.records(0, c.n)
        c.trans_times()
        c.numbers()
        c.zeek()
        from .core.passes import one_conn_progress

        v = tl.view()
        one_conn_progress(v.segs, v.trans, v.conns.fl, v.seg_back[: v.n["seg_back"]], v.anom[: v.n["anom"]],
                          c.rows, c.trans_rows, v.start_states(1), v.start_progress(1), np.zeros(2, np.int64))


def _pairing_kernels() -> None:
    """Two vantage points' join (part of the ``table`` group): reading and pairing segments'
    copies (the segments of the SYN that :func:`_read_kernels` read)."""
    from ..sources.batch import frame_array
    from .core.copies import KEY, pair_copies, partitions_for, segment_keys, tables_for
    from .core.decode import OUT_SIZE

    frames = frame_array(1)
    frames[0] = (0, len(_SYN), len(_SYN), 1.0, 1, 1)
    keys = np.zeros(1, dtype=KEY).view(np.recarray)
    segment_keys(np.frombuffer(_SYN, dtype=np.uint8), frames, np.zeros(OUT_SIZE, dtype=np.int64), keys, 0)
    n, parts = 2, partitions_for(2)
    pair_copies(keys, keys, parts, *tables_for(n), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int32),
                np.empty(parts + 1, dtype=np.int64), np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int64),
                np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.bool_))


def _kernel_decoder() -> None:
    """The ``kernel`` group: the trace buffers' decoder, on one empty page."""
    from ..sources.tracefs.decode import decode_pages, kevent_array
    from ..sources.tracefs.formats import layout

    kind_of, lay = layout({})  # the reader's tables, of the types it passes (one compile serves both)
    decode_pages(np.zeros(4096, dtype=np.uint8), 1, 4096, 16, 0, kind_of, lay, 0, kevent_array(1), 0,
                 np.zeros(3, dtype=np.int64))


def run_kernels(groups: Sequence[str] = VIEW_GROUPS) -> None:
    """Call the kernels of ``groups`` once on tiny inputs (compiling or loading each); the
    ``read`` group runs whenever another of :data:`VIEW_GROUPS` is asked (they ask what it
    made)."""
    if "kernel" in groups:
        _kernel_decoder()
    if "cluster" in groups:
        _cluster_kernels()
    if any(g in VIEW_GROUPS for g in groups):
        _query_kernels(_read_kernels().tl, groups)


def run_every_kernel() -> None:
    """Call every kernel once on tiny inputs (compiling or loading each)."""
    run_kernels(GROUPS)


def _child_env() -> dict[str, str]:
    """The environment of a compiling process: this cache, and this copy of tcpview first."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = CACHE_BASE
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = top + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


BACKGROUND_NICE = 10
"""How much lower the background compile's priority is than the command's that started it
(its helper process inherits it): on a busy machine the small capture a user is reading as
plain Python meanwhile gets the CPU first."""


def compile_in_background() -> subprocess.Popen | None:
    """Start compiling every kernel in a process of its own, in a session of its own (so it
    outlives this one, and a Ctrl-C or a closed terminal does not reach it), unless the cache
    is warm or another process compiles it already; returns the process, or None.

    The compile lock is taken here and handed to the process (a lock goes with the open file):
    of two commands that start at once, one starts a compile."""
    lock = CompileLock()
    try:
        if cache_is_warm() or not lock.acquire(wait=False):
            return None
    except OSError:  # no cache can be made here: the kernels run as plain Python
        return None
    try:
        if cache_is_warm():  # published between the look and the lock
            return None
        assert lock.fd is not None
        return subprocess.Popen([sys.executable, "-m", "tcpview.engine.warm", "--lock-fd", str(lock.fd),
                                 "--cache", CACHE_DIR],
                                env=_child_env(), cwd="/", pass_fds=(lock.fd,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return None
    finally:
        lock.release()  # this process's hold; the compiling one keeps its own


def compile_whole(lock_fd: int | None = None, log: bool = False) -> bool:
    """Compile every kernel into a directory of its own and publish it whole, holding the
    compile lock (handed over as ``lock_fd``, or waited for: when another process compiled
    meanwhile, the cache is warm and nothing is left to do). ``log``: what numba says goes to
    ``<cache>.log``. Returns whether the cache is warm now. What ``python -m
    tcpview.engine.warm`` runs."""
    if jit.JIT_DISABLED:
        return True
    lock = CompileLock()
    if lock_fd is not None:
        lock.adopt(lock_fd)
    else:
        lock.acquire(wait=True)
    try:
        if is_whole():
            return True
        if log:
            fd = os.open(lock.path[: -len(".lock")] + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        staging = staging_dir()
        # in two processes where there are two cores: the loop here (the longest), the rest
        # in a helper (what it compiles is cached whole in the same directory)
        part = _start_part(staging) if (os.cpu_count() or 1) > 1 else None
        jit.use_compiled(cache_dir=staging)
        if part is None:
            run_every_kernel()
        else:
            _read_kernels()
            if part.wait() != 0:  # it failed: its share here
                run_every_kernel()
        publish(staging)
        return True
    finally:
        lock.release()


def _start_part(staging: str) -> subprocess.Popen | None:
    """A process that compiles the ``table``, ``connection``, ``kernel`` and ``cluster`` groups into ``staging``."""
    try:
        return subprocess.Popen([sys.executable, "-m", "tcpview.engine.warm", "--part", staging], env=_child_env(),
                                cwd="/", stdin=subprocess.DEVNULL)
    except OSError:
        return None


def _compile_part(staging: str) -> None:
    """A compile's second process: the query kernels, the trace decoder and the cluster's, into ``staging``. The tiny timeline they
    ask is made as plain Python (the first process compiles the loop); it ends when the first
    process does (killed or not), a few seconds later at most."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="tcpview-compile-watch").start()
    jit.use_python()
    tl = _read_kernels().tl
    jit.use_compiled(cache_dir=staging)
    _query_kernels(tl, ("table", "connection"))
    _kernel_decoder()
    _cluster_kernels()  # (here: the loop, compiled in the other process, takes longest)


def ready(say: Callable[[str], None] | None = None, groups: Sequence[str] = VIEW_GROUPS) -> float:
    """Get the compiled kernels of ``groups`` ready now (compiling every kernel first on a
    cold cache, in a process of its own, published whole) and run compiled from now on;
    returns the seconds it took. ``say`` is told once when this is the first run (compiling),
    so the user knows why they wait."""
    start = time.perf_counter()
    if not cache_is_warm():
        if say is not None:
            say("preparing the engine: compiling it once after install (this takes a minute)...")
        subprocess.run([sys.executable, "-m", "tcpview.engine.warm"], env=_child_env(), check=False,
                       stdin=subprocess.DEVNULL)
    jit.use_compiled()  # (had the compile failed, numba compiles here, as each kernel is called)
    run_kernels(groups)
    return time.perf_counter() - start


_chosen_here = False  # a Warmer chose this process's mode (a process that chose itself is left alone)


class Warmer:
    """Chooses how the kernels run for one input, and switches when that changes; only the
    thread that feeds the engine uses it.

    Args:
        expected: about how many packets the input holds; None when unknown (a stream, a
            file still being written: compiled when the cache is warm, else plain Python
            until it passes :data:`PYTHON_MAX_PACKETS`, then waiting for the compile).
        unbounded: the input goes on (a live capture): compiled whenever possible.
        say: told one line when this input waits for the first compile (a large input on a
            first run).

    A process whose program chose a mode itself (:func:`ready`, :func:`tcpview.jit.use_python`)
    keeps it: tests and benchmarks pin one. The first choice in a process is made when the
    Warmer is (before anything runs a kernel); later ones switch in :meth:`start`, on the
    feeding thread.
    """

    def __init__(self, expected: int | None = None, unbounded: bool = False,
                 say: Callable[[str], None] | None = None) -> None:
        global _chosen_here
        self.expected = expected
        self.unbounded = unbounded
        self.say = say
        self.preparing = False
        """True while this input waits, in plain Python, for the compile to finish."""
        self._watching = False
        self._proc: subprocess.Popen | None = None
        self._restarted = False
        self._chooses = not jit.JIT_DISABLED and (jit.mode() is None or _chosen_here)
        self._warm = self._chooses and cache_is_warm()
        # an input of unknown size (a stream) on a warm cache runs compiled from the start: it
        # read its first chunks, tens of thousands of records, as Python before it could switch
        # (measured: 1 s of the 2 s of CPU a 1.3M-packet stream took)
        self._big = unbounded or (expected > PYTHON_MAX_PACKETS if expected is not None else self._warm)
        if self._chooses and jit.mode() is None:
            # the process's first choice, made before anything runs a kernel (a viewer asks
            # its empty timeline at once, on another thread than the one that will feed it)
            _chosen_here = True
            if self._big and self._warm:
                jit.use_compiled()
            else:
                jit.use_python()

    def start(self) -> None:
        """Run the kernels as chosen for this input (and start the compile on a cold cache)."""
        if not self._chooses:
            return
        if not self._warm:
            self._proc = compile_in_background()
        if jit.mode() == "compiled" or (self._big and self._warm):  # compiled once: stays (it is ready)
            if self.unbounded:  # before the first packet: a live capture must not wait for one
                ready(groups=("read",))
            else:  # each kernel is loaded when first called: only what this command needs
                jit.use_compiled()
            return
        jit.use_python()
        self._watching = self.expected is None and not self.unbounded
        if self._big:
            self._wait_for_compile()

    def _wait_for_compile(self) -> None:
        self.preparing = True
        if self.say is not None:
            self.say("preparing the engine: compiling it once after install, in the background; "
                     "plain Python (slower) until it is ready")

    def poll(self, frames: int = 0) -> bool:
        """Whether the compiled kernels are in use or not wanted (False: this input waits for
        them); ``frames``: packets fed so far. Switches to them when they are ready."""
        if not self._chooses or jit.mode() == "compiled":
            self.preparing = False
            return True
        if self._watching and frames > PYTHON_MAX_PACKETS:  # a stream that turned out large
            self._watching = False
            if cache_is_warm():
                jit.use_compiled()
                return True
            self._proc = self._proc or compile_in_background()
            self._wait_for_compile()
        if not self.preparing:
            return True
        # published (whole: a rename) before its lock is let go, so a look at the lock between
        # two looks at the cache tells a compile under way from one that ended without it
        if not cache_is_warm() and CompileLock().held():
            return False
        if cache_is_warm():
            jit.use_compiled()
            self.preparing = False
            return True
        # the compile ended without a cache (killed, failed): once more, else plain Python
        self._proc = None if self._restarted else compile_in_background()
        self._restarted = True
        if self._proc is None:
            self.preparing = False
            return True
        return False

    def may_switch(self) -> bool:
        """Whether the kernels run as plain Python for now and may switch to compiled during
        this input (it waits for the compile, or is a stream that may grow large)."""
        return self.preparing or self._watching

    def stop(self) -> None:
        """The input ended or the reader stopped: stop waiting (the compile goes on, for the
        next command)."""
        self.preparing = False
        if self._proc is not None:
            self._proc.poll()  # reaped if it is done


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tcpview.engine.warm [--lock-fd FD]``: compile every kernel (see
    :func:`compile_whole`); 0 when the cache is warm after it."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tcpview.engine.warm", description=main.__doc__)
    ap.add_argument("--lock-fd", type=int, help="the compile lock, taken by the process that started this one")
    ap.add_argument("--part", metavar="DIR", help="compile the query kernels into DIR (a compile's helper)")
    ap.add_argument("--cache", metavar="DIR", help="the cache the starter wants (its lock is for it)")
    a = ap.parse_args(argv)
    if a.cache is not None and a.cache != CACHE_DIR:
        # the kernels' sources changed since the starter read them (an upgrade under a running
        # viewer): its lock is not this cache's, and what this compiles is not what it runs
        print(f"tcpview: the kernels changed since {a.cache} was asked for; not compiled", file=sys.stderr)
        return 1
    if a.lock_fd is not None:  # started by a command, in the background: that command (a user's) goes first
        os.nice(BACKGROUND_NICE)
    if a.part:
        _compile_part(a.part)
        return 0
    return 0 if compile_whole(a.lock_fd, log=True) else 1


if __name__ == "__main__":
    sys.exit(main())
