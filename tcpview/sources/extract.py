"""Frames of a capture file found again by number: their bytes (for a connection's payload)
and a new capture holding only them (``tcpview export --format pcap``).

The store keeps decoded fields, not bytes, so both read the file once more (the reader does a
million frames in a tenth of a second) and pick the frames asked for. A pcap source is copied
record by record, headers and all, after its own file header: time stamps (micro- or
nanosecond), lengths and link type stay exactly as they were. A pcapng source becomes a
pcapng file with one interface per link type and microsecond time stamps.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from ..records import Records
from .batch import FrameBatch
from .merge import CaptureMap, MergedSource
from .pcap import _PCAP_MAGICS, CaptureError, CaptureReader


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as the capture holds it."""

    number: int
    linktype: int
    ts: float
    origlen: int
    data: bytes


def _batches(path: str | CaptureMap) -> Generator[FrameBatch | None, None, None]:
    """A capture's batches, or several captures' merged again as they were (the same numbers)."""
    if isinstance(path, CaptureMap):
        stop = threading.Event()
        batches = MergedSource(path.files, path.offsets, path.skip).batches(stop)
        try:
            yield from batches
        finally:
            batches.close()
        return
    with CaptureReader(path) as reader:
        yield from reader.batches()


def _picked(path: str | CaptureMap, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, Records, np.ndarray]]:
    """(buffer, batch frames, indices of the wanted ones) for each batch with any, in order."""
    if path == "-":
        raise CaptureError("reading frames again needs a capture file, not a stream")
    if not len(wanted):
        return
    last = int(wanted[-1])
    batches = _batches(path)
    try:
        for batch in batches:
            if batch is None or not len(batch):
                continue
            numbers = batch.frames.frame
            hit = np.flatnonzero(np.isin(numbers, wanted))
            if len(hit):
                yield batch.buf, batch.frames, hit
            if int(numbers[-1]) >= last:
                return
    finally:
        batches.close()


def read_frames(path: str | CaptureMap, numbers: Iterable[int]) -> dict[int, Frame]:
    """The frames ``numbers`` (1-based, as the engine numbers them) of capture file ``path``
    (or of several captures merged: their :class:`CaptureMap`)."""
    wanted = np.unique(np.fromiter(numbers, dtype=np.int64))
    out: dict[int, Frame] = {}
    for buf, frames, hit in _picked(path, wanted):
        for i in hit.tolist():
            f = frames[i]
            off, caplen = int(f.off), int(f.caplen)
            out[int(f.frame)] = Frame(int(f.frame), int(f.linktype), float(f.ts), int(f.origlen),
                                      bytes(buf[off:off + caplen]))
    return out


def write_frames(path: str | CaptureMap, numbers: Iterable[int], out: IO[bytes]) -> int:
    """Write a capture of the frames ``numbers`` of ``path`` to ``out``; returns how many.
    Frames of several captures merged (their :class:`CaptureMap`) are written as a pcapng."""
    wanted = np.unique(np.fromiter(numbers, dtype=np.int64))
    if isinstance(path, CaptureMap):
        return _write_pcapng(path, wanted, out)
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:4] in _PCAP_MAGICS:
        out.write(head)
        n = 0
        for buf, frames, hit in _picked(path, wanted):
            for i in hit.tolist():
                off, caplen = int(frames[i].off), int(frames[i].caplen)
                out.write(bytes(buf[off - 16: off + caplen]))  # the record header and its bytes
                n += 1
        return n
    return _write_pcapng(path, wanted, out)


def _write_pcapng(path: str | CaptureMap, wanted: np.ndarray, out: IO[bytes]) -> int:
    out.write(struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28))
    iface: dict[int, int] = {}
    n = 0
    for buf, frames, hit in _picked(path, wanted):
        for i in hit.tolist():
            f = frames[i]
            lt = int(f.linktype)
            if lt not in iface:
                iface[lt] = len(iface)
                out.write(struct.pack("<IIHHII", 1, 20, lt, 0, 0, 20))
            off, caplen = int(f.off), int(f.caplen)
            data = bytes(buf[off: off + caplen])
            usec = round(float(f.ts) * 1e6)
            pad = (-len(data)) % 4
            blen = 32 + len(data) + pad
            out.write(struct.pack("<IIIIIII", 6, blen, iface[lt], usec >> 32, usec & 0xFFFFFFFF, caplen,
                                  int(f.origlen)))
            out.write(data + b"\0" * pad + struct.pack("<I", blen))
            n += 1
    return n
