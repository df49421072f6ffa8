"""Several captures read as one, merged by time as ``mergecap`` merges them.

:class:`MergedSource` reads each capture's batches (:meth:`FileSource.batches`) and merges
them with a heap-like step over the batches at hand: every frame no later than the earliest
"last time stamp" among the captures' current batches can go out, in time order; equal time
stamps keep the order of the files as given, and each file's own order is kept (a capture
whose clock steps back is merged by the latest time it has shown). Only the captures'
current batches are held, so memory does not grow with the number of files or their size.

Frames are numbered again, 1, 2, ... in merged order (as in ``mergecap``'s output); each keeps
its capture: :class:`CaptureMap` says which (one byte a frame), and a batch carries each
frame's capture and place in its file, so the frame store can read the bytes back.
``offsets`` add seconds to a capture's time stamps (another clock, put on the first file's).
"""

from __future__ import annotations

import glob
import os
import threading
from array import array
from collections.abc import Generator, Iterator, Sequence

import numpy as np

from ..records import Records
from .base import FileSource, Record
from .batch import FrameBatch
from .frames import FrameStore

COPY_RUN = 256
"""Runs of one capture at least this long on average go out as slices of its own batch (no
copy); shorter ones (two vantages of the same traffic interleave frame by frame) are copied
into one buffer, so the tracker still gets few, large batches."""


class CaptureMap:
    """Which capture each frame of a merged stream came from.

    Args:
        files: the captures, as given (the first is index 0).
        offsets: the seconds added to each capture's time stamps in the merge (its frames'
            numbers depend on them: a reader of the frames again merges with the same).
        streams: the captures are live streams (see :attr:`streams`).
    """

    def __init__(self, files: Sequence[str], offsets: Sequence[float], streams: bool = False) -> None:
        self.files = list(files)
        self.offsets = list(offsets)
        self.streams = streams
        """The captures are live streams (remote hosts' captures, named by ``files``), not
        files: their frames cannot be read again from them."""
        self.skip: list[np.ndarray] | None = None
        """Frames left out of the merge (each capture's own numbers), as :class:`MergedSource` was told."""
        self._of = array("B" if len(files) <= 256 else "H")  # the capture of frame k at k - 1
        self._orig = array("I")  # and its number in that capture

    def add(self, captures: np.ndarray, originals: np.ndarray) -> None:
        """Note the captures of the next frames and their numbers there, in order (the writer's thread)."""
        self._of.frombytes(np.asarray(captures, dtype=self._of.typecode).tobytes())
        self._orig.frombytes(np.asarray(originals, dtype=np.uint32).tobytes())

    def __len__(self) -> int:
        return len(self._of)

    def originals(self, frames: np.ndarray) -> np.ndarray:
        """Each frame's number in its own capture (0 where unknown)."""
        orig = np.frombuffer(self._orig, dtype=np.uint32) if len(self._orig) else np.zeros(0, dtype=np.uint32)
        f = np.asarray(frames, dtype=np.int64)
        ok = (f > 0) & (f <= len(orig))
        out = np.zeros(len(f), dtype=np.int64)
        out[ok] = orig[f[ok] - 1]
        return out

    def index(self, frame: int) -> int | None:
        """The index of the capture that frame ``frame`` (1-based, merged) came from."""
        if 0 < frame <= len(self._of):
            return self._of[frame - 1]
        return None

    def name(self, frame: int) -> str | None:
        """The file name (as given) of the capture of frame ``frame``; None if unknown."""
        i = self.index(frame)
        return None if i is None else self.files[i]

    def indices(self, frames: np.ndarray) -> np.ndarray:
        """:meth:`index` of many frames at once (-1 where unknown)."""
        of = np.frombuffer(self._of, dtype=self._of.typecode) if len(self._of) else np.zeros(0, dtype=np.uint8)
        f = np.asarray(frames, dtype=np.int64)
        ok = (f > 0) & (f <= len(of))
        out = np.full(len(f), -1, dtype=np.int64)
        out[ok] = of[f[ok] - 1]
        return out


def expand(specs: Sequence[str]) -> list[str]:
    """The capture files that ``specs`` name: a pattern that is not itself a file (the shell did
    not expand it: quoted, or on a system without globbing) becomes its matches in sorted order
    (a ring's files, oldest first, as dumpcap names them); one that matches nothing is kept, so
    opening it says what is wrong."""
    out: list[str] = []
    for spec in specs:
        if spec != "-" and glob.has_magic(spec) and not os.path.exists(spec):
            out.extend(sorted(glob.glob(spec)) or [spec])
        else:
            out.append(spec)
    return out


class MergedSource:
    """Several capture files (or other sources) as one source, merged by time (see the
    module's docstring).

    Args:
        paths: the capture files (at least one), each checked first (see
            :func:`tcpview.sources.base.open_source`: its first chunk is read); with
            ``sources``, the names the captures go by (``"capture"`` in JSON).
        offsets: seconds added to each capture's time stamps (default 0 for all).
        skip: for each capture, the frames (its own numbers, sorted) to leave out: the
            copies a second vantage point saw of segments the first already has.
        sources: instead of opening ``paths``, these sources (anything with
            ``batches(stop)``, as :class:`FileSource`), all read from the start. The merge
            waits for each one's next batch (skipping its idle ``None``): right for files and
            streams that end; a live merge wants a bound on how long an idle one holds the rest.

    Raises:
        CaptureError: a file cannot be read as a capture.
    """

    live = False

    def __init__(self, paths: Sequence[str], offsets: Sequence[float] | None = None,
                 skip: Sequence[np.ndarray] | None = None, sources: Sequence | None = None) -> None:
        self.paths = list(paths)
        self.offsets = [float(o) for o in offsets] if offsets is not None else [0.0] * len(self.paths)
        if sources is not None:
            self.sources = list(sources)
            self._first: list[float | None] = [float("-inf")] * len(self.sources)
        else:
            self.sources = [FileSource(p) for p in self.paths]
            # each file's first time stamp (reading its first chunk, which also checks it is a
            # capture): a file is opened for good only once the merge reaches it, so a ring's
            # files are read one or two at a time
            self._first = [self._first_key(i) for i in range(len(self.paths))]
        self.captures = CaptureMap(self.paths, self.offsets)
        self.skip = list(skip) if skip is not None else None
        self.captures.skip = self.skip
        names = os.path.basename(self.paths[0]) + (f" +{len(self.paths) - 1}" if len(self.paths) > 1 else "")
        self.name = "replay " + names
        self.error: str | None = None
        self._read = 0
        self.vantages: object | None = None
        """Set by whoever joined two vantage points of these captures: the pump hands it to the
        timeline (``Timeline.vantages``)."""

    def _first_key(self, i: int) -> float | None:
        """Capture i's first time stamp with its offset (None: it holds no frames).

        Raises:
            CaptureError: it is not a capture.
        """
        with FileSource(self.paths[i]).reader as reader:
            for b in reader.batches():
                if b is not None and len(b):
                    return float(b.frames.ts[0]) + self.offsets[i]
        return None

    def frame_store(self) -> FrameStore:
        """The store the pump keeps frames' places in: each frame's capture file and offset."""
        return FrameStore(paths=self.paths)

    def frames(self, stop: threading.Event) -> Iterator[Record | None]:
        """The merged frames as records (see :class:`tcpview.sources.base.Source`)."""
        for batch in self.batches(stop):
            if batch is not None:
                yield from batch.records()

    def batches(self, stop: threading.Event) -> Generator[FrameBatch, None, None]:
        """The merged frames a batch at a time, numbered in merged order; a batch says each
        frame's capture and place in it. The first damaged file's error ends nothing: the
        others are read on, and it is kept in :attr:`error`."""
        gens: list[Generator | None] = [None] * len(self.sources)
        heads: list[list | None] = [None] * len(gens)  # [batch, times, merge keys, position]
        waiting = sorted((k, i) for i, k in enumerate(self._first) if k is not None)
        try:
            while not stop.is_set():
                for i, g in enumerate(gens):
                    if heads[i] is None and g is not None:
                        heads[i] = self._next(i, g)
                        if heads[i] is None:
                            g.close()
                            gens[i] = None
                # open the files the merge has reached (at or before the earliest batch end)
                horizon = min((float(h[2][-1]) for h in heads if h is not None), default=float("inf"))
                while waiting and waiting[0][0] <= horizon:
                    i = waiting.pop(0)[1]
                    gen = self.sources[i].batches(stop)
                    head = self._next(i, gen)
                    gens[i], heads[i] = (None, None) if head is None else (gen, head)
                    if head is not None:
                        horizon = min(horizon, float(head[2][-1]))
                live = [i for i, h in enumerate(heads) if h is not None]
                if not live:
                    break
                for batch in self._step(heads, live):
                    if len(batch):
                        yield batch
        finally:
            for g in gens:
                if g is not None:
                    g.close()
            errors = [s.error for s in self.sources if getattr(s, "error", None)]
            self.error = errors[0] if errors else None

    def _next(self, i: int, g: Generator) -> list | None:
        """Capture i's next non-empty batch, as a head; None at its end."""
        for b in g:
            if b is not None and self.skip is not None and len(self.skip[i]):
                skip = self.skip[i]  # sorted, as the frames' numbers are
                f = b.frames.frame
                keep = skip[np.minimum(np.searchsorted(skip, f), len(skip) - 1)] != f
                if not keep.all():
                    b = FrameBatch(b.buf, b.frames[keep], b.base)
            if b is None or not len(b):
                continue  # a file's reader waits for nothing: skip the pauses
            ts = b.frames.ts + self.offsets[i]
            key = np.maximum.accumulate(ts)  # a clock that steps back is merged by its latest time
            return [b, ts, key, 0]
        return None

    def _step(self, heads: list, live: list[int], horizon: float | None = None) -> list[FrameBatch]:
        """The frames of the heads at hand that can go out now, in order, as batches; heads
        used up are dropped (the next call reads on). ``horizon``: the latest merge key that
        may go out (default: the earliest last key among the heads, right for files, whose
        later frames are all in their next batches; a live merge gives its watermark:
        :class:`tcpview.sources.live.remote_merge.RemoteCapture`)."""
        if horizon is None:
            horizon = min(float(heads[i][2][-1]) for i in live)
        parts = []
        for i in live:
            _b, _ts, key, pos = heads[i]
            later = np.flatnonzero(key[pos:] > horizon)
            end = pos + int(later[0]) if len(later) else len(key)
            if end > pos:
                parts.append((i, pos, end))
        if not parts:  # (a watermark may let nothing out yet)
            return []
        # the capture whose batch ends at the horizon always has frames to give: its key never
        # decreases, so its whole batch is at or before its last time stamp
        keys = np.concatenate([heads[i][2][a:e] for i, a, e in parts])
        cap = np.concatenate([np.full(e - a, i, dtype=np.int64) for i, a, e in parts])
        pos = np.concatenate([np.arange(a, e, dtype=np.int64) for _i, a, e in parts])
        if len(parts) > 1:
            order = np.lexsort((pos, cap, keys))  # by time, then file order, then the file's own
            cap, pos = cap[order], pos[order]
        held = {i: (heads[i][0], heads[i][1]) for i, _a, _e in parts}
        for i, _a, end in parts:
            heads[i][3] = end
            if end >= len(heads[i][2]):
                heads[i] = None
        return self._batches(held, len(parts), cap, pos)

    def _batches(self, held: dict, parts: int, cap: np.ndarray, pos: np.ndarray) -> list[FrameBatch]:
        """Long runs of one capture go out as slices of its batch, short ones copied together."""
        n = len(cap)
        change = np.flatnonzero(cap[1:] != cap[:-1]) + 1
        if parts > 1 and n < (len(change) + 1) * COPY_RUN:
            return [self._gather(held, cap, pos)]
        bounds = [0, *change.tolist(), n]
        return [self._slice(held, cap[a:e], pos[a:e]) for a, e in zip(bounds, bounds[1:], strict=False)]

    def _number(self, frames, cap: np.ndarray, ts: np.ndarray) -> None:
        """Renumber ``frames`` (a copy) in merged order, put the offsets on their times and note
        their captures."""
        n = len(frames)
        self.captures.add(cap, frames.frame)
        frames.frame = np.arange(self._read + 1, self._read + n + 1, dtype=np.int64)
        frames.ts = ts
        self._read += n

    def _slice(self, held: dict, cap: np.ndarray, pos: np.ndarray) -> FrameBatch:
        """A run of one capture's frames: a slice of its batch, its buffer shared."""
        i = int(cap[0])
        b, ts = held[i]
        a, e = int(pos[0]), int(pos[-1]) + 1
        frames = b.frames[a:e].copy() if e - a == len(pos) else b.frames[pos].copy()  # (a run: a slice)
        self._number(frames, cap, ts[pos])
        where = (b.base + frames.off).astype(np.int64) if b.base is not None else None
        return FrameBatch(b.buf, frames, None, capture=cap.astype(np.int16), where=where)

    def _gather(self, held: dict, cap: np.ndarray, pos: np.ndarray) -> FrameBatch:
        """Short runs: one buffer made of the stretch of each capture's buffer that holds its
        frames here (a copy of whole stretches, not frame by frame), the frames in merged order."""
        n = len(cap)
        order = np.argsort(cap, kind="stable")  # the merged rows, each capture's together, in order
        ends = np.cumsum(np.bincount(cap))
        parts, times, wheres, pieces = [], [], [], []
        at = 0
        in_files = False
        for i in sorted(held):
            b, bts = held[i]
            mine = pos[order[(ends[i - 1] if i else 0):ends[i]]]
            a, e = int(mine[0]), int(mine[-1]) + 1
            frames = b.frames.view(np.ndarray)
            part = frames[a:e].copy() if e - a == len(mine) else frames[mine]
            lo = int(part["off"].min())
            hi = int((part["off"] + part["caplen"]).max())
            pieces.append(b.buf[lo:hi])
            if b.base is not None:
                in_files = True
                wheres.append(b.base + part["off"])
            else:
                wheres.append(np.full(len(part), -1, dtype=np.int64))
            part["off"] += at - lo
            parts.append(part)
            times.append(bts[mine])
            at += hi - lo
        frames = np.empty(n, dtype=parts[0].dtype)
        frames[order] = np.concatenate(parts)
        ts = np.empty(n, dtype=np.float64)
        ts[order] = np.concatenate(times)
        out = np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
        # read-only, as every reader's buffer is: the compiled loop is typed (and cached) for
        # read-only bytes, and a writable buffer would make it compile another version first
        out.flags.writeable = False
        batch = frames.view(Records)
        self._number(batch, cap, ts)
        where = None
        if in_files:
            where = np.empty(n, dtype=np.int64)
            where[order] = np.concatenate(wheres)
        return FrameBatch(out, batch, None, capture=cap.astype(np.int16), where=where)

    def expected_frames(self) -> int | None:
        """About how many frames the captures hold together (None if one does not say)."""
        total = 0
        for s in self.sources:
            n = s.expected_frames() if hasattr(s, "expected_frames") else None
            if n is None:
                return None
            total += n
        return total

    def progress(self) -> float | None:
        """Fraction of the captures' bytes read."""
        done = size = 0
        for s in self.sources:
            r = getattr(s, "reader", None)
            if r is None or r.size is None:
                return None
            done += min(r.bytes_read, r.size)
            size += r.size
        return done / size if size else None

    def status(self) -> dict[str, int]:
        """``dropped``: packets the capturing programs say they lost, all files together."""
        dropped = sum(s.status().get("dropped", 0) for s in self.sources if hasattr(s, "status"))
        return {"dropped": dropped} if dropped else {}
