"""The one loop from a source into the tracker: files, streams, live capture and the simulator.

:class:`Pump` reads a source into a tracker in time-boxed batches. Batches end after
``batch_seconds`` of work, when the source goes idle, or at its end, so a viewer hears about
new data at most a few times a second however fast packets arrive. The viewer runs it on its
worker thread (and posts one message per batch), :class:`PumpThread` on a thread of its own
(``tcpview summary -i``), :func:`load` to the end of a file on the caller's thread.

For the viewer, the pump also records what the store does not keep: every TCP segment's
capture time (for stepping one segment at a time) and where its frame's bytes are (for the
detail pane).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..sources.base import FileSource
from ..sources.frames import FrameStore
from .player import SegmentTimes
from .store import Timeline
from .tracker import Tracker


def _ignore(_info: object) -> None:
    pass


class _CountingDict(dict):
    """The timeline's ``skipped`` dict, counting its updates so the feed can tell which
    frames the tracker skipped (not TCP, undecodable) without decoding them twice."""

    __slots__ = ("updates",)

    def __init__(self, *a: object) -> None:
        super().__init__(*a)
        self.updates = 0

    def __setitem__(self, key: object, value: object) -> None:
        self.updates += 1
        dict.__setitem__(self, key, value)


@dataclass
class BatchInfo:
    """What one batch did: frames read so far, fraction of the file, end and error."""

    frames: int
    progress: float | None
    done: bool = False
    error: str | None = None


class Pump:
    """Feeds a source's frames to a tracker, batch by batch.

    Args:
        source: a :class:`tcpview.sources.base.Source`.
        tracker: the tracker to feed (a new one by default).
        keep_frames: also record each segment's time (for stepping) and where its frame's
            bytes are (for the detail pane): what the viewer needs, and headless use does not.
        batch_seconds: the longest a batch runs before the UI is told.
        first_batch_seconds: the first batch is shorter, so the screen fills quickly.
        pause_seconds: a rest after each batch, in which the UI thread runs freely.
    """

    def __init__(self, source, tracker: Tracker | None = None, batch_seconds: float = 0.15,  # type: ignore[no-untyped-def]
                 first_batch_seconds: float = 0.05, pause_seconds: float = 0.01, keep_frames: bool = True) -> None:
        self.source = source
        self.tracker = tracker if tracker is not None else Tracker()
        self.tl = self.tracker.tl
        if getattr(source, "timeline", False) is None:
            source.timeline = self.tl  # a live source's status() counts the decoder's skips too
        if not isinstance(self.tl.skipped, _CountingDict):
            self.tl.skipped = _CountingDict(self.tl.skipped)
        self.times = SegmentTimes()
        reader = getattr(source, "reader", None)
        path = getattr(source, "path", None)
        self._reader = reader if reader is not None and path not in (None, "-") and hasattr(reader, "bytes_read") else None
        self.frames = FrameStore(path if self._reader is not None else None)
        self.keep_frames = keep_frames
        self.batch_seconds = batch_seconds
        self.first_batch_seconds = first_batch_seconds
        self.pause_seconds = pause_seconds
        self.frames_read = 0
        self.done = False
        self.error: str | None = None
        self._idle = False
        self.idle = threading.Event()
        """Set whenever the source has been idle (everything it delivered so far is fed)."""
        self._ended = False
        self._frozen = False
        self._released = False
        self._gc_lock = threading.Lock()

    def run(self, stop: threading.Event, on_batch: Callable[[BatchInfo], None] | None = None) -> None:
        """Read until the source ends or ``stop`` is set, calling ``on_batch`` after each batch."""
        on_batch = on_batch or _ignore
        it = iter(self.source.frames(stop))
        budget = self.first_batch_seconds
        # While a file loads, the cyclic GC would scan the growing timeline again and again
        # (a third of the load time on big files); freezing what exists after each batch
        # takes it out of those scans. It stays frozen once loaded: unfrozen, the next full
        # collection scans the whole timeline again, a pause of most of a second with 100k
        # connections at the user's next sort or filter. release() unfreezes when the viewer
        # closes, so nothing stays uncollectable. Not for live sources, which never end.
        freeze = self.keep_frames and not getattr(self.source, "live", False)
        now = getattr(self.source, "now", None)
        try:
            while not stop.is_set() and not self._ended:
                before = self.frames_read
                self._idle = False
                self.tracker.feed_records(self._batch(it, time.monotonic() + budget))
                budget = self.batch_seconds
                if self._idle:
                    self.idle.set()
                    if now is not None:
                        self.tracker.advance(now())
                if self.frames_read != before or self._ended:
                    self.tl.version += 1
                    on_batch(BatchInfo(self.frames_read, self._progress()))
                    if freeze:
                        gc.freeze()
                    # let the UI thread have the GIL for a moment: its event loop gives the
                    # GIL up at every await and would otherwise wait for it each time
                    time.sleep(self.pause_seconds)
                elif self._idle:
                    time.sleep(0.02)  # the source has nothing; don't spin
        except Exception as e:  # noqa: BLE001 - a source failing must not kill the app
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if freeze:
                with self._gc_lock:  # release() may be running on the UI thread
                    if self._released:
                        gc.unfreeze()
                    else:
                        gc.freeze()
                        self._frozen = True
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self.done = True
        self.error = self.error or getattr(self.source, "error", None)
        self.tl.version += 1
        on_batch(BatchInfo(self.frames_read, self._progress(), done=True, error=self.error))

    def release(self) -> None:
        """Give the timeline back to the garbage collector (when the viewer closes; if the
        file is still loading, the reader does it when it stops)."""
        with self._gc_lock:
            self._released = True
            if self._frozen:
                self._frozen = False
                gc.unfreeze()

    def _progress(self) -> float | None:
        try:
            return self.source.progress()
        except Exception:  # noqa: BLE001
            return None

    def _batch(self, it: Iterator, deadline: float) -> Iterator:
        """Yield records to the tracker until the deadline, an idle source or the end."""
        skipped: _CountingDict = self.tl.skipped  # type: ignore[assignment]
        ts_arr = self.times.ts
        ts_append = ts_arr.append
        last_ts = ts_arr[-1] if ts_arr else float("-inf")
        reader = self._reader
        note_file = self.frames.note_file
        note_bytes = self.frames.note_bytes
        clock = time.monotonic
        keep = self.keep_frames
        n = 0
        try:
            for rec in it:
                if rec is None:
                    self._idle = True
                    return
                seen = skipped.updates
                yield rec
                # the tracker has applied rec: a TCP segment unless it was counted as skipped
                n += 1
                if keep and skipped.updates == seen:
                    frame, ts, lt, buf, off, caplen, _orig = rec
                    if ts < last_ts:
                        ts = last_ts  # kept non-decreasing for bisect (see SegmentTimes)
                    ts_append(ts)
                    last_ts = ts
                    if reader is not None:
                        note_file(frame, lt, reader.bytes_read - len(buf) + off, caplen)
                    elif off == 0 and len(buf) == caplen and buf.__class__ is bytes:
                        note_bytes(frame, lt, buf)
                    else:
                        note_bytes(frame, lt, bytes(buf[off:off + caplen]))
                if not n & 255 and clock() > deadline:
                    return
            self._ended = True
        finally:
            self.frames_read += n


class PumpThread:
    """A :class:`Pump` on a background thread of its own (``tcpview summary -i``, tests).

    Only this thread touches the tracker while it runs; read the timeline after :meth:`stop`.

    Args:
        source: any Source (normally a live capture).
        tracker: the tracker to feed.
    """

    def __init__(self, source, tracker: Tracker) -> None:  # type: ignore[no-untyped-def]
        self.pump = Pump(source, tracker, keep_frames=False, pause_seconds=0.0)
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self.pump.run, args=(self.stop_event,), name="tcpview-pump",
                                        daemon=True)

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

    @property
    def timeline(self) -> Timeline:
        return self.tracker.tl


def load(source: str, msl2: float = 60.0, fin_timeout: float = 60.0, follow: bool = False) -> LoadResult:
    """Read ``source`` (a path or ``-``) to its end, on this thread.

    Damage part-way (a cut-short file, a corrupt record) keeps every packet read before it and
    reports the damage in ``error``; a file that is not a capture at all has no packets.
    """
    from ..sources.pcap import CaptureError

    tracker = Tracker(msl2=msl2, fin_timeout=fin_timeout)
    try:
        src = FileSource(source, follow=follow)
    except CaptureError as e:
        return LoadResult(tracker, str(e))
    pump = Pump(src, tracker, keep_frames=False, pause_seconds=0.0)
    pump.run(threading.Event())
    return LoadResult(tracker, pump.error)
