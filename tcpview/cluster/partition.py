"""Stage 1 of a cluster run: one capture file read once and cut into buckets by connection.

Every frame goes to one of ``buckets`` buckets. A TCP segment the engine's decoder accepts
goes by a hash of its unordered 4-tuple (both directions, and every connection a 4-tuple ever
carries, reused ports and new SYNs included, land in the same bucket: the engine's rules that
split a 4-tuple into connections run there, on all of its segments). A frame the decoder
refuses (not TCP, a fragment, a cut-short header) only counts: it goes to a bucket by its
place in the file, whole, so the bucket's engine counts it under the same reason.

An accepted segment keeps only its bytes up to the end of its TCP header (the decoder reads
nothing past it; the payload's length comes from the IP header and the wire length), so what
moves between workers is about 70 bytes a segment, whatever the payload.

Both are decided by the engine's own decoder, compiled (:mod:`tcpview.engine.core.buckets`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .. import jit
from ..engine.core.buckets import bucket_frames, copy_frames
from ..engine.core.decode import OUT_SIZE
from ..records import Records
from ..sources.base import FileSource
from ..sources.batch import FRAME, FrameBatch


@dataclass
class FileParts:
    """One file cut into buckets (what stage 1 gives stage 2).

    ``pieces[b]`` holds bucket b's frames, their ``frame`` field the frame's 1-based place
    in the file (the numbering stage makes it its place in the merged archive)."""

    index: int
    pieces: list[Piece]
    times: np.ndarray
    """Every frame's time stamp, in file order (their running maximum: see :mod:`.numbering`)."""
    last_tcp: float | None
    """The latest time stamp of a segment the decoder accepts (the engine fires the timers
    due by then before that segment)."""
    bytes_read: int
    """Bytes the reader handed up from the file."""
    error: str | None = None
    """Damage part-way (every frame before it is in the pieces), as a single-process read says."""
    cpu: float = 0.0
    """CPU seconds the worker's thread spent on it."""
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        self.frames = len(self.times)


@dataclass(frozen=True)
class SharedPiece:
    """One bucket's frames of one file, kept in two files of a directory every worker of a
    local cluster reads (its frame records, its bytes): what moves between workers is their
    names, not their bytes (a worker hands a result to another through a socket, holding the
    GIL while it is busy: for a bucket's hundreds of megabytes that was most of the track
    stage's time on two workers)."""

    frames_path: str
    buf_path: str
    n: int
    size: int

    def batch(self) -> FrameBatch:
        """The frames and bytes, read back."""
        frames = np.fromfile(self.frames_path, dtype=FRAME).view(Records)
        return FrameBatch(np.fromfile(self.buf_path, dtype=np.uint8), frames)


Piece = FrameBatch | SharedPiece
"""A bucket's frames of one file: in memory, or in shared files (:class:`SharedPiece`)."""


def as_batch(piece: Piece) -> FrameBatch:
    """A piece's frames in memory."""
    return piece.batch() if isinstance(piece, SharedPiece) else piece


def piece_frames(piece: Piece) -> int:
    """How many frames a piece holds."""
    return piece.n if isinstance(piece, SharedPiece) else len(piece)


def piece_size(piece: Piece) -> int:
    """Bytes a piece keeps of its frames."""
    return piece.size if isinstance(piece, SharedPiece) else int(piece.buf.nbytes)


def piece_bytes(piece: Piece) -> int:
    """Bytes of a piece's frame records and kept bytes."""
    return piece_frames(piece) * FRAME.itemsize + piece_size(piece)


def bucket_of(batch: FrameBatch, buckets: int, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's bucket, whether the decoder accepts it as a segment, and how many of its
    bytes to keep (:func:`tcpview.engine.core.buckets.bucket_frames`); ``first``: the file's
    frame count before the batch."""
    n = len(batch)
    bucket = np.empty(n, dtype=np.int64)
    keep = np.empty(n, dtype=np.int64)
    bucket_frames(batch.buf, batch.frames, first, buckets, np.zeros(OUT_SIZE, dtype=np.int64), bucket, keep)
    tcp = keep > 0
    return bucket, tcp, np.abs(keep)


class _Piece:
    """One bucket's frames of one file, gathered batch by batch."""

    def __init__(self) -> None:
        self.bufs: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.size = 0

    def add(self, batch: FrameBatch, sel: np.ndarray, keep: np.ndarray, numbers: np.ndarray) -> None:
        f = batch.frames
        lengths = keep[sel]
        starts = f.off[sel].astype(np.int64)
        dst = np.cumsum(lengths) - lengths
        if jit.mode() == "compiled":
            out = np.empty(int(lengths.sum()), dtype=np.uint8)
            copy_frames(batch.buf, starts, lengths, out, dst)
        else:  # plain Python: every byte's index, gathered by numpy
            within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(dst, lengths)
            out = batch.buf[np.repeat(starts, lengths) + within]
        self.bufs.append(out)
        rows = np.zeros(len(sel), dtype=FRAME)
        rows["off"] = self.size + dst
        rows["caplen"] = lengths
        rows["origlen"] = f.origlen[sel]
        rows["ts"] = f.ts[sel]
        rows["linktype"] = f.linktype[sel]
        rows["frame"] = numbers[sel]
        self.rows.append(rows)
        self.size += len(out)

    def batch(self) -> FrameBatch:
        buf = np.concatenate(self.bufs) if self.bufs else np.zeros(0, dtype=np.uint8)
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=FRAME)
        return FrameBatch(buf, rows.view(Records))

    def store(self, stem: str) -> SharedPiece:
        """Written to ``stem.frames`` and ``stem.buf`` (part by part: no copy made whole)."""
        for suffix, parts in ((".frames", self.rows), (".buf", self.bufs)):
            with open(stem + suffix, "wb") as f:
                for a in parts:
                    a.tofile(f)
        return SharedPiece(stem + ".frames", stem + ".buf", sum(len(r) for r in self.rows), self.size)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path to read ``path`` from: the path itself, the file a ``file://`` URL names,
    or, for any other URL fsspec knows (``s3://...`` with its package and credentials), a copy
    in the worker's temporary directory (removed after), fetched once.

    Raises:
        CaptureError: the URL names nothing that can be fetched.
    """
    from ..sources.pcap import CaptureError

    if "://" not in path:
        yield path
        return
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, inner = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as e:
        raise CaptureError(f"{path}: cannot be read ({e})") from None
    if isinstance(fs, LocalFileSystem):
        yield inner
        return
    fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="tcpview-")
    os.close(fd)
    try:
        try:
            fs.get_file(inner, tmp)
        except OSError as e:
            raise CaptureError(f"{path}: cannot be read ({e.strerror or e})") from None
        yield tmp
    finally:
        os.unlink(tmp)


def split_file(path: str, index: int, buckets: int, shared: str | None = None) -> FileParts:
    """Read capture ``path`` (the ``index``-th file of the archive; a path or a URL, see
    :func:`local_copy`) once and cut it into ``buckets`` buckets; ``shared``: a directory
    every worker reads, where the pieces are kept (:class:`SharedPiece`), else in memory.

    Raises:
        CaptureError: the file cannot be opened or is not a capture.
    """
    import time

    cpu = time.thread_time()
    with local_copy(path) as local:
        parts = _split(local, index, buckets, shared)
    parts.cpu = time.thread_time() - cpu
    return parts


def _split(path: str, index: int, buckets: int, shared: str | None) -> FileParts:
    from ..sources.pcap import check_capture

    check_capture(path)
    src = FileSource(path)
    pieces = [_Piece() for _ in range(buckets)]
    times: list[np.ndarray] = []
    last_tcp: float | None = None
    read = 0
    count = 0
    for batch in src.batches(threading.Event()):
        if batch is None or not len(batch):
            continue
        read += int(batch.buf.nbytes)
        numbers = np.arange(count + 1, count + 1 + len(batch), dtype=np.int64)
        bucket, tcp, keep = bucket_of(batch, buckets, count)
        count += len(batch)
        ts = batch.frames.ts
        times.append(np.array(ts, dtype=np.float64))
        if tcp.any():
            top = float(ts[tcp].max())
            last_tcp = top if last_tcp is None else max(last_tcp, top)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
        for b in range(buckets):
            sel = order[bounds[b]:bounds[b + 1]]
            if len(sel):
                pieces[b].add(batch, sel, keep, numbers)
    all_ts = np.concatenate(times) if times else np.zeros(0)
    kept: list[Piece] = [p.batch() for p in pieces] if shared is None else [
        p.store(os.path.join(shared, f"{index}-{b}")) for b, p in enumerate(pieces)]
    return FileParts(index, kept, np.maximum.accumulate(all_ts) if len(all_ts) else all_ts, last_tcp, read,
                     src.error)
