"""Read pcap and pcapng captures from a file, a growing file, or a stream (stdin).

A reader over chunks of bytes: a compiled scanner (:mod:`tcpview.sources.scan`) finds the
frames in each chunk and the chunk goes to the engine as one :class:`FrameBatch`, which the
decoder reads in place. It does no dissection. The same code reads a whole file, a pipe as data arrives
(``tcpdump -U -w - | tcpview summary -``) and a file another program is still writing
(``follow=True``).

It is used instead of scapy's ``RawPcapReader`` because it is about twice as fast here, reads
partial records from a pipe without blocking on a full buffer, and reports damage (a cut-short
file, a corrupt record length) as :class:`CaptureError` after handing out every good record.
Writing captures: the simulator uses scapy (``tcpview.sim.writer``), live capture its own
writer (``tcpview.sources.live.sink``).
"""

from __future__ import annotations

import os
import select
import stat
import struct
import sys
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO

import numpy as np

from ..errors import UserError, os_problem
from . import kblocks
from .batch import FrameBatch, frame_array
from .drain import Drain
from .linktypes import SUPPORTED_LINKTYPES
from .pcapng_stats import interface_drops
from .scan import BAD_INTERFACE, CORRUPT, CORRUPT_PACKET, FULL, PYTHON_BLOCK, scan_pcap, scan_pcapng

CHUNK = 4 << 20
BATCH = 65536  # frames per batch at most
MAX_RECORD = 1 << 24  # larger than any real frame (BIG TCP ~ 512 KB); beyond it: corrupt

Record = tuple[int, float, int, Any, int, int, int]


WAIT = b"<wait>"  # sentinel from _read: following, and nothing new yet (compared by identity)


class CaptureError(UserError):
    """A capture that cannot be read (or read to the end); the message is one line."""


_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PY_TYPES = (1, 5, *kblocks.CUSTOM_TYPES)  # interface, its statistics, custom blocks: read here
_SHB_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}  # byte-order magic -> struct order


def _unknown_magic(source: str, magic: bytes) -> str:
    return f"{source}: not a pcap or pcapng capture (unknown magic {magic.hex()})"


class CaptureReader:
    """Iterate the records of a pcap or pcapng capture.

    Args:
        source: a path, or ``"-"`` for standard input.
        follow: at the end of the file, wait for more data instead of stopping.
        stop: called while following or waiting; return True to stop reading.
        fd: with ``"-"``, read this file descriptor instead of standard input's.
    """

    def __init__(
        self,
        source: str,
        follow: bool = False,
        stop: Callable[[], bool] | None = None,
        fd: int | None = None,
    ) -> None:
        self.source = source
        self.follow = follow
        self.stop = stop or (lambda: False)
        self.linktypes: list[int] = []
        self.iface_drops: dict[int, int] = {}
        """Packets dropped while capturing, by interface, as the file's statistics blocks say."""
        self.kernel: Callable[[np.ndarray, int], None] | None = None
        """Told each block of the kernel's events a pcapng holds (``events, lost``)."""
        self.bytes_read = 0
        self.size: int | None = None
        self._fd: int | None = None
        self._file: BinaryIO | None = None
        self.is_stream = source == "-"
        if self.is_stream:
            self._fd = sys.stdin.buffer.fileno() if fd is None else fd
        else:
            try:
                self._file = open(source, "rb")
            except OSError as e:
                raise CaptureError(os_problem(source, e, wanted="a capture file")) from None
            self._fd = self._file.fileno()
            try:
                self.size = os.fstat(self._fd).st_size
            except OSError:
                self.size = None
        self._drain: Drain | None = None
        if self.is_stream:  # emptied as fast as it is written, on a thread of its own
            self._drain = Drain(self._fd)
        try:
            # a pipe or FIFO (not a regular file) is polled, so a quiet stream still lets the
            # consumer flush (None) and stop instead of blocking in read() until more comes
            self._pollable = not stat.S_ISREG(os.fstat(self._fd).st_mode)
        except OSError:
            self._pollable = False

    def close(self) -> None:
        """Close the underlying file (not stdin); stop draining a stream."""
        if self._drain is not None:
            self._drain.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low-level chunked input -------------------------------------------------------
    def _read(self) -> bytes:
        """Return the next chunk; b'' at the end; WAIT while following and nothing is new."""
        assert self._fd is not None
        if self._drain is not None:
            return self._take(self._drain)
        while True:
            if self._pollable:
                try:
                    ready, _w, _x = select.select([self._fd], [], [], 0.1)
                except InterruptedError:
                    continue
                except (OSError, ValueError):
                    ready = [self._fd]  # not selectable: fall back to a blocking read
                if not ready:
                    return b"" if self.stop() else WAIT
            try:
                data = os.read(self._fd, CHUNK)
            except InterruptedError:
                continue
            except OSError as e:
                raise CaptureError(os_problem(self.source, e, "read error")) from None
            if data:
                self.bytes_read += len(data)
                return data
            if not self.follow or self.stop():
                return b""
            time.sleep(0.05)
            if self.stop():
                return b""
            return WAIT

    def _take(self, drain: Drain) -> bytes:
        """A stream's next chunk: everything its producer wrote since the last one."""
        try:
            data = drain.take(0.1)
        except OSError as e:
            raise CaptureError(os_problem(self.source, e, "read error")) from None
        if data is None:
            return b"" if self.stop() else WAIT
        self.bytes_read += len(data)
        return data

    def waiting(self) -> int | None:
        """Bytes a stream's producer wrote that are not read yet (None: not a stream)."""
        return None if self._drain is None else self._drain.waiting()

    def records(self) -> Iterator[Record | None]:
        """Yield ``(frame, ts, linktype, buf, off, caplen, origlen)`` for every record.

        The same frames as :meth:`batches`, one by one (for tools and tests; the engine reads
        batches). While following, also yields ``None`` whenever it waits for more data.
        """
        return _records(self.batches())

    def batches(self) -> Iterator[FrameBatch | None]:
        """Yield the capture's frames, a chunk's worth at a time (:class:`FrameBatch`).

        While following, also yields ``None`` whenever it waits for more data, so a consumer
        can flush what it has.

        Raises:
            CaptureError: not a capture, unknown link type, truncated or corrupt data. Raised
                only after every readable frame before the damage was yielded.
        """
        buf = b""
        while len(buf) < 4:
            data = self._read()
            if data is WAIT:
                continue
            if not data:
                if not buf and not self.is_stream and self.size == 0:
                    raise CaptureError(f"{self.source}: empty file, not a capture")
                raise CaptureError(f"{self.source}: not a pcap or pcapng capture (too short)")
            buf += data
        magic = buf[:4]
        if magic in _PCAP_MAGICS:
            return self._pcap(buf, *_PCAP_MAGICS[magic])
        elif magic == _PCAPNG_SHB:
            return self._pcapng(buf)
        else:
            raise CaptureError(_unknown_magic(self.source, magic))

    def _more(self, buf: bytes, pos: int, cut: str) -> bytes | None:
        """Drop consumed bytes and append the next chunk; None at the end; WAIT to retry.

        Raises:
            CaptureError: ``cut``, when the capture ends with bytes left (inside a record).
        """
        data = self._read()
        if data is WAIT:
            return WAIT
        if not data:
            if pos < len(buf):
                raise CaptureError(cut)
            return None
        return buf[pos:] + data

    def _refill(self, buf: bytes, pos: int, base: int, cut: str) -> Generator[None, None, tuple[bytes, int] | None]:
        """The unread rest of ``buf`` and what came after it, with the new offset of its first
        byte in the capture; yields None first while nothing came (the consumer may flush);
        None at the end of the capture. Raises as :meth:`_more`."""
        more = self._more(buf, pos, cut)
        if more is None:
            return None
        if more is WAIT:
            yield None
            more = buf[pos:]
        return more, base + pos

    # -- pcap ----------------------------------------------------------------------------
    def _pcap(self, buf: bytes, bo: str, scale: float) -> Iterator[FrameBatch | None]:
        while len(buf) < 24:
            more = self._more(buf, 0, f"{self.source}: truncated pcap file header")
            if more is WAIT:
                continue
            if more is None:
                raise CaptureError(f"{self.source}: truncated pcap file header")
            buf = more
        major, minor, _zone, _sig, snaplen, network = struct.unpack_from(bo + "HHiIII", buf, 4)
        if major != 2:
            raise CaptureError(f"{self.source}: unsupported pcap version {major}.{minor}")
        if (network >> 16) & 0x3FF:
            raise CaptureError(f"{self.source}: invalid link type field 0x{network:08x}")
        lt = network & 0xFFFF
        if lt not in SUPPORTED_LINKTYPES:
            raise CaptureError(f"{self.source}: unsupported link type {lt}")
        self.linktypes = [lt]
        big = bo == ">"
        pos, base, frame = 24, 0, 0
        limit = max(snaplen, 262144) if snaplen < MAX_RECORD else MAX_RECORD
        while True:
            arr = np.frombuffer(buf, dtype=np.uint8)
            out = frame_array(min(BATCH, (len(buf) - pos) // 16 + 1))
            n, pos, why = scan_pcap(arr, pos, len(buf), big, scale, lt, limit, frame, out)
            if n:
                yield FrameBatch(arr, out[:n], base)
                frame += n
            if why == FULL:
                continue
            if why == CORRUPT:
                incl = struct.unpack_from(bo + "I", buf, pos + 8)[0]
                raise CaptureError(f"{self.source}: corrupt record after frame {frame} (length {incl} > {limit})")
            step = yield from self._refill(
                buf, pos, base, f"{self.source}: capture cut short in the middle of a record after frame {frame}")
            if step is None:
                return
            (buf, base), pos = step, 0

    # -- pcapng --------------------------------------------------------------------------
    def _pcapng(self, buf: bytes) -> Iterator[FrameBatch | None]:
        pos, base, frame = 0, 0, 0
        bo = "<"
        # per interface: link type, seconds per time unit, time offset, snap length
        ifaces: list[tuple[int, float, float, int]] = []
        arrays = _iface_arrays(ifaces)
        while True:
            # a section header's length is in its own byte order (a section may switch it)
            sbo = _SHB_ORDER.get(buf[pos + 8:pos + 12], bo) if buf[pos:pos + 4] == _PCAPNG_SHB else bo
            blen = struct.unpack_from(sbo + "I", buf, pos + 4)[0] if pos + 8 <= len(buf) else 0
            python_block = pos + 4 <= len(buf) and (buf[pos:pos + 4] == _PCAPNG_SHB
                                                   or struct.unpack_from(bo + "I", buf, pos)[0] in _PY_TYPES)
            if pos + 12 > len(buf) or (python_block and pos + blen > len(buf)
                                       and 12 <= blen <= MAX_RECORD and not blen % 4):
                step = yield from self._refill(buf, pos, base, f"{self.source}: capture cut short after frame {frame}")
                if step is None:
                    return
                (buf, base), pos = step, 0
                continue
            if python_block:
                bo, pos, frame = self._pcapng_header(buf, pos, bo, ifaces, frame)
                arrays = _iface_arrays(ifaces)
                continue
            arr = np.frombuffer(buf, dtype=np.uint8)
            out = frame_array(min(BATCH, (len(buf) - pos) // 12 + 1))
            n, pos, why = scan_pcapng(arr, pos, len(buf), bo == ">", *arrays, len(ifaces), MAX_RECORD, frame, out)
            if n:
                yield FrameBatch(arr, out[:n], base)
                frame += n
            if why == CORRUPT:
                raise CaptureError(f"{self.source}: corrupt pcapng block after frame {frame}")
            if why == CORRUPT_PACKET:
                raise CaptureError(f"{self.source}: corrupt pcapng packet block after frame {frame}")
            if why == BAD_INTERFACE:
                if struct.unpack_from(bo + "I", buf, pos)[0] == 3:
                    raise CaptureError(f"{self.source}: packet before any interface block")
                btype = struct.unpack_from(bo + "I", buf, pos)[0]
                iid = struct.unpack_from(bo + ("I" if btype == 6 else "H"), buf, pos + 8)[0]
                raise CaptureError(f"{self.source}: packet names unknown interface {iid}")
            if why in (FULL, PYTHON_BLOCK):
                continue
            # DONE: the rest of the chunk holds no whole block
            step = yield from self._refill(buf, pos, base, f"{self.source}: capture cut short after frame {frame}")
            if step is None:
                return
            (buf, base), pos = step, 0

    def _pcapng_header(self, buf: bytes, pos: int, bo: str, ifaces: list, frame: int) -> tuple[str, int, int]:
        """Read the SHB, IDB, ISB or custom block at ``pos``: (byte order, end, frames counted)."""
        if buf[pos:pos + 4] == _PCAPNG_SHB:
            bom = buf[pos + 8:pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                bo = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                bo = ">"
            else:
                raise CaptureError(f"{self.source}: corrupt pcapng section header")
            ifaces.clear()
        btype, blen = struct.unpack_from(bo + "II", buf, pos)
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            raise CaptureError(f"{self.source}: corrupt pcapng block after frame {frame}")
        if pos + blen > len(buf):
            raise CaptureError(f"{self.source}: capture cut short after frame {frame}")
        body = pos + 8
        bend = pos + blen - 4
        if btype in kblocks.CUSTOM_TYPES:  # tcpview's: the kernel's events go to self.kernel; others skipped
            try:
                kblocks.take(buf, body, bend, bo, self.kernel)
            except kblocks.KernelBlockError as e:
                raise CaptureError(f"{self.source}: corrupt pcapng block after frame {frame} ({e})") from None
        elif btype == 0x0A0D0D0A:
            major = struct.unpack_from(bo + "H", buf, body + 4)[0]
            if major != 1:
                raise CaptureError(f"{self.source}: unsupported pcapng version {major}")
            if blen < 28:
                raise CaptureError(f"{self.source}: corrupt pcapng section header")
        elif btype == 5:  # Interface Statistics Block: what the capturing program counted
            try:
                iface, drops = interface_drops(buf, body, bend, bo)
            except ValueError:
                raise CaptureError(f"{self.source}: corrupt pcapng interface statistics block") from None
            if iface >= len(ifaces):
                raise CaptureError(f"{self.source}: statistics for unknown interface {iface}")
            if drops is not None:
                self.iface_drops[iface] = drops
        else:  # Interface Description Block
            if bend - body < 8:
                raise CaptureError(f"{self.source}: corrupt pcapng interface block")
            lt, _r, snap = struct.unpack_from(bo + "HHI", buf, body)
            scale, offset = 1e-6, 0.0
            o = body + 8
            while o + 4 <= bend:
                code, olen = struct.unpack_from(bo + "HH", buf, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = buf[o + 4]
                    scale = 2.0 ** -(r & 0x7F) if r & 0x80 else 10.0 ** -r
                elif code == 14 and olen == 8:
                    offset = float(struct.unpack_from(bo + "q", buf, o + 4)[0])
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, scale, offset, snap))
            self.linktypes.append(lt)
        return bo, pos + blen, frame + (btype in kblocks.CUSTOM_TYPES)  # a frame, as Wireshark counts

    def progress(self) -> float | None:
        """Fraction of the file read so far (None for streams and followed files)."""
        if not self.size or self.follow:
            return None
        return min(1.0, self.bytes_read / self.size)


def _records(batches: Iterator[FrameBatch | None]) -> Iterator[Record | None]:
    for batch in batches:
        if batch is None:
            yield None
        else:
            yield from batch.records()


def _iface_arrays(ifaces: list[tuple[int, float, float, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The interfaces' link types, time scales, time offsets and snap lengths as arrays."""
    rows = ifaces or [(0, 1e-6, 0.0, 0)]
    lt, scale, offset, snap = zip(*rows, strict=True)
    return (np.array(lt, dtype=np.int32), np.array(scale, dtype=np.float64), np.array(offset, dtype=np.float64),
            np.array(snap, dtype=np.int64))


def check_linktypes(reader: CaptureReader) -> None:
    """Raise CaptureError when every interface of a pcapng uses an unsupported link type."""
    lts = reader.linktypes
    if lts and all(lt not in SUPPORTED_LINKTYPES for lt in lts):
        raise CaptureError(f"{reader.source}: unsupported link type {lts[0]}")


PEEK = 1 << 16  # bytes looked at to estimate how many frames a file holds


def estimate_frames(source: str, fd: int | None = None) -> int | None:
    """About how many frames a capture file holds: its size over the bytes per frame of the
    records in its first 64 KiB (read in place: nothing is consumed, even from a file on
    standard input). None for a pipe, or what does not read as a capture (the reader says why
    when it gets there).

    Args:
        source: a path, or ``"-"`` for standard input.
        fd: with ``"-"``, the file descriptor read instead of standard input's.
    """
    try:
        if source == "-":
            fd = sys.stdin.buffer.fileno() if fd is None else fd
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            at = os.lseek(fd, 0, os.SEEK_CUR)
            size = os.fstat(fd).st_size - at
            head = os.pread(fd, PEEK, at)
        else:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(PEEK)
    except (OSError, ValueError):
        return None
    frames, covered = _count_records(head)
    if covered == 0:
        return None
    if covered >= size or frames == 0:  # all of it seen; or frames longer than the look
        return frames if covered >= size else size // PEEK + 1
    return round(frames * size / covered)


def _count_records(head: bytes) -> tuple[int, int]:
    """The whole frames at the start of a capture's bytes, and the bytes they end at."""
    magic = head[:4]
    if magic in _PCAP_MAGICS:
        bo = _PCAP_MAGICS[magic][0]
        pos, n = 24, 0
        while pos + 16 <= len(head):
            incl = struct.unpack_from(bo + "I", head, pos + 8)[0]
            if pos + 16 + incl > len(head):
                break
            pos, n = pos + 16 + incl, n + 1
        return n, pos if len(head) >= 24 else 0
    if magic != _PCAPNG_SHB:
        return 0, 0
    pos, n, bo = 0, 0, "<"
    while pos + 12 <= len(head):
        if head[pos:pos + 4] == _PCAPNG_SHB:
            bo = _SHB_ORDER.get(head[pos + 8:pos + 12], bo)
        btype, blen = struct.unpack_from(bo + "II", head, pos)
        if blen < 12 or pos + blen > len(head):
            break
        n += btype in (2, 3, 6)  # obsolete, simple and enhanced packet blocks
        pos += blen
    return n, pos


def check_capture(path: str, follow: bool = False) -> None:
    """Fail now if ``path`` cannot be read as a capture, rather than once a viewer is up.

    Reads the file's header and first record; a followed file may still be empty or short
    (it is being written), so for it only a first four bytes that no capture starts with fail.

    Raises:
        CaptureError: no such file, unreadable, or not a pcap/pcapng capture.
    """
    if not follow:
        with CaptureReader(path) as reader:
            next(iter(reader.records()), None)
        return
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CaptureError(os_problem(path, e, wanted="a capture file")) from None
    if len(head) == 4 and head not in _PCAP_MAGICS and head != _PCAPNG_SHB:
        raise CaptureError(_unknown_magic(path, head))
