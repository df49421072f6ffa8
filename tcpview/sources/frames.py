"""The bytes of one frame, found again by its frame number, for the detail pane.

The store keeps only decoded fields. To show one frame in full the UI needs its bytes back:

- for a capture file, :class:`FrameStore` keeps each TCP frame's offset and length in the
  file (a few bytes per frame) and re-reads the frame when asked;
- for other sources (stdin, live capture, simulator) it keeps the bytes of the most recent
  frames, bounded by a byte budget; older frames can no longer be inspected.

:mod:`tcpview.sources.dissect` turns those bytes into scapy's view of the frame.
"""

from __future__ import annotations

import bisect
from array import array
from collections import OrderedDict

import numpy as np

_LEN_BITS = 24
_LEN_MASK = (1 << _LEN_BITS) - 1


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
        self._recent: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._recent_bytes = 0

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
        recent = self._recent
        recent[frame] = (linktype, data)
        self._recent_bytes += len(data)
        while self._recent_bytes > self.budget and len(recent) > 1:
            _f, (_lt, old) = recent.popitem(last=False)
            self._recent_bytes -= len(old)

    def get(self, frame: int) -> tuple[int, bytes] | None:
        """``(linktype, bytes)`` of ``frame``, or None when it is no longer available."""
        hit = self._recent.get(frame)
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
