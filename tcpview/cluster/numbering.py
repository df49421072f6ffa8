"""Stage 2 of a cluster run: each frame's place in the archive merged by time.

Files are merged as ``mergecap`` (Wireshark 4.0) merges them: at each step the earliest next
frame of any file, of the later file (in the order given) on a tie. A file's frames keep their order, so a frame whose clock
stepped back comes right after the frame before it: its place is that of the latest time
stamp seen so far in its file (its running maximum, :attr:`FileParts.times`). The place of
frame j of file f is then j + 1, plus the frames of the later files at or before its time,
plus those of the earlier files strictly before it: a binary search in each file whose time
span overlaps f's, and a count for the files wholly before it. No file is read again and
only the time stamps of neighbours in time move (8 bytes a frame).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..sources.batch import FrameBatch
from .partition import FileParts, Piece, SharedPiece, as_batch, piece_bytes


@dataclass(frozen=True)
class Span:
    """What the client learns of one file once it is cut: its place, frames and time span
    (what the numbering needs), its last segment's time, what was read and what is staged."""

    index: int
    frames: int
    first: float | None
    last: float | None
    last_tcp: float | None = None
    bytes_read: int = 0
    staged: int = 0
    """Bytes of its buckets (kept headers and frame records): what moves to the trackers."""
    error: str | None = None
    cpu: float = 0.0
    """CPU seconds its reading and cutting took."""
    shared: tuple[SharedPiece, ...] = ()
    """Its pieces, by bucket, where they are kept in files every worker reads (else none):
    the client hands them to the trackers itself, so a tracker waits on no other worker."""


def span_of(parts: FileParts) -> Span:
    """The file's :class:`Span` (a small result the client gathers)."""
    t = parts.times
    staged = sum(piece_bytes(p) for p in parts.pieces)
    shared = tuple(p for p in parts.pieces if isinstance(p, SharedPiece))
    return Span(parts.index, parts.frames, float(t[0]) if len(t) else None, float(t[-1]) if len(t) else None,
                parts.last_tcp, parts.bytes_read, staged, parts.error, parts.cpu,
                shared if len(shared) == len(parts.pieces) else ())


def times_of(parts: FileParts) -> tuple[int, np.ndarray]:
    """The file's index and its frames' running-maximum times (what a neighbour needs)."""
    return parts.index, parts.times


def piece_of(parts: FileParts, bucket: int) -> Piece:
    """Bucket ``bucket``'s frames of a file that needs no numbering (its frames' places are
    their places in the file plus an offset, which the bucket adds)."""
    return parts.pieces[bucket]


def plan(spans: list[Span]) -> list[tuple[int, list[int]]]:
    """For each file: how many frames of other files come before all of its frames, and the
    other files whose frames it must search among (their time spans overlap its own)."""
    out = []
    for s in spans:
        before, near = 0, []
        for o in spans:
            if o.index == s.index or not o.frames or not s.frames:
                continue
            assert o.first is not None and o.last is not None and s.first is not None and s.last is not None
            # on a tie the later file's frame comes first
            wholly_before = o.last < s.first or (o.last == s.first and o.index > s.index)
            wholly_after = o.first > s.last or (o.first == s.last and o.index < s.index)
            if wholly_before:
                before += o.frames
            elif not wholly_after:
                near.append(o.index)
        out.append((before, near))
    return out


def merged_numbers(parts: FileParts, before: int, near: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """The 1-based place in the merged archive of every frame of ``parts``, in file order."""
    t = parts.times
    n = np.arange(1, len(t) + 1, dtype=np.int64) + before
    for index, other in near:
        n += np.searchsorted(other, t, side="right" if index > parts.index else "left")
    return n


def number_pieces(parts: FileParts, before: int, near: list[tuple[int, np.ndarray]]) -> list[Piece]:
    """``parts``' buckets with each frame's ``frame`` field its place in the merged archive
    (a shared piece's records written again beside its own, its bytes shared)."""
    numbers = merged_numbers(parts, before, near)
    out: list[Piece] = []
    for piece in parts.pieces:
        batch = as_batch(piece)
        frames = batch.frames.copy()
        frames.frame = numbers[batch.frames.frame - 1]
        if isinstance(piece, SharedPiece):
            path = piece.frames_path + ".numbered"
            frames.view(np.ndarray).tofile(path)
            out.append(replace(piece, frames_path=path))
        else:
            out.append(FrameBatch(batch.buf, frames))
    return out
