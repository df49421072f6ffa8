"""Frames in batches: one byte buffer and a record array saying where each frame is.

This is what every source hands the engine: a capture file's chunk as read, with the frames'
offsets found by a compiled scanner; the frames of a live capture or of the simulator, copied
into one buffer. The engine's compiled loop then works through a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..records import Records

FRAME = np.dtype([("off", np.int64), ("caplen", np.int32), ("origlen", np.int32), ("ts", np.float64),
                  ("linktype", np.int32), ("frame", np.int64)])
"""Where one frame of a batch is (``off``, ``caplen``), and what the capture says of it."""


def frame_array(n: int) -> Records:
    """An empty record array of n :data:`FRAME` rows."""
    return np.zeros(n, dtype=FRAME).view(Records)


@dataclass
class FrameBatch:
    """Frames to decode: frame k is ``buf[frames[k].off : frames[k].off + frames[k].caplen]``.

    ``base`` is where ``buf`` starts in the capture file, when the frames come from one (so
    a frame can be read again from the file), else None. Frames merged from several captures
    (:class:`tcpview.sources.merge.MergedSource`) say instead which capture each came from
    (``capture``, its index) and where in that file it is (``where``, -1 if not in a file).
    """

    buf: np.ndarray
    frames: Records
    base: int | None = None
    capture: np.ndarray | None = None
    where: np.ndarray | None = None

    def part(self, sl: slice) -> FrameBatch:
        """The frames ``sl`` of this batch (the same buffer)."""
        return FrameBatch(self.buf, self.frames[sl], self.base,
                          None if self.capture is None else self.capture[sl],
                          None if self.where is None else self.where[sl])

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def of_records(cls, records: Iterable) -> FrameBatch:
        """A batch of ``(frame, ts, linktype, buf, off, caplen, origlen)`` records, their bytes
        copied into one buffer (``None`` items are skipped)."""
        parts: list[bytes] = []
        rows: list[tuple] = []
        pos = 0
        for rec in records:
            if rec is None:
                continue
            frame, ts, lt, buf, off, caplen, origlen = rec
            if off == 0 and len(buf) == caplen and buf.__class__ is bytes:
                data = buf
            else:
                data = bytes(buf[off:off + caplen])
            parts.append(data)
            rows.append((pos, len(data), max(origlen, len(data)), ts, lt, frame))
            pos += len(data)
        frames = np.array(rows, dtype=FRAME).view(Records)
        return cls(np.frombuffer(b"".join(parts), dtype=np.uint8), frames)

    def records(self) -> Iterator[tuple]:
        """The frames as ``(frame, ts, linktype, buf, off, caplen, origlen)`` records."""
        buf = self.buf.tobytes()
        for f in self.frames.tolist():
            off, caplen, origlen, ts, lt, frame = f
            yield (frame, ts, lt, buf, off, caplen, origlen)


def batches_of(records: Iterable, size: int = 4096) -> Iterator[FrameBatch | None]:
    """Group a source's records into batches of at most ``size``; a ``None`` record (the source
    is idle) flushes what is pending and is passed on."""
    pending: list = []
    for rec in records:
        if rec is None:
            if pending:
                yield FrameBatch.of_records(pending)
                pending = []
            yield None
            continue
        pending.append(rec)
        if len(pending) >= size:
            yield FrameBatch.of_records(pending)
            pending = []
    if pending:
        yield FrameBatch.of_records(pending)
