"""Compiled scanners that find the frames in a chunk of a pcap or pcapng capture.

They read record (or block) headers only and fill a :data:`~tcpview.sources.batch.FRAME`
record array with where each frame is and its time; the bytes stay in the chunk. A scanner
stops at the end of the chunk (a record cut by the chunk's end is left for the next one), at
damage, and (pcapng) at any block it leaves to Python: section and interface headers, and
custom blocks (tcpview's hold the kernel's events: :mod:`tcpview.sources.kblocks`).
"""

from __future__ import annotations

import numpy as np

from ..jit import Int, helper, kernel

# why a scanner stopped
DONE, CORRUPT, CORRUPT_PACKET, BAD_INTERFACE, PYTHON_BLOCK, FULL = range(6)

MAX_ORIGLEN = 0x7FFFFFFF  # a frame's original length is an int32 (FRAME); a damaged one can say more


@helper
def _u32(b: np.ndarray, p: int, big: bool) -> Int:
    if big:
        return (np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16) | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@helper
def _u16(b: np.ndarray, p: int, big: bool) -> Int:
    if big:
        return (np.int64(b[p]) << 8) | np.int64(b[p + 1])
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@kernel
def scan_pcap(b: np.ndarray, pos: int, end: int, big: bool, scale: float, linktype: int, limit: int,
              frame: int, out) -> tuple:
    """Records of a pcap file in ``b[pos:end]``: ``(frames found, position after them, why it
    stopped)``. ``frame`` is the number of the frame before the first; ``scale`` seconds per
    unit of the fraction field (1e-6 or 1e-9); a record longer than ``limit`` is damage."""
    n = 0
    while pos + 16 <= end:
        if n >= len(out):
            return n, pos, FULL
        incl = _u32(b, pos + 8, big)
        if incl > limit:
            return n, pos, CORRUPT
        if pos + 16 + incl > end:
            break
        orig = _u32(b, pos + 12, big)
        f = out[n]
        f.off = pos + 16
        f.caplen = incl
        f.origlen = min(max(orig, incl), MAX_ORIGLEN)
        f.ts = _u32(b, pos, big) + _u32(b, pos + 4, big) * scale
        f.linktype = linktype
        frame += 1
        f.frame = frame
        n += 1
        pos += 16 + incl
    return n, pos, DONE


@kernel
def scan_pcapng(b: np.ndarray, pos: int, end: int, big: bool, if_lt: np.ndarray, if_scale: np.ndarray,
                if_off: np.ndarray, if_snap: np.ndarray, n_if: int, limit: int, frame: int, out) -> tuple:
    """Packet blocks of a pcapng section in ``b[pos:end]``: ``(frames found, position after
    them, why it stopped)``. Enhanced, simple and obsolete packet blocks become frames;
    other blocks are skipped, but for section and interface headers and custom blocks, which
    stop the scan (PYTHON_BLOCK) so the caller reads them."""
    n = 0
    while pos + 12 <= end:
        if n >= len(out):
            return n, pos, FULL
        btype = _u32(b, pos, big)
        blen = _u32(b, pos + 4, big)
        if btype == 0x0A0D0D0A or btype == 1 or btype == 5 or btype == 0x00000BAD or btype == 0x40000BAD:
            return n, pos, PYTHON_BLOCK
        if blen < 12 or blen % 4 or blen > limit:
            return n, pos, CORRUPT
        if pos + blen > end:
            break
        body = pos + 8
        bend = pos + blen - 4
        if btype == 6 or btype == 2 or btype == 3:
            if btype == 3:  # simple packet block: interface 0, no time stamp
                if n_if == 0:
                    return n, pos, BAD_INTERFACE
                if blen < 16:  # no room for its original length
                    return n, pos, CORRUPT_PACKET
                orig = _u32(b, body, big)
                incl = min(orig, bend - body - 4)
                if if_snap[0] > 0:
                    incl = min(incl, np.int64(if_snap[0]))
                iface: Int = 0
                data = body + 4
                ts = 0.0
            else:
                if blen < 32:  # too short for its fixed fields: read none of them
                    return n, pos, CORRUPT_PACKET
                if btype == 6:
                    iface = _u32(b, body, big)
                    th = _u32(b, body + 4, big)
                    tl = _u32(b, body + 8, big)
                    incl = _u32(b, body + 12, big)
                    orig = _u32(b, body + 16, big)
                else:
                    iface = _u16(b, body, big)
                    th = _u32(b, body + 4, big)
                    tl = _u32(b, body + 8, big)
                    incl = _u32(b, body + 12, big)
                    orig = _u32(b, body + 16, big)
                if iface >= n_if:
                    return n, pos, BAD_INTERFACE
                data = body + 20
                if data + incl > bend:
                    return n, pos, CORRUPT_PACKET
                ts = (th * 4294967296.0 + tl) * if_scale[iface] + if_off[iface]
            f = out[n]
            f.off = data
            f.caplen = incl
            f.origlen = min(max(orig, incl), MAX_ORIGLEN)
            f.ts = ts
            f.linktype = if_lt[iface]
            frame += 1
            f.frame = frame
            n += 1
        pos += blen
    return n, pos, DONE


@kernel
def scan_tpacket(b: np.ndarray, first: int, npkts: int, linktype: int, frame: int, out,
                 stamp: np.ndarray) -> int:
    """Packets of a ``TPACKET_V3`` ring block (a live capture) into ``out``; returns how many.

    ``stamp`` gets each packet's (seconds, nanoseconds), which a saved pcap keeps exactly.
    """
    p = first
    n = min(npkts, len(out))
    for i in range(n):
        nxt = _u32(b, p, False)
        sec = _u32(b, p + 4, False)
        ns = _u32(b, p + 8, False)
        snap = _u32(b, p + 12, False)
        wlen = _u32(b, p + 16, False)
        mac = _u16(b, p + 24, False)
        f = out[i]
        f.off = p + mac
        f.caplen = snap
        f.origlen = wlen if wlen >= snap else snap
        f.ts = sec + ns * 1e-9
        f.linktype = linktype
        frame += 1
        f.frame = frame
        stamp[i, 0] = sec
        stamp[i, 1] = ns
        p += nxt
    return n
