"""The bytes of one frame, found again by its frame number, for the detail pane.

The store keeps only decoded fields. To show one frame in full the UI needs its bytes back:

- for a capture file, :class:`FrameStore` keeps each TCP frame's offset and length in the
  file (a few bytes per frame) and re-reads the frame when asked;
- for other sources (stdin, live capture, simulator) it keeps the bytes of the most recent
  frames, bounded by a byte budget; older frames can no longer be inspected. A batch's frames
  are kept as the batch came, its buffer and where each frame lies in it (no work per frame:
  a stream's frames arrive by the hundred thousand a second).

:mod:`tcpview.sources.dissect` turns those bytes into scapy's view of the frame.
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections import deque

import numpy as np

_LEN_BITS = 24
_LEN_MASK = (1 << _LEN_BITS) - 1
_FRAME_COST = 48  # bytes of a batch's row per frame kept with its bytes
_BATCH_COST = 512  # and of a batch's arrays


class FrameStore:
    """Where to find the bytes of each TCP frame by its frame number.

    Args:
        path: the capture file to re-read frames from; None to keep recent bytes instead.
        budget: bytes of recent frames to keep when there is no file (oldest dropped first).
        paths: several capture files merged into one stream (instead of ``path``): each frame
            is noted with the index of its file and its link type.
    """

    def __init__(self, path: str | None = None, budget: int = 32 << 20, paths: list[str] | None = None) -> None:
        self.path = path
        self.paths = paths
        self._caps = array("H")  # with paths: the file of each noted frame
        self._lts = array("H")  # with paths: its link type (files of different link types interleave)
        self.budget = budget
        self._frames = array("I")
        self._where = array("Q")  # file offset << 24 | captured length
        self._lt_from: list[tuple[int, int]] = []  # (first frame, linktype) when it changes
        # recent batches, oldest first: (first frame, last frame, frames, linktypes, offsets,
        # captured lengths, buffer, bytes counted against the budget)
        self._recent: deque[tuple] = deque()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()  # noted on the pump's thread, asked for on the UI's

    def note_file(self, frame: int, linktype: int, offset: int, caplen: int) -> None:
        """Remember that ``frame`` is ``caplen`` bytes at ``offset`` of the file."""
        if not self._lt_from or self._lt_from[-1][1] != linktype:
            self._lt_from.append((frame, linktype))
        # where before the number: a reader on another thread that finds the number finds where
        self._where.append((offset << _LEN_BITS) | min(caplen, _LEN_MASK))
        self._frames.append(frame)

    def note_file_batch(self, frames, linktypes, offsets, caplens, captures=None) -> None:
        """:meth:`note_file` for arrays of frames (a batch read from the file); with ``paths``,
        ``captures`` says which file each frame is in."""
        if not len(frames):
            return
        if self.paths is not None:
            self._caps.frombytes(np.asarray(captures, dtype=np.uint16).tobytes())
            self._lts.frombytes(np.asarray(linktypes, dtype=np.uint16).tobytes())
            self._note_where(frames, offsets, caplens)
            return
        lts = np.asarray(linktypes)
        change = np.flatnonzero(np.diff(lts)) + 1 if len(lts) > 1 else np.zeros(0, dtype=np.int64)
        for i in [0, *change.tolist()]:
            lt = int(lts[i])
            if not self._lt_from or self._lt_from[-1][1] != lt:
                self._lt_from.append((int(frames[i]), lt))
        self._note_where(frames, offsets, caplens)

    def _note_where(self, frames, offsets, caplens) -> None:
        where = (np.asarray(offsets, dtype=np.uint64) << np.uint64(_LEN_BITS)) | np.minimum(
            np.asarray(caplens, dtype=np.uint64), np.uint64(_LEN_MASK))
        self._where.frombytes(where.astype(np.uint64).tobytes())  # (before the numbers: see note_file)
        self._frames.frombytes(np.asarray(frames, dtype=np.uint32).tobytes())

    def note_bytes(self, frame: int, linktype: int, data: bytes) -> None:
        """Keep the bytes of ``frame`` (dropping the oldest frames over the budget)."""
        self.note_bytes_batch(np.array([frame]), np.array([linktype]), np.zeros(1, np.int64),
                              np.array([len(data)]), np.frombuffer(data, dtype=np.uint8))

    def note_bytes_batch(self, frames, linktypes, offsets, caplens, buf: np.ndarray) -> None:
        """Keep the bytes of ``frames`` (ascending), frame k being ``caplens[k]`` bytes at
        ``offsets[k]`` of ``buf``, which must not change after (a batch's buffer is read-only);
        the oldest frames go past the budget, counted in the frames' bytes and what is kept of
        each (a buffer is held while any frame of it is)."""
        if not len(frames):
            return
        cost = int(np.sum(caplens)) + _FRAME_COST * len(frames) + _BATCH_COST
        with self._recent_lock:
            self._recent.append((int(frames[0]), int(frames[-1]), frames, linktypes, offsets, caplens, buf, cost))
            self._recent_bytes += cost
            while self._recent_bytes > self.budget and len(self._recent) > 1:
                self._recent_bytes -= self._recent.popleft()[-1]

    def _recent_get(self, frame: int) -> tuple[int, bytes] | None:
        with self._recent_lock:
            k = bisect.bisect_right(self._recent, frame, key=lambda b: b[0]) - 1
            if k < 0:
                return None
            first, last, frames, lts, offs, caplens, buf, _cost = self._recent[k]
        if frame > last:
            return None
        i = int(np.searchsorted(frames, frame))
        if i >= len(frames) or frames[i] != frame:
            return None
        off = int(offs[i])
        return int(lts[i]), buf[off:off + int(caplens[i])].tobytes()

    def get(self, frame: int) -> tuple[int, bytes] | None:
        """``(linktype, bytes)`` of ``frame``, or None when it is no longer available."""
        hit = self._recent_get(frame)
        if hit is not None:
            return hit
        if self.path is None and self.paths is None:
            return None
        i = bisect.bisect_left(self._frames, frame)
        if i >= len(self._frames) or self._frames[i] != frame:
            return None
        where = self._where[i]
        offset, length = where >> _LEN_BITS, where & _LEN_MASK
        if self.paths is not None:
            path, linktype = self.paths[self._caps[i]], self._lts[i]
        else:
            assert self.path is not None  # one of the two is (checked above)
            k = bisect.bisect_right(self._lt_from, frame, key=lambda e: e[0]) - 1
            path, linktype = self.path, self._lt_from[max(0, k)][1]
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except OSError:
            return None
        if len(data) != length:
            return None
        return linktype, data
