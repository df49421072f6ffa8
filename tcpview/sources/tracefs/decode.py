"""The compiled decoder of ring-buffer pages read from ``trace_pipe_raw``.

A page (``kernel/trace/ring_buffer.c``, ``struct buffer_data_page``) starts with the time
stamp of its first event and a commit word: the bytes of events on it, and two flags, events
missed before this page (bit 31) and their count stored after the events (bit 30). Then
events, each a 32-bit header (``include/linux/ring_buffer.h``): ``type_len`` in the low 5
bits, ``time_delta`` (ns since the previous event) in the high 27:

- ``type_len`` 1..28: a data event of ``type_len * 4`` bytes after the header;
- 0: a data event whose length (plus 4) is the next 32-bit word, its data after it;
- 29: padding (a discarded event, its length in the next word); with no delta, the rest of
  the page is empty;
- 30: a time extend: ``(next word << 27) + time_delta`` is added to the time;
- 31: an absolute time stamp (``next word << 27 | time_delta``, the low 59 bits).

Each data event starts with ``common_type`` (its event id) and ``common_pid``; its fields are
where the event's ``format`` file says (:func:`tcpview.sources.tracefs.formats.layout`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...jit import helper, kernel
from .formats import (
    F_CONG,
    F_COOKIE,
    F_CWND,
    F_DADDR,
    F_DADDR6,
    F_DATALEN,
    F_DPORT,
    F_DSA,
    F_FAMILY,
    F_NEW,
    F_OLD,
    F_SADDR,
    F_SADDR6,
    F_SKADDR,
    F_SNDNXT,
    F_SNDUNA,
    F_SNDWND,
    F_SPORT,
    F_SRTT,
    F_SSA,
    F_SSTHRESH,
    F_STATE,
    N_FIELDS,
)

KEVENT = np.dtype([
    ("ts", np.float64),  # wall-clock seconds, as a capture's time stamps
    ("mono", np.int64),  # the trace clock (CLOCK_MONOTONIC ns)
    ("sk", np.uint64),  # the socket's kernel address: one endpoint for its whole life
    ("cookie", np.uint64),  # the socket's cookie (0 where the event has none)
    ("pid", np.int32),  # the task running when it happened (often not the socket's owner)
    ("kind", np.uint8),  # formats.K_*
    ("cpu", np.uint8),
    ("fam", np.uint8),  # 4 or 6 (a v4-mapped IPv6 address is given as IPv4)
    ("old", np.int8),  # the kernel's TCP state before (state changes), or the socket's state
    ("new", np.int8),  # the kernel's TCP state after, or the congestion state (cong_state)
    ("sport", np.uint16),  # the local end's port
    ("dport", np.uint16),
    ("saddr", np.uint8, (16,)),  # the local address (IPv4 in the first 4 bytes)
    ("daddr", np.uint8, (16,)),
    ("cwnd", np.uint32),  # tcp_probe: snd_cwnd, ssthresh, srtt (us), snd_wnd, ...
    ("ssthresh", np.uint32),
    ("srtt", np.uint32),
    ("snd_wnd", np.uint32),
    ("snd_nxt", np.uint32),
    ("snd_una", np.uint32),
    ("data_len", np.uint32),
])
"""One kernel event, decoded."""

AF_INET, AF_INET6 = 2, 10
PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
COMMIT_MASK = (1 << 30) - 1
ABS_MASK = (1 << 59) - 1


def kevent_array(n: int) -> np.ndarray:
    """An empty record array of ``n`` :data:`KEVENT` rows."""
    return np.zeros(n, dtype=KEVENT).view(np.recarray)


@helper
def _u16(b: np.ndarray, p: Any) -> Any:  # numba: an int64
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@helper
def _u32(b: np.ndarray, p: Any) -> Any:  # numba: an int64
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@helper
def _u64(b: np.ndarray, p: Any) -> Any:  # numba: a uint64
    return np.uint64(_u32(b, p)) | (np.uint64(_u32(b, p + 4)) << np.uint64(32))


@helper
def _addr(b: np.ndarray, data: Any, fam: Any, off4: Any, off6: Any, out: np.ndarray) -> int:
    """Copy an address (the IPv6 field for an IPv6 socket, else the IPv4 one) into ``out``;
    returns 4 or 6 (a v4-mapped IPv6 address is given as IPv4), 0 if there is none."""
    if fam == AF_INET6 and off6 >= 0:
        mapped = True
        for i in range(10):
            if b[data + off6 + i] != 0:
                mapped = False
        if b[data + off6 + 10] != 0xFF or b[data + off6 + 11] != 0xFF:
            mapped = False
        if mapped:
            for i in range(4):
                out[i] = b[data + off6 + 12 + i]
            return 4
        for i in range(16):
            out[i] = b[data + off6 + i]
        return 6
    if off4 >= 0:
        for i in range(4):
            out[i] = b[data + off4 + i]
        return 4
    return 0


@helper
def _sockaddr(b: np.ndarray, p: int, out: np.ndarray) -> tuple:
    """A ``struct sockaddr_in`` / ``sockaddr_in6`` at ``p`` into ``out``: (4 or 6 or 0, port)."""
    fam = _u16(b, p)
    port = (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])  # network order
    if fam == AF_INET:
        return _addr(b, p, AF_INET, 4, -1, out), port
    if fam == AF_INET6:
        return _addr(b, p, AF_INET6, -1, 8, out), port
    return 0, port


@helper
def _event(b: np.ndarray, data: int, length: int, kind: int, lay: np.ndarray, r) -> None:
    """Fill row ``r`` from the fields of one event (kind ``kind``, ``lay`` its offsets)."""
    r.pid = np.int32(_u32(b, data + 4))
    if lay[F_SKADDR] >= 0:
        r.sk = _u64(b, data + lay[F_SKADDR])
    if lay[F_COOKIE] >= 0:
        r.cookie = _u64(b, data + lay[F_COOKIE])
    if lay[F_SSA] >= 0:
        got, sport = _sockaddr(b, data + lay[F_SSA], r.saddr)
        r.fam = got
        r.sport = sport
        if lay[F_DSA] >= 0:
            _got, dport = _sockaddr(b, data + lay[F_DSA], r.daddr)
            r.dport = dport
    elif lay[F_FAMILY] >= 0:
        fam = _u16(b, data + lay[F_FAMILY])
        r.fam = _addr(b, data, fam, lay[F_SADDR], lay[F_SADDR6], r.saddr)
        _addr(b, data, fam, lay[F_DADDR], lay[F_DADDR6], r.daddr)
    if lay[F_SPORT] >= 0:
        r.sport = _u16(b, data + lay[F_SPORT])
    if lay[F_DPORT] >= 0:
        r.dport = _u16(b, data + lay[F_DPORT])
    if lay[F_OLD] >= 0:
        r.old = np.int8(_u32(b, data + lay[F_OLD]))
    elif lay[F_STATE] >= 0:
        r.old = np.int8(_u32(b, data + lay[F_STATE]))
    if lay[F_NEW] >= 0:
        r.new = np.int8(_u32(b, data + lay[F_NEW]))
    elif lay[F_CONG] >= 0:
        r.new = np.int8(b[data + lay[F_CONG]])
    if lay[F_CWND] >= 0:
        r.cwnd = _u32(b, data + lay[F_CWND])
    if lay[F_SSTHRESH] >= 0:
        r.ssthresh = _u32(b, data + lay[F_SSTHRESH])
    if lay[F_SRTT] >= 0:
        r.srtt = _u32(b, data + lay[F_SRTT])
    if lay[F_SNDWND] >= 0:
        r.snd_wnd = _u32(b, data + lay[F_SNDWND])
    if lay[F_SNDNXT] >= 0:
        r.snd_nxt = _u32(b, data + lay[F_SNDNXT])
    if lay[F_SNDUNA] >= 0:
        r.snd_una = _u32(b, data + lay[F_SNDUNA])
    if lay[F_DATALEN] >= 0:
        r.data_len = _u16(b, data + lay[F_DATALEN])


@kernel
def decode_pages(b: np.ndarray, npages: int, page_size: int, data_off: int, cpu: int,
                 kind_of: np.ndarray, lay: np.ndarray, wall_off_ns: int, out, n: int, stats: np.ndarray) -> int:
    """Decode ``npages`` pages of ``b`` (one CPU's, in order) into ``out`` from row ``n``.

    Returns the rows filled in all. ``stats`` is added to: [0] events missed as the pages say
    (a page that says some were missed without a count adds 1), [1] pages damaged (stopped
    at), [2] events of other kinds skipped. ``wall_off_ns`` turns the trace clock into wall
    time. ``out`` must have room for every event (at least ``npages * page_size // 12``).
    """
    for pg in range(npages):
        base = pg * page_size
        ts = np.int64(_u64(b, base))
        commit = np.int64(_u64(b, base + 8))
        size = commit & COMMIT_MASK
        if commit & MISSED_EVENTS:
            if commit & MISSED_STORED and data_off + size + 8 <= page_size:
                stats[0] += np.int64(_u64(b, base + data_off + size))
            else:
                stats[0] += 1
        if data_off + size > page_size:
            stats[1] += 1
            continue
        p = base + data_off
        end = p + size
        while p + 4 <= end:
            h = _u32(b, p)
            tl = h & 31
            delta = h >> 5
            if tl == PADDING:
                if delta == 0:
                    break  # the rest of the page is empty
                ts += delta
                p += 4 + _u32(b, p + 4)
                continue
            if tl == TIME_EXTEND:
                ts += (_u32(b, p + 4) << 27) + delta
                p += 8
                continue
            if tl == TIME_STAMP:
                ts = (ts & ~ABS_MASK) | ((_u32(b, p + 4) << 27) | delta)
                p += 8
                continue
            if tl == 0:
                length = _u32(b, p + 4) - 4
                data = p + 8
                p = data + ((length + 3) & ~3)
            else:
                length = tl * 4
                data = p + 4
                p = data + length
            ts += delta
            if p > end or length < 8:
                stats[1] += 1
                break
            kind = kind_of[_u16(b, data)]
            if kind <= 0:
                stats[2] += 1
                continue
            if length < lay[kind, N_FIELDS]:  # shorter than its format says: damage
                stats[1] += 1
                continue
            r = out[n]
            _clear(r)
            r.mono = ts
            r.ts = (ts + wall_off_ns) * 1e-9
            r.kind = kind
            r.cpu = cpu
            _event(b, data, length, kind, lay[kind], r)
            n += 1
    return n


@helper
def _clear(r) -> None:
    r.sk = 0
    r.cookie = 0
    r.fam = 0
    r.old = 0
    r.new = 0
    r.sport = 0
    r.dport = 0
    for i in range(16):
        r.saddr[i] = 0
        r.daddr[i] = 0
    r.cwnd = 0
    r.ssthresh = 0
    r.srtt = 0
    r.snd_wnd = 0
    r.snd_nxt = 0
    r.snd_una = 0
    r.data_len = 0
