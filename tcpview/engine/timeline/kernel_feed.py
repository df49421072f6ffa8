"""Feeding a :class:`~tcpview.engine.timeline.kernel_log.KernelLog` from tcpview's trace
instance, on a thread of its own.

:class:`KernelFeed` opens the instance (:mod:`tcpview.sources.tracefs.instance`) and its
reader, polls the per-CPU buffers about twenty times a second, and adds what arrives to the
log. :meth:`KernelFeed.stop` takes the last events, closes the reader and removes the
instance. A packet capture beside it keeps its own thread: the two meet only in the log
and the timeline, each read by time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

from ... import jit
from ...sources.tracefs.instance import TraceInstance
from ...sources.tracefs.reader import KernelEvents
from .kernel_log import KernelLog

POLL = 0.05
"""Seconds between polls of the buffers."""


class KernelFeed:
    """The trace instance, its reader and the thread that feeds ``log``.

    Args:
        log: where the events go (a new one when None).
        buffer_kb: each CPU's ring buffer size.

    Raises:
        PrivilegeError: not allowed to make a trace instance.
        TraceError: no tracefs, or none of the tracepoints.
    """

    def __init__(self, log: KernelLog | None = None, buffer_kb: int = 16384) -> None:
        self.log = log or KernelLog()
        if jit.mode() is None:
            # the decoder's first call would choose, on the reader's thread: choose here, on
            # the caller's, before any kernel runs (a pump made later may still switch)
            jit.use_compiled()
        self.inst = TraceInstance.open(buffer_kb=buffer_kb)
        try:
            self.reader = KernelEvents(self.inst)
        except BaseException:
            self.inst.close()
            raise
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: str | None = None
        self.tap: Callable[[np.ndarray, int], None] | None = None
        """Also told each batch the log takes, with the events lost so far, on the adding
        thread (``-w``: a pcapng's custom blocks, so a replay adds the same batches)."""
        self.select: Callable[[np.ndarray], np.ndarray] | None = None
        """Set before :meth:`start`: each batch read -> the events to keep (beside a filtered
        capture, those of the sockets it is about: :mod:`tcpview.sources.tracefs.sockselect`),
        called on the adding thread before the log and the tap see it."""

    @property
    def missing(self) -> list[str]:
        """The tracepoints this kernel lacks (``system:event``)."""
        return self.inst.missing

    def start(self) -> KernelFeed:
        """Start recording, the thread that reads the buffers and the one that adds to the log."""
        self.inst.start()
        self._threads = [threading.Thread(target=self._read, name="tcpview-kernel-read", daemon=True),
                         threading.Thread(target=self._add, name="tcpview-kernel-add", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _read(self) -> None:
        # reading is kept apart from adding: a burst the log takes a while to add waits in
        # this process's memory, not in the kernel's buffer, which would overwrite it
        try:
            while not self._stop.is_set():
                ev = self.reader.poll()
                if len(ev):
                    self._queue.put(ev)
                self.log.lost = self.reader.lost()
                if len(ev) < 1024:
                    self._stop.wait(POLL)
        except Exception as e:  # said in the status line; the capture goes on
            self.error = f"kernel events stopped: {e}"
        finally:
            self._queue.put(None)

    def _add(self) -> None:
        try:
            while (ev := self._queue.get()) is not None:
                self._take(ev)
        except Exception as e:
            self.error = f"kernel events stopped: {e}"

    def _take(self, ev: np.ndarray) -> None:
        if self.select is not None:
            ev = self.select(ev)
        self.log.add(ev)
        if self.tap is not None:
            self.tap(ev, self.log.lost)

    def poll_now(self) -> None:
        """Read what is there on the caller's thread (when no thread runs)."""
        ev = self.reader.poll()
        self.log.lost = self.reader.lost()
        self._take(ev)

    def status(self) -> dict[str, int]:
        """Events kept and lost so far, and (with :attr:`select`) those of other sockets left out."""
        out = {"events": self.log.events, "lost": self.log.lost}
        left_out = getattr(self.select, "left_out", None)
        if left_out is not None:
            out["left_out"] = left_out
        return out

    def stop(self) -> None:
        """Take the last events, then close the reader and remove the instance."""
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []
        try:
            if self.reader.fds:
                ev = self.reader.poll(final=True)
                self.log.lost = self.reader.lost()
                self._take(ev)  # even none: a saved file ends with the last count of lost events
        finally:
            self.reader.close()
            self.inst.close()
