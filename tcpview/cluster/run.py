"""Driving a cluster run on Dask's distributed scheduler: the stages as futures, a progress bar
per stage on stderr, and what the run measured.

Workers read the files by path: local paths that every worker sees the same way (one host,
or storage every host mounts). A worker that dies mid-run loses what it held; the scheduler
runs those tasks again elsewhere (Dask keeps each result's recipe), so the answer is the
same. A file that cannot be read fails the run with its one-line error.
"""

from __future__ import annotations

import operator
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UserError
from .bucket import BucketAnswer, answer
from .numbering import Span, number_pieces, piece_of, plan, span_of, times_of
from .partition import split_file

INSTALL = 'pip install "tcpview-tui[cluster]"'

BUCKET_BYTES = 256 << 20
"""About this many bytes of archive per bucket (its tracker's tables stay a small part of a
worker's memory), and at least two buckets per worker (so a late one is half as long).
Smaller buckets are cheaper to track for one worker alone (4M packets of a loopback's small
segments, 454 MB: 3.0 s of CPU in 2 buckets, 2.2 s in 6), but not for two workers sharing the
CPUs' cache: there 6 buckets took as long as 4 or longer (medians 4.7 and 4.5 s), and each
bucket is one more piece per file to write and read."""


START_METHOD = "fork" if sys.platform == "linux" else "spawn"
"""How a local cluster's first workers are started. Forked (Linux), each starts with the
modules this process has loaded, the engine's and Dask's, which a spawned one imports again:
4M packets on 2 workers took 3.0-3.8 s instead of 4.1-4.9 s, and one worker's reading and
cutting 1.5-1.6 s of CPU instead of 2.3-2.5 s (``benchmarks/cluster_bench.py``). The
cluster is started while this process runs nothing but Dask's loop. A worker started again
later, after one died, is spawned (Dask's default): by then this process is at work in
other threads too."""


class ClusterError(UserError):
    """A cluster run that cannot start (Dask missing, a scheduler that does not answer)."""


@dataclass
class Run:
    """What a cluster run gives: each bucket's answer and the figures of the run."""

    answers: list[BucketAnswer]
    spans: list[Span]
    buckets: int
    workers: int
    archive_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds from the start to the end of each stage (``read``, ``number``, ``track``)."""
    closing: threading.Thread | None = None
    """The cluster's end, under way (see :meth:`done`)."""

    def done(self) -> None:
        """Wait until the cluster the run started has ended (its processes gone, its files removed)."""
        if self.closing is not None:
            self.closing.join()

    @property
    def bytes_read(self) -> int:
        """Bytes the workers' readers took from the files."""
        return sum(s.bytes_read for s in self.spans)

    @property
    def staged(self) -> int:
        """Bytes of the buckets (headers and frame records) handed from readers to trackers."""
        return sum(s.staged for s in self.spans)

    @property
    def cpu(self) -> dict[str, float]:
        """CPU seconds the workers spent reading and cutting the files, and tracking the buckets."""
        return {"read": sum(s.cpu for s in self.spans), "track": sum(a.cpu for a in self.answers)}

    @property
    def error(self) -> str | None:
        """The first file's damage part-way (as a single read reports it), or None."""
        return next((s.error for s in self.spans if s.error), None)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--jobs and --scheduler run on Dask, which is not installed: {INSTALL}") from None
    return distributed


def connect(jobs: int | None, scheduler: str | None):
    """A Dask client: of a new local cluster of ``jobs`` processes (one thread each), or of
    the scheduler at ``scheduler``. Returns ``(client, cluster or None)``."""
    distributed = _distributed()
    if scheduler is not None:
        try:
            return distributed.Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"no Dask scheduler answers at {scheduler}: {e}") from None
    import logging

    import dask

    with dask.config.set({"distributed.worker.multiprocessing-method": START_METHOD}):
        cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                           dashboard_address="127.0.0.1:0", host="127.0.0.1",
                                           silence_logs=logging.CRITICAL)
    return distributed.Client(cluster), cluster


def dashboard_line(client) -> str:
    """Where Dask's dashboard is (it is served when bokeh is installed)."""
    import importlib.util

    link = client.dashboard_link
    if importlib.util.find_spec("bokeh") is None:
        return f"Dask dashboard: {link} (served where the bokeh package is installed)"
    return f"Dask dashboard: {link}"


class Bars:
    """A progress bar per stage on a text stream: redrawn in place on a terminal, its last
    state on a line of its own otherwise."""

    WIDTH = 30

    def __init__(self, out=None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def draw(self, stage: str, done: int, total: int, unit: str, final: bool = False) -> None:
        """Draw stage ``stage`` at ``done`` of ``total``."""
        if not self.tty and not final:
            return
        fill = self.WIDTH * done // total if total else self.WIDTH  # nothing to do: done
        line = f"tcpview: {stage:<6} [{'#' * fill}{'.' * (self.WIDTH - fill)}] {done}/{total} {unit}"
        self.out.write(("\r" + line + ("\n" if final else "")) if self.tty else line + "\n")
        self.out.flush()

    def watch(self, stage: str, futures: list, unit: str) -> list:
        """Wait for ``futures``, drawing the bar as they finish; their results in order.
        The first that failed raises its error (the others are cancelled)."""
        from distributed import as_completed

        done = 0
        self.draw(stage, 0, len(futures), unit)
        place = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(futures)
        for fut in as_completed(futures):
            if fut.status == "error":
                error = fut.exception()
                for other in futures:
                    other.cancel()
                raise error
            # fetched now, while the others run: a bucket's answer is tens of MB to take in
            results[place[fut.key]] = fut.result()
            done += 1
            self.draw(stage, done, len(futures), unit, final=done == len(futures))
        if not futures:
            self.draw(stage, 0, 0, unit, final=True)
        return results


MAX_PIECES = 1_000_000
"""The most pieces (files x buckets) a run makes: each is a task of the scheduler's, which
handles about a million well."""


def default_buckets(workers: int, archive_bytes: int, files: int = 1) -> int:
    """Buckets for an archive: two per worker, more for a large archive (see :data:`BUCKET_BYTES`),
    but no more than :data:`MAX_PIECES` pieces in all."""
    return max(2 * workers, min(-(-archive_bytes // BUCKET_BYTES), MAX_PIECES // max(files, 1)))


def run(files: list[str], command: str, *, jobs: int | None = None, scheduler: str | None = None,
        msl2: float = 60.0, fin_timeout: float = 60.0, buckets: int | None = None,
        say: Callable[[str], None] | None = None, bars: Bars | None = None, client=None) -> Run:
    """Run ``command`` (see :data:`tcpview.cluster.bucket.COMMANDS`) over capture ``files``
    on a local cluster of ``jobs`` processes, the scheduler at ``scheduler``, or ``client``.

    Raises:
        ClusterError: Dask is not installed, or the scheduler does not answer.
        CaptureError: a file cannot be read (not there, not a capture).
    """
    say = say or (lambda text: print(f"tcpview: {text}", file=sys.stderr, flush=True))
    bars = bars or Bars()
    cluster = None
    if client is None:
        client, cluster = connect(jobs, scheduler)
        own = True
    else:
        own = False
    # a local cluster's workers share this host: its pieces go between them by file, not by socket
    shared = _shared_dir() if cluster is not None else None
    def close() -> None:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)

    try:
        say(dashboard_line(client))
        r = _stages(client, files, command, msl2, fin_timeout, buckets, bars, shared)
    except BaseException:
        close()
        raise
    # the answers are here: the cluster ends (its processes' exit takes a few tenths of a
    # second) while the caller puts them together; Run.done waits for it
    r.closing = threading.Thread(target=close, name="tcpview-cluster-close")
    r.closing.start()
    return r


def _shared_dir() -> str | None:
    """A new directory for a local cluster's pieces (removed after the run), or None where
    none can be made (the pieces then stay in the workers' memory)."""
    try:
        return tempfile.mkdtemp(prefix="tcpview-cluster-")
    except OSError:
        return None


def _size(path: str) -> int:
    try:
        if "://" in path:
            import fsspec

            fs, inner = fsspec.core.url_to_fs(path)
            return int(fs.size(inner))
        return os.path.getsize(path)
    except (OSError, ValueError, ImportError):
        return 0  # the worker that reads it says why


def _stages(client, files: list[str], command: str, msl2: float, fin_timeout: float, buckets: int | None,
            bars: Bars, shared: str | None = None) -> Run:
    start = time.monotonic()
    workers = max(1, len(client.nthreads()))
    archive = sum(_size(f) for f in files)
    nb = buckets or default_buckets(workers, archive, len(files))
    seconds: dict[str, float] = {}
    splits = [client.submit(split_file, path, i, nb, shared, pure=False) for i, path in enumerate(files)]
    spans = bars.watch("read", [client.submit(span_of, s, pure=False) for s in splits], "files")
    seconds["read"] = time.monotonic() - start
    # a file whose time span overlaps no other's keeps its order: its frames' places are its
    # own plus the frames of the files before it (the buckets add that); the others are numbered
    plans = plan(spans)
    times = {g: client.submit(times_of, splits[g], pure=False) for _b, near in plans for g in near}
    numbered: dict[int, object] = {}
    offsets = []
    for s, (before, near) in zip(spans, plans, strict=True):
        if near:
            numbered[s.index] = client.submit(number_pieces, splits[s.index], before, [times[g] for g in near],
                                              pure=False)
        offsets.append(0 if near else before)
    bars.watch("number", list(numbered.values()), "files overlapping others in time")
    seconds["number"] = time.monotonic() - start
    last_tcp = max((s.last_tcp for s in spans if s.last_tcp is not None), default=None)
    answers = []
    for b in range(nb):
        pieces = [client.submit(operator.getitem, numbered[i], b, pure=False) if i in numbered else
                  s.shared[b] if s.shared else client.submit(piece_of, splits[i], b, pure=False)
                  for i, s in enumerate(spans)]
        answers.append(client.submit(answer, pieces, last_tcp, command, msl2, fin_timeout, offsets, pure=False))
    got = bars.watch("track", answers, "buckets")
    seconds["track"] = time.monotonic() - start
    return Run(got, spans, nb, workers, archive, seconds)
