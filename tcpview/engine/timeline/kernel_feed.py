"""Feeding a :class:`~tcpview.engine.timeline.kernel_log.KernelLog` from tcpview's trace
instance, on a thread of its own.

:class:`KernelFeed` opens the instance (:mod:`tcpview.sources.tracefs.instance`) and its
reader, polls the per-CPU buffers about twenty times a second, and adds what arrives to the
log. :meth:`KernelFeed.stop` takes the last events, closes the reader and removes the
instance. A packet capture beside it keeps its own thread: the two meet only in the log
and the timeline, each read by time.
"""

from __future__ import annotations

import threading

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

    def __init__(self, log: KernelLog | None = None, buffer_kb: int = 8192) -> None:
        self.log = log or KernelLog()
        self.inst = TraceInstance.open(buffer_kb=buffer_kb)
        try:
            self.reader = KernelEvents(self.inst)
        except BaseException:
            self.inst.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @property
    def missing(self) -> list[str]:
        """The tracepoints this kernel lacks (``system:event``)."""
        return self.inst.missing

    def start(self) -> KernelFeed:
        """Start recording and the thread that reads."""
        self.inst.start()
        self._thread = threading.Thread(target=self._run, name="tcpview-kernel-events", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(POLL):
                self.log.add(self.reader.poll())
                self.log.lost = self.reader.lost()
        except Exception as e:  # said in the status line; the capture goes on
            self.error = f"kernel events stopped: {e}"

    def poll_now(self) -> None:
        """Read what is there on the caller's thread (when no thread runs)."""
        self.log.add(self.reader.poll())
        self.log.lost = self.reader.lost()

    def status(self) -> dict[str, int]:
        """Events read and lost so far."""
        return {"events": self.log.events, "lost": self.log.lost}

    def stop(self) -> None:
        """Take the last events, then close the reader and remove the instance."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if self.reader.fds:
                self.log.add(self.reader.poll(final=True))
                self.log.lost = self.reader.lost()
        finally:
            self.reader.close()
            self.inst.close()
