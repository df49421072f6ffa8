"""The kernel's events (``--kernel``) kept in a pcapng file: tcpview's custom blocks.

pcapng's Custom Block (draft-ietf-opsawg-pcapng, "Custom Block") holds a writer's own data,
which other readers skip: its type is ``0x00000BAD`` (tools that rewrite the file may copy
it) or ``0x40000BAD`` (they may not), then a Private Enterprise Number (PEN) saying whose data
it is, then the data, then options. tcpview writes ``0x00000BAD`` (the events stand on their
own time stamps: a file cut or merged by time keeps them valid) and reads both.

tcpview has no PEN registered with IANA. Its blocks use :data:`PEN` = ``0x74637076`` ("tcpv"
in ASCII, 1952673910): IANA gives numbers in order and is far below that, so no registered
enterprise's blocks carry it. The data starts with a magic as well, so a block of someone
else's that used the same number is not taken for ours; a block with another PEN is skipped.

Layout, version 1 (little-endian whatever the section's byte order; ``n`` events, columns
one after the other, no padding between them):

========  =========================  ====================================================
bytes     field                      meaning
========  =========================  ====================================================
4         magic ``TVKE``
2         version (1)                a reader skips the blocks of a version it does not know
2         flags (0)
4         n                          events in this block
8         lost                       events the kernel had lost by then (trace buffer full)
8 n       ts (f64)                   wall-clock seconds, exactly as the live run had them
n         kind (u8)                  ``tcpview.sources.tracefs.formats.K_*``
n         fam (u8)                   0, 4 or 6: which addresses follow
n         old (i8)                   the kernel's state before (or the socket's state)
n         new (i8)                   the state after (or the congestion state)
4 n       pid (i32)
8 n       sk (u64)                   the socket's kernel address
2 n       sport, then 2 n dport      (u16 each)
8 n4      IPv4: local 4, remote 4    for each event with fam 4, in order
32 n6     IPv6: local 16, remote 16  for each event with fam 6, in order
4 np x7   cwnd, ssthresh, srtt,      (u32 each column) for each ``tcp_probe`` event, in order
          snd_wnd, snd_nxt,
          snd_una, data_len
========  =========================  ====================================================

then zero bytes to a multiple of 4, as pcapng wants, and no options. An event takes 36 bytes
(IPv4), 28 more for a ``tcp_probe``; a :data:`~tcpview.sources.tracefs.decode.KEVENT` row
takes 105 in memory. Not kept: the trace clock (``mono``), the CPU and the socket cookie,
which nothing shown reads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from .tracefs.decode import KEVENT, kevent_array
from .tracefs.formats import K_PROBE

CUSTOM_COPY, CUSTOM_NO_COPY = 0x00000BAD, 0x40000BAD
CUSTOM_TYPES = (CUSTOM_COPY, CUSTOM_NO_COPY)
"""pcapng's custom block types."""

PEN = 0x74637076
"""The Private Enterprise Number tcpview's blocks carry (not registered: see above)."""

MAGIC = b"TVKE"
VERSION = 1
_HEAD = struct.Struct("<4sHHIQ")
MAX_EVENTS = 65536
"""Events per block at most (a block stays well under a reader's record limit)."""

_COLUMNS = (("ts", "<f8"), ("kind", "u1"), ("fam", "u1"), ("old", "i1"), ("new", "i1"), ("pid", "<i4"),
            ("sk", "<u8"), ("sport", "<u2"), ("dport", "<u2"))
_MIN_EVENT = sum(np.dtype(dt).itemsize for _name, dt in _COLUMNS)
_PROBE = ("cwnd", "ssthresh", "srtt", "snd_wnd", "snd_nxt", "snd_una", "data_len")


class KernelBlockError(ValueError):
    """A block of ours whose data does not add up (damage)."""


def encode(ev: np.ndarray, lost: int) -> bytes:
    """The custom blocks (little-endian) holding the :data:`KEVENT` rows ``ev`` (one block per
    :data:`MAX_EVENTS`; one empty block when there are none: it still says ``lost``)."""
    out = []
    for lo in range(0, max(len(ev), 1), MAX_EVENTS):
        out.append(_block(ev[lo:lo + MAX_EVENTS], lost))
    return b"".join(out)


def _block(ev: np.ndarray, lost: int) -> bytes:
    parts = [struct.pack("<I", PEN), _HEAD.pack(MAGIC, VERSION, 0, len(ev), lost)]
    for name, dt in _COLUMNS:
        parts.append(np.ascontiguousarray(ev[name], dtype=dt).tobytes())
    fam = ev["fam"]
    for f, width in ((4, 4), (6, 16)):
        rows = fam == f
        if rows.any():
            pair = np.concatenate([ev["saddr"][rows][:, :width], ev["daddr"][rows][:, :width]], axis=1)
            parts.append(np.ascontiguousarray(pair, dtype=np.uint8).tobytes())
    probe = ev["kind"] == K_PROBE
    if probe.any():
        p = ev[probe]
        for name in _PROBE:
            parts.append(np.ascontiguousarray(p[name], dtype="<u4").tobytes())
    body = b"".join(parts)
    body += b"\0" * (-len(body) % 4)
    blen = len(body) + 12
    return struct.pack("<II", CUSTOM_COPY, blen) + body + struct.pack("<I", blen)


def decode(data: bytes | memoryview, start: int, end: int, bo: str) -> tuple[np.ndarray, int] | None:
    """Read the custom block data in ``data[start:end]`` (from its PEN on; ``bo`` the
    section's byte order, which the PEN is written in): ``(events, lost)``, or None for a
    block that is not ours or of a later version (skipped).

    Raises:
        KernelBlockError: a block of ours that is cut short or does not add up.
    """
    if end - start < 4 or struct.unpack_from(bo + "I", data, start)[0] != PEN:
        return None
    p = start + 4
    if end - p < _HEAD.size or bytes(data[p:p + 4]) != MAGIC:
        return None  # someone else's data under the same number
    _magic, version, _flags, n, lost = _HEAD.unpack_from(data, p)
    if version != VERSION:
        return None
    p += _HEAD.size
    if n * _MIN_EVENT > end - p:  # before making room for them: a damaged count can say billions
        raise KernelBlockError("kernel-event block cut short")
    ev = kevent_array(n)
    cols: dict[str, np.ndarray] = {}
    for name, dt in _COLUMNS:
        p, cols[name] = _take(data, p, end, dt, n)
        ev[name] = cols[name]
    fam = cols["fam"]
    for f, width in ((4, 4), (6, 16)):
        rows = np.flatnonzero(fam == f)
        p, pair = _take(data, p, end, "u1", len(rows) * 2 * width)
        pair = pair.reshape(len(rows), 2 * width)
        ev["saddr"][rows, :width] = pair[:, :width]
        ev["daddr"][rows, :width] = pair[:, width:]
    probe = np.flatnonzero(cols["kind"] == K_PROBE)
    for name in _PROBE:
        p, col = _take(data, p, end, "<u4", len(probe))
        ev[name][probe] = col
    ev["mono"] = np.round(ev["ts"] * 1e9).astype(np.int64)  # an order only: the trace clock is not kept
    return ev, int(lost)


def _take(data: bytes | memoryview, p: int, end: int, dt: str, n: int) -> tuple[int, np.ndarray]:
    size = np.dtype(dt).itemsize * n
    if p + size > end:
        raise KernelBlockError("kernel-event block cut short")
    return p + size, np.frombuffer(data, dtype=dt, count=n, offset=p)


def take(data: bytes | memoryview, start: int, end: int, bo: str,
         to: Callable[[np.ndarray, int], None] | None) -> bool:
    """A custom block's data (see :func:`decode`): the events of one of tcpview's handed to
    ``to`` (when set); whether it was one.

    Raises:
        KernelBlockError: a block of ours that is cut short or does not add up.
    """
    got = decode(data, start, end, bo)
    if got is not None and to is not None:
        to(*got)
    return got is not None


def holds_kernel_events(path: str, peek: int = 1 << 16) -> bool:
    """Whether the capture file ``path`` is a pcapng with a block of tcpview's kernel events in
    its first ``peek`` bytes (``live --kernel -w`` writes an empty one when it makes the file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(peek)
    except OSError:
        return False
    pos, bo = 0, "<"
    while pos + 12 <= len(head) and (pos or head[:4] == b"\n\r\r\n"):
        if head[pos:pos + 4] == b"\n\r\r\n":
            bo = ">" if head[pos + 8:pos + 12] == b"\x1a\x2b\x3c\x4d" else "<"
        btype, blen = struct.unpack_from(bo + "II", head, pos)
        if blen < 12 or blen % 4 or pos + blen > len(head):
            return False
        if btype in CUSTOM_TYPES:
            try:
                if decode(head, pos + 8, pos + blen - 4, bo) is not None:
                    return True
            except KernelBlockError:
                return False
        pos += blen
    return False


__all__ = ["CUSTOM_TYPES", "KEVENT", "PEN", "KernelBlockError", "decode", "encode", "holds_kernel_events", "take"]
