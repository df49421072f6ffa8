"""Reading an instance's per-CPU ring buffers: ``per_cpu/cpuN/trace_pipe_raw``.

:class:`KernelEvents` reads every CPU's buffer a page at a time (non-blocking: a poll takes
what is there, full pages and the part-filled page the kernel is writing) into one numpy
buffer, has :func:`~.decode.decode_pages` turn them into :data:`~.decode.KEVENT` rows, and
hands them out in time order.

Time: the instance's clock is ``mono`` (CLOCK_MONOTONIC, which NTP slews but never steps). A
capture's time stamps are wall-clock (CLOCK_REALTIME) times, so each event's time is its
trace time plus the wall clock's offset from the monotonic one, measured when reading
(:func:`wall_offset_ns`: the closest of a few back-to-back readings of both clocks; a
stepped wall clock moves the offset at the next measurement, as it moves a capture's stamps).

Order: events of different CPUs are merged by time. An event stamped just before a poll may
be committed on a CPU already read, so a poll hands out only the events older than
:data:`HOLD_NS` before it began; the rest wait for the next poll (or :meth:`KernelEvents.poll`
with ``final``).

Lost events: when a buffer is full the kernel overwrites its oldest page and counts the
events lost (``per_cpu/cpuN/stats``: ``overrun``, and ``dropped events`` in the other mode);
:meth:`KernelEvents.lost` is their sum since the instance was made, what a capture calls drops.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from .decode import KEVENT, decode_pages, kevent_array
from .formats import layout, read_formats, read_page_format
from .instance import TraceInstance

HOLD_NS = 2_000_000
"""How long an event waits, after it was stamped, before a poll hands it out (see above)."""

OFFSET_EVERY_NS = 1_000_000_000
"""How often the wall clock's offset is measured again."""


def wall_offset_ns(tries: int = 7) -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: of ``tries`` readings (wall, mono, wall),
    the one whose two wall readings are closest, the mono reading taken as their middle."""
    best_gap, best = None, 0
    for _ in range(tries):
        w0 = time.time_ns()
        m = time.monotonic_ns()
        w1 = time.time_ns()
        if best_gap is None or w1 - w0 < best_gap:
            best_gap, best = w1 - w0, (w0 + w1) // 2 - m
    return best


class KernelEvents:
    """The decoded events of a :class:`~.instance.TraceInstance`, a poll at a time.

    Args:
        inst: the instance (its tracepoints enabled).
        pages: how many pages one read of a CPU's buffer takes at most.

    Attributes:
        stats: [events the pages said were missed, damaged pages or events, events skipped].
        per_cpu: how many events each CPU gave.
    """

    def __init__(self, inst: TraceInstance, pages: int = 256) -> None:
        self.inst = inst
        self.page = read_page_format(inst.root, inst.path)
        self.kind_of, self.layout = layout(read_formats(inst.path, inst.enabled))
        self.cpus = sorted(int(d.name[3:]) for d in (inst.path / "per_cpu").iterdir() if d.name[3:].isdigit())
        self.pages = pages
        self.buf = np.zeros(pages * self.page.size, dtype=np.uint8)
        self.out = kevent_array(pages * self.page.size // 12 + 1)
        self.stats = np.zeros(3, dtype=np.int64)
        self.per_cpu = dict.fromkeys(self.cpus, 0)
        self.fds: dict[int, int] = {}
        for cpu in self.cpus:
            self.fds[cpu] = os.open(inst.path / "per_cpu" / f"cpu{cpu}" / "trace_pipe_raw", os.O_RDONLY | os.O_NONBLOCK)
        self.pending = kevent_array(0)
        self.offset_ns = wall_offset_ns()
        self._offset_at = time.monotonic_ns()
        self.events = 0

    def _read(self, fd: int) -> int:
        """Up to :attr:`pages` pages of one CPU into :attr:`buf`; how many."""
        size = self.page.size
        view = self.buf.data
        n = 0
        while n < self.pages:
            try:
                got = os.readv(fd, [view[n * size:(n + 1) * size]])
            except BlockingIOError:
                break
            if got <= 0:
                break
            if got < size:
                self.buf[n * size + got:(n + 1) * size] = 0
            n += 1
        return n

    def poll(self, final: bool = False) -> np.ndarray:
        """The events that arrived since the last poll, oldest first (a :data:`KEVENT`
        record array); ``final``: all of them, none held back (the last poll)."""
        start = time.monotonic_ns()
        if start - self._offset_at > OFFSET_EVERY_NS:
            self.offset_ns, self._offset_at = wall_offset_ns(), start
        parts = [self.pending] if len(self.pending) else []
        for cpu, fd in self.fds.items():
            while True:
                npages = self._read(fd)
                if npages == 0:
                    break
                n = decode_pages(self.buf, npages, self.page.size, self.page.data_off, cpu, self.kind_of,
                                 self.layout, self.offset_ns, self.out, 0, self.stats)
                if n:
                    parts.append(self.out[:n].copy())
                    self.per_cpu[cpu] += n
                if npages < self.pages:
                    break
        if not parts:
            return kevent_array(0)
        ev = np.concatenate(parts).view(np.recarray) if len(parts) > 1 else parts[0]
        if len(parts) > 1 or len(self.pending) == 0:
            ev = ev[np.argsort(ev["mono"], kind="stable")]
        if final:
            self.pending = kevent_array(0)
        else:
            cut = int(np.searchsorted(ev["mono"], start - HOLD_NS, side="right"))
            ev, self.pending = ev[:cut], ev[cut:]
        self.events += len(ev)
        return ev

    def lost(self) -> int:
        """Events the kernel lost (overwritten or dropped) since the instance was made."""
        total = 0
        for cpu in self.cpus:
            with contextlib.suppress(OSError):
                for line in (self.inst.path / "per_cpu" / f"cpu{cpu}" / "stats").read_text().splitlines():
                    key, _, val = line.partition(":")
                    if key.strip() in ("overrun", "dropped events"):
                        total += int(val.split()[0])
        return total

    def close(self) -> None:
        """Close the buffers' files (the instance can then be removed)."""
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = {}

    def __enter__(self) -> KernelEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["KEVENT", "KernelEvents", "wall_offset_ns"]
