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

The 4-tuple is found by numpy over the whole batch for the usual link types (Ethernet, Linux
cooked SLL/SLL2, raw IP, BSD loopback) with IPv4 or IPv6 with no extension headers, and by the
engine's own decoder (:func:`tcpview.engine.core.decode.decode`) for the rest, one frame at a
time; both accept exactly what :func:`~tcpview.engine.core.decode.decode_frame` accepts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..engine.core.decode import decode
from ..sources.base import FileSource
from ..sources.batch import FRAME, FrameBatch

_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)
_IP6_EXT = (0, 43, 44, 51, 60, 135, 139, 140, 253, 254)
_RAW = (101, 12, 14, 228, 229)
_FAST_LINKS = (1, 113, 276, 0, 108, *_RAW)

# what the numpy pass says of a frame
TCP, REFUSED, ASK = 0, 1, 2


@dataclass
class FileParts:
    """One file cut into buckets (what stage 1 gives stage 2).

    ``pieces[b]`` holds bucket b's frames, their ``frame`` field the frame's 1-based place
    in the file (the numbering stage makes it its place in the merged archive)."""

    index: int
    pieces: list[FrameBatch]
    times: np.ndarray
    """Every frame's time stamp, in file order (running maximum: see :func:`merge_keys`)."""
    last_tcp: float | None
    """The latest time stamp of a segment the decoder accepts (the engine fires the timers
    due by then before that segment)."""
    bytes_read: int
    """Bytes the reader handed up from the file."""
    error: str | None = None
    """Damage part-way (every frame before it is in the pieces), as a single-process read says."""
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        self.frames = len(self.times)


def _be16(b: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (b[p].astype(np.uint64) << np.uint64(8)) | b[p + 1].astype(np.uint64)


def _be32(b: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (_be16(b, p) << np.uint64(16)) | _be16(b, p + 2)


def _be64(b: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (_be32(b, p) << np.uint64(32)) | _be32(b, p + 4)


def _le32(b: np.ndarray, p: np.ndarray) -> np.ndarray:
    return b[p].astype(np.uint64) | (b[p + 1].astype(np.uint64) << np.uint64(8)) | \
        (b[p + 2].astype(np.uint64) << np.uint64(16)) | (b[p + 3].astype(np.uint64) << np.uint64(24))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def conn_hash(hi_a, lo_a, port_a, hi_b, lo_b, port_b) -> np.ndarray:
    """A hash of the unordered pair of endpoints ``(address hi, lo, port)`` (uint64 arrays):
    the same for both directions of a 4-tuple."""
    with np.errstate(over="ignore"):
        ea = _mix(hi_a * np.uint64(0x9E3779B97F4A7C15) ^ _mix(lo_a ^ (port_a << np.uint64(48))))
        eb = _mix(hi_b * np.uint64(0x9E3779B97F4A7C15) ^ _mix(lo_b ^ (port_b << np.uint64(48))))
        return _mix(ea + eb)


def classify(batch: FrameBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each frame of ``batch``: what the numpy pass makes of it (``TCP``, ``REFUSED`` or
    ``ASK``: the decoder must say), the hash of its 4-tuple, and where its TCP header ends
    (from the frame's start) for ``TCP``."""
    f = batch.frames
    n = len(f)
    b = batch.buf
    if len(b) == 0:
        b = np.zeros(1, dtype=np.uint8)
    size = len(b)
    off = f.off.astype(np.int64)
    end = off + f.caplen.astype(np.int64)
    lt = f.linktype.astype(np.int64)

    def at(p: np.ndarray, width: int) -> np.ndarray:
        # where the bytes are past the frame the value is unused: read somewhere harmless
        return np.where(p + width <= end, p, 0).clip(0, max(0, size - width))

    kind = np.full(n, ASK, dtype=np.int8)
    fam = np.zeros(n, dtype=np.int64)  # 4, 6, or 0: not IP (refused)
    p = off.copy()  # where the IP header starts
    eth = lt == 1
    sll, sll2 = lt == 113, lt == 276
    et = np.zeros(n, dtype=np.uint64)
    et[eth] = _be16(b, at(off + 12, 2))[eth]
    et[sll] = _be16(b, at(off + 14, 2))[sll]
    et[sll2] = _be16(b, at(off, 2))[sll2]
    p[eth], p[sll], p[sll2] = off[eth] + 14, off[sll] + 16, off[sll2] + 20
    by_et = eth | sll | sll2
    short = by_et & (p > end)
    fam[by_et & (et == 0x0800)] = 4
    fam[by_et & (et == 0x86DD)] = 6
    vlan = eth & np.isin(et, _VLAN) & ~short
    raw = np.isin(lt, _RAW)
    ver = b[at(off, 1)] >> 4
    fam[raw & (ver == 4)] = 4
    fam[raw & (ver == 6)] = 6
    short |= raw & (off >= end)
    loop = (lt == 0) | (lt == 108)
    af = np.where(lt == 108, _be32(b, at(off, 4)), _le32(b, at(off, 4)))
    af = np.where((lt == 0) & (af > 0xFFFF), _be32(b, at(off, 4)), af)
    fam[loop & (af == 2)] = 4
    fam[loop & np.isin(af, (10, 24, 28, 30))] = 6
    p[loop] = off[loop] + 4
    short |= loop & (off + 4 > end)
    fast = np.isin(lt, _FAST_LINKS) & ~vlan
    fam[short] = 0
    kind[fast & (fam == 0)] = REFUSED

    # IPv4: the checks of _ip4, in its order; any that fails refuses the frame
    v4 = fast & (fam == 4)
    ok4 = v4 & (p + 20 <= end)
    vihl = b[at(p, 1)].astype(np.int64)
    ihl = (vihl & 15) * 4
    ok4 &= (vihl >> 4 == 4) & (ihl >= 20) & (b[at(p + 9, 1)] == 6) & ((_be16(b, at(p + 6, 2)) & 0x1FFF) == 0)
    # IPv6: straight to TCP, or extension headers (the decoder walks them), or not TCP
    v6 = fast & (fam == 6)
    nh = b[at(p + 6, 1)]
    ok6 = v6 & (p + 40 <= end) & (b[at(p, 1)] >> 4 == 6)
    ask6 = ok6 & np.isin(nh, _IP6_EXT)
    ok6 &= nh == 6
    t = np.where(fam == 6, p + 40, p + ihl)
    thl = (b[at(t + 12, 1)].astype(np.int64) >> 4) * 4
    tcp = (ok4 | ok6) & (t + 20 <= end) & (thl >= 20)
    kind[(v4 | v6) & ~tcp] = REFUSED
    kind[ask6] = ASK
    kind[tcp] = TCP

    a4, a6 = at(p + 12, 8), at(p + 8, 32)
    src_hi = np.where(fam == 6, _be64(b, a6), 0).astype(np.uint64)
    src_lo = np.where(fam == 6, _be64(b, a6 + 8), _be32(b, a4)).astype(np.uint64)
    dst_hi = np.where(fam == 6, _be64(b, a6 + 16), 0).astype(np.uint64)
    dst_lo = np.where(fam == 6, _be64(b, a6 + 24), _be32(b, a4 + 4)).astype(np.uint64)
    tt = at(t, 4)
    h = conn_hash(src_hi, src_lo, _be16(b, tt), dst_hi, dst_lo, _be16(b, tt + 2))
    hdr_end = np.minimum(t + thl, end) - off
    return kind, h, hdr_end


def _ask_decoder(batch: FrameBatch, rows: np.ndarray, kind: np.ndarray, h: np.ndarray, hdr_end: np.ndarray) -> None:
    """The frames the numpy pass leaves to the engine's decoder, one at a time."""
    f = batch.frames
    buf = batch.buf
    for k in rows.tolist():
        off, caplen = int(f.off[k]), int(f.caplen[k])
        got = decode(buf[off:off + caplen].tobytes(), 0, caplen, int(f.origlen[k]), int(f.linktype[k]))
        if isinstance(got, str):
            kind[k] = REFUSED
            continue
        fam, src, dst, sport, dport = got[:5]
        ends = []
        for addr in (src, dst):
            v = int.from_bytes(addr, "big") if fam == 6 else int(addr)
            ends.append((v >> 64, v & ((1 << 64) - 1)))
        h[k] = conn_hash(*(np.array([x], dtype=np.uint64) for x in (*ends[0], sport, *ends[1], dport)))[0]
        kind[k] = TCP
        hdr_end[k] = min(got[10] + got[11], caplen)


def bucket_of(batch: FrameBatch, buckets: int, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's bucket, whether the decoder accepts it, and how many of its bytes to keep;
    ``first``: the file's frame number of the batch's first frame (a refused frame goes by it)."""
    kind, h, hdr_end = classify(batch)
    ask = np.flatnonzero(kind == ASK)
    if len(ask):
        _ask_decoder(batch, ask, kind, h, hdr_end)
    tcp = kind == TCP
    place = np.arange(first, first + len(batch), dtype=np.uint64)
    bucket = np.where(tcp, h % np.uint64(buckets), place % np.uint64(buckets)).astype(np.int64)
    keep = np.where(tcp, hdr_end, batch.frames.caplen.astype(np.int64))
    return bucket, tcp, keep


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
        total = int(lengths.sum())
        # the kept bytes of each frame, one after the other: a gather of every byte's index
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        self.bufs.append(batch.buf[np.repeat(starts, lengths) + within])
        rows = np.zeros(len(sel), dtype=FRAME)
        rows["off"] = self.size + np.cumsum(lengths) - lengths
        rows["caplen"] = lengths
        rows["origlen"] = f.origlen[sel]
        rows["ts"] = f.ts[sel]
        rows["linktype"] = f.linktype[sel]
        rows["frame"] = numbers[sel]
        self.rows.append(rows)
        self.size += total

    def batch(self) -> FrameBatch:
        buf = np.concatenate(self.bufs) if self.bufs else np.zeros(0, dtype=np.uint8)
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=FRAME)
        return FrameBatch(buf, rows.view(np.recarray))


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


def split_file(path: str, index: int, buckets: int) -> FileParts:
    """Read capture ``path`` (the ``index``-th file of the archive; a path or a URL, see
    :func:`local_copy`) once and cut it into ``buckets`` buckets.

    Raises:
        CaptureError: the file cannot be opened or is not a capture.
    """
    with local_copy(path) as local:
        return _split(local, index, buckets)


def _split(path: str, index: int, buckets: int) -> FileParts:
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
    return FileParts(index, [p.batch() for p in pieces], np.maximum.accumulate(all_ts) if len(all_ts) else all_ts,
                     last_tcp, read, src.error)
