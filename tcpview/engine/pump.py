"""The one loop from a source into the tracker: files, streams, live capture and the simulator.

:class:`Pump` reads a source into a tracker in time-boxed batches. Batches end after
``batch_seconds`` of work, when the source goes idle, or at its end, so a viewer hears about
new data at most a few times a second however fast packets arrive. The viewer runs it on its
worker thread (and posts one message per batch), :class:`PumpThread` on a thread of its own
(``tcpview summary -i``), :func:`load` to the end of a file on the caller's thread.

For the viewer, the pump also records what the store does not keep: where each frame's bytes
are (for the detail pane). A pcapng that ``live --kernel -w`` wrote holds the kernel's events
too: the pump adds them to the timeline's :attr:`~tcpview.engine.timeline.timeline.Timeline.kernel`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..sources.base import FileSource
from ..sources.batch import FrameBatch, batches_of
from ..sources.frames import FrameStore
from ..sources.merge import MergedSource
from ..sources.pcap import CaptureError
from .player import TimelineTimes
from .timeline.kernel_log import KernelLog
from .timeline.timeline import Timeline
from .timeline.tracker import Tracker
from .warm import Warmer

STREAM_REST = 0.001
"""How long a command reading a stream on its own thread (``summary -``) rests, in seconds,
after each :data:`STREAM_TURN` of CPU. That thread runs in the idle class, on a CPU that would
be idle without it; where a producer (tcpdump) waits for a CPU behind other busy processes, a
CPU that falls idle pulls it over, and a reader catching up with what the relay held would keep
its CPU busy for hundreds of milliseconds without a rest (tcpdump's buffer holds tens)."""
STREAM_TURN = 0.02
"""The CPU time (seconds) such a reader takes before it rests: a rest after every batch cost a
capture piped in from a file (``cat f | tcpview summary -``) a quarter more time (2.2 s to 2.7 s,
260 MB), these cost it about a twentieth. The viewer's reader rests after each batch anyway
(:class:`Pump`'s ``pause_seconds``)."""


def _ignore(_info: object) -> None:
    pass


@dataclass
class BatchInfo:
    """What one batch did: frames read so far, fraction of the file, end and error."""

    frames: int
    progress: float | None
    done: bool = False
    error: str | None = None
    preparing: bool = False
    """The engine's kernels are still being compiled (a first run): it runs slowly meanwhile."""


class Pump:
    """Feeds a source's frames to a tracker, batch by batch.

    Args:
        source: a :class:`tcpview.sources.base.Source`.
        tracker: the tracker to feed (a new one by default).
        keep_frames: also record where each frame's bytes are (for the detail pane): what the
            viewer needs, and headless use does not.
        batch_seconds: how often, at most, ``on_batch`` is told while data keeps coming.
        pause_seconds: a rest after each batch fed, in which the UI thread runs freely (or a
            producer has the CPU).
        pause_every: rest only once this thread has taken this much CPU (seconds) since its
            last rest (0: after every batch).
        until: stop before the first frame later than this many seconds after the first one
            (None: read to the end).
        warm: choose how the kernels run for this source (:class:`tcpview.engine.warm.Warmer`:
            plain Python for a small input, compiled for a large one or a live capture, and
            on a first run plain Python while another process compiles), on the pump's thread.
        say: told one line when the source waits for the first compile (see ``Warmer``).
        wait_compiled: a large source that ends before the first compile does waits for it,
            then switches: a viewer goes on asking its timeline (a command answers as plain
            Python instead: it asks once).
    """

    def __init__(self, source, tracker: Tracker | None = None, batch_seconds: float = 0.15,
                 pause_seconds: float = 0.005, pause_every: float = 0.0, keep_frames: bool = True,
                 warm: bool = False, until: float | None = None, say: Callable[[str], None] | None = None,
                 wait_compiled: bool = True) -> None:
        self.source = source
        self.until = until
        self._limit: float | None = None  # ``until`` as a time stamp, from the first frame
        self.tracker = tracker if tracker is not None else Tracker()
        self.tl = self.tracker.tl
        if getattr(source, "timeline", False) is None:
            source.timeline = self.tl  # a live source's status() counts the decoder's skips too
        self.times = TimelineTimes(self.tl)
        reader = getattr(source, "reader", None)
        if reader is not None and hasattr(reader, "kernel"):
            reader.kernel = self._kernel_events  # a pcapng's custom blocks of the kernel's events
        path = getattr(source, "path", None)
        self._file = reader is not None and path not in (None, "-")
        store = getattr(source, "frame_store", None)  # several captures: each frame's own file
        self.frames = store() if store is not None else FrameStore(path if self._file else None)
        captures = getattr(source, "captures", None)
        if captures is not None:
            self.tl.captures = captures  # which capture each frame came from, for what is shown
            self.tl.vantages = getattr(source, "vantages", None)  # two vantage points joined
        self.keep_frames = keep_frames
        self.batch_seconds = batch_seconds
        self.pause_seconds = pause_seconds
        self.pause_every = pause_every
        self.frames_read = 0
        self.done = False
        self.error: str | None = None
        self.idle = threading.Event()
        """Set whenever the source has been idle (everything it delivered so far is fed)."""
        self.warmer = _warmer(source, say) if warm else None
        self.wait_compiled = wait_compiled
        """With ``warm``, the pump's thread chooses how the kernels run, so nothing waits."""

    def _kernel_events(self, events: np.ndarray, lost: int) -> None:
        """A block of the kernel's events read from the file: into the timeline's log (made at
        the first), as the live run added it."""
        log = self.tl.kernel
        if log is None:
            log = self.tl.kernel = KernelLog(msl2=self.tracker.msl2)
        log.add(events)
        log.lost = lost

    def run(self, stop: threading.Event, on_batch: Callable[[BatchInfo], None] | None = None) -> None:
        """Read until the source ends or ``stop`` is set, calling ``on_batch`` after each batch
        (at most every ``batch_seconds`` while data keeps coming; the first one at once)."""
        on_batch = on_batch or _ignore
        warmer = self.warmer
        if warmer is not None:
            warmer.start()
            if warmer.preparing:
                on_batch(BatchInfo(0, self._progress(), preparing=True))
        now = getattr(self.source, "now", None)
        batches = getattr(self.source, "batches", None)
        it = iter(batches(stop) if batches is not None else batches_of(self.source.frames(stop)))
        told = 0.0
        pending = False
        rested = time.thread_time()
        try:
            for batch in it:
                if stop.is_set():
                    break
                if batch is None:  # the source is idle: let capture time pass, tell what there is
                    if now is not None:
                        self.tracker.advance(now())
                    self.idle.set()
                    if pending:
                        on_batch(BatchInfo(self.frames_read, self._progress()))
                        pending = False
                    continue
                reached = False
                if self.until is not None:
                    batch, reached = self._before_limit(batch, self.until)
                for piece in self._pieces(batch):
                    self.tracker.feed_batch(piece)
                    self.frames_read += len(piece)
                    if self.keep_frames:
                        self._note(piece)
                    pending = True
                    clock = time.monotonic()
                    preparing = warmer is not None and not warmer.poll(self.frames_read)
                    holding = self.tl.holding()  # far enough past the pin: tell, then wait
                    if clock - told >= self.batch_seconds or preparing or holding:
                        told = clock
                        pending = False
                        on_batch(BatchInfo(self.frames_read, self._progress(), preparing=preparing))
                    while holding and not stop.is_set():
                        stop.wait(0.05)
                        holding = self.tl.holding()
                    if stop.is_set():
                        break
                    if self.pause_seconds and time.thread_time() - rested >= self.pause_every:
                        time.sleep(self.pause_seconds)
                        rested = time.thread_time()
                if reached:
                    break
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        # a large capture may end before the kernels are compiled: a viewer's queries want them
        while warmer is not None and self.wait_compiled and not warmer.poll(self.frames_read) and not stop.is_set():
            stop.wait(0.25)
        if warmer is not None:
            warmer.stop()
        self.done = True
        self.error = self.error or getattr(self.source, "error", None)
        self.tl.publish()
        on_batch(BatchInfo(self.frames_read, self._progress(), done=True, error=self.error))

    def _before_limit(self, batch: FrameBatch, until: float) -> tuple[FrameBatch, bool]:
        """The frames of ``batch`` up to ``until`` seconds after the first frame (capture time
        only goes forward: from the first frame past the limit on, nothing is read), and
        whether the limit was reached."""
        ts = batch.frames.ts
        if not len(ts):
            return batch, False
        if self._limit is None:
            self._limit = float(ts[0]) + float(until)
        past = np.flatnonzero(ts > self._limit)
        if not len(past):
            return batch, False
        return batch.part(slice(0, int(past[0]))), True

    def _pieces(self, batch: FrameBatch):
        """The batch, or while the kernels run in plain Python and may switch, small slices of
        it (so the first rows show at once and the switch to compiled code comes soon), or while
        the timeline is pinned, slices of 2048 (so the reader stops soon past the pin)."""
        if self.tl.pin is not None:
            for i in range(0, len(batch), 2048):
                yield batch.part(slice(i, i + 2048))
            return
        if self.warmer is None or not self.warmer.may_switch():
            yield batch
            return
        step = 256
        for i in range(0, len(batch), step):
            if not self.warmer.may_switch():
                yield batch.part(slice(i, None))
                return
            yield batch.part(slice(i, i + step))

    def _note(self, batch: FrameBatch) -> None:
        """Remember where each frame's bytes are, to show one in full later."""
        f = batch.frames
        if batch.where is not None and batch.capture is not None:
            self.frames.note_file_batch(f.frame, f.linktype, batch.where, f.caplen, batch.capture)
        elif self._file and batch.base is not None:
            self.frames.note_file_batch(f.frame, f.linktype, batch.base + f.off, f.caplen)
        else:
            self.frames.note_bytes_batch(f.frame, f.linktype, f.off, f.caplen, batch.buf)

    def _progress(self) -> float | None:
        try:
            return self.source.progress()
        except Exception:
            return None


def _warmer(source, say: Callable[[str], None] | None) -> Warmer:
    """The chooser for ``source``: by the frames it is expected to hold; one that does not say
    goes on (a live capture, the simulator)."""
    expected = getattr(source, "expected_frames", None)
    if expected is None:
        return Warmer(unbounded=True, say=say)
    return Warmer(expected(), say=say)


class PumpThread:
    """A :class:`Pump` on a background thread of its own (``tcpview summary -i``, tests).

    Only this thread touches the tracker while it runs; read the timeline after :meth:`stop`.

    Args:
        source: any Source (normally a live capture).
        tracker: the tracker to feed.
    """

    def __init__(self, source, tracker: Tracker) -> None:
        self.pump = Pump(source, tracker, keep_frames=False, pause_seconds=0.0, batch_seconds=0.0)
        self.stop_event = threading.Event()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcpview-pump", daemon=True)

    def _run(self) -> None:
        try:
            self.pump.run(self.stop_event)
        finally:
            self._ended.set()

    @property
    def error(self) -> str | None:
        """Why reading stopped early (the source failed), or None."""
        return self.pump.error

    @property
    def records(self) -> int:
        """Frames fed to the tracker so far."""
        return self.pump.frames_read

    def start(self) -> PumpThread:
        """Start reading; returns self."""
        self._thread.start()
        return self

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the source has been idle (everything delivered so far is fed)."""
        self.pump.idle.clear()
        return self.pump.idle.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the source has ended (a capture program that stopped, the end of a
        stream) or ``timeout`` seconds passed; whether it has ended."""
        # an event, not the thread's join: a join a Ctrl-C interrupted leaves the thread
        # looking ended while it runs on (CPython's threading, 3.11)
        return self._ended.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait for the thread; raises RuntimeError if the source failed."""
        self.stop_event.set()
        self._thread.join(timeout)
        if self.pump.error is not None:
            raise RuntimeError(self.pump.error)


@dataclass
class LoadResult:
    """What loading produced: the tracker (and its timeline) and the error that stopped it."""

    tracker: Tracker
    error: str | None
    dropped: int | None = None
    """Packets the capturing program says it lost (a pcapng's statistics blocks), if it says."""

    @property
    def timeline(self) -> Timeline:
        return self.tracker.tl


def load(source: str | list[str], msl2: float = 60.0, fin_timeout: float = 60.0, follow: bool = False,
         budget: int | None = None, until: float | None = None, warm: bool = False,
         say: Callable[[str], None] | None = None, offsets: dict[int, float] | None = None,
         join: bool = True) -> LoadResult:
    """Read ``source`` (a path or ``-``; or several paths: see :func:`load_captures`) to its
    end (or to ``until`` seconds after its first frame), on this thread; ``budget``: the most
    the timeline may use in bytes (the oldest part leaves beyond it); ``warm``, ``say``: see
    :class:`Pump` (what the commands do: a small capture is read as plain Python).

    Damage part-way (a cut-short file, a corrupt record) keeps every packet read before it and
    reports the damage in ``error``; a file that is not a capture at all has no packets (of
    several, any such file is that error, and nothing is read). ``join``: see :func:`join_source`.
    """
    if not isinstance(source, str):
        return load_captures(list(source), offsets or {}, msl2=msl2, fin_timeout=fin_timeout, budget=budget,
                             until=until, warm=warm, say=say, join=join)
    tracker = Tracker(msl2=msl2, fin_timeout=fin_timeout)
    tracker.tl.budget = budget
    try:
        src = FileSource(source, follow=follow)
    except CaptureError as e:
        return LoadResult(tracker, str(e))
    return _read(src, tracker, [source] if source != "-" and not follow else [], until, warm, say)


def _read(src, tracker: Tracker, paths: list[str], until: float | None, warm: bool,
          say: Callable[[str], None] | None) -> LoadResult:
    """Read ``src`` (of the capture files ``paths``, for their size) into ``tracker``."""
    if not paths:  # a stream: its size is not known
        tracker.tl.tables.expect_stream()
    try:  # a record takes 16 bytes of header and 40 of IP and TCP at the least
        tracker.tl.tables.expect_segments(sum(os.path.getsize(p) for p in paths) // 56 + 1)
    except OSError:
        pass
    pump = Pump(src, tracker, keep_frames=False, pause_seconds=0.0 if paths else STREAM_REST,
                pause_every=STREAM_TURN, batch_seconds=float("inf"), until=until, warm=warm, say=say,
                wait_compiled=False)
    pump.run(threading.Event())
    return LoadResult(tracker, pump.error, src.status().get("dropped"))


def join_source(paths: list[str], offsets: dict[int, float], msl2: float = 60.0, fin_timeout: float = 60.0,
                warm: bool = False, say: Callable[[str], None] | None = None, join: bool = True) -> MergedSource:
    """The source that reads several captures as one: merged by time; when some share
    connections with the first (two vantage points), each segment's copies are paired first
    (:func:`tcpview.engine.analysis.vantage.join_captures`), and they are read at the offsets
    found (``offsets``: those the user gave, by index) without the receiving side's copies,
    its ``vantages`` saying each segment's one-way delay. Without ``join``, merged as they are.

    Raises:
        CaptureError: a file cannot be read as a capture.
    """
    given = [offsets.get(i, 0.0) for i in range(len(paths))]
    if not join:
        return MergedSource(paths, given)
    again = _join(paths, offsets, warm)
    return again if again is not None else MergedSource(paths, given)


def _join(paths: list[str], offsets: dict[int, float], warm: bool) -> MergedSource | None:
    """The source that reads the captures joined, when two vantage points share connections
    (else None: they are read merged as they are).

    Raises:
        CaptureError: a file cannot be read as a capture.
    """
    from .analysis.vantage import capture_keys, join_captures

    if warm:
        try:  # (a record takes 56 bytes at the least)
            Warmer(sum(os.path.getsize(p) for p in paths) // 56 + 1).start()
        except OSError:
            Warmer().start()
    # two at a time: the decoding runs compiled without the GIL, so two files take one's time
    # where there are two cores; one file ahead of the one being paired, no more (memory)
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="tcpview-keys") as pool:
        join = join_captures(paths, _ahead(pool, capture_keys, paths), offsets)
    if not join.joined:
        return None
    again = MergedSource(paths, [c.offset for c in join.captures], join.skip)
    again.vantages = join.vantages(again.captures)
    return again


def _ahead(pool: ThreadPoolExecutor, fn: Callable, items: list) -> Iterator:
    """``fn`` of each item, in order, each computed while the one before is used (two at
    first: the first is held throughout by whoever reads these)."""
    ahead: list[Future | None] = [pool.submit(fn, x) for x in items[:2]]
    for i in range(len(items)):
        if i + 2 < len(items):
            ahead.append(pool.submit(fn, items[i + 2]))
        job, ahead[i] = ahead[i], None
        assert job is not None
        yield job.result()


def load_captures(paths: list[str], offsets: dict[int, float], msl2: float = 60.0, fin_timeout: float = 60.0,
                  budget: int | None = None, until: float | None = None, warm: bool = False,
                  say: Callable[[str], None] | None = None, join: bool = True) -> LoadResult:
    """:func:`load` for several captures (see :func:`join_source`): those that share nothing
    are read once."""
    def tracker() -> Tracker:
        t = Tracker(msl2=msl2, fin_timeout=fin_timeout)
        t.tl.budget = budget
        return t

    try:
        again = _join(paths, offsets, warm) if len(paths) > 1 and join else None
        src = again if again is not None else FileSource(paths[0]) if len(paths) == 1 else MergedSource(
            paths, [offsets.get(i, 0.0) for i in range(len(paths))])
    except CaptureError as e:
        return LoadResult(tracker(), str(e))
    return _read(src, tracker(), paths, until, warm, say)
