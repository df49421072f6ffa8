"""Pairing the copies of each segment that two captures saw (two vantage points of the same
traffic), compiled: what a router does not change of a segment, read from each capture on its
own (:func:`segment_keys`), then one hash join (:func:`pair_copies`).

A segment both captures saw is in each of them once: the same sender and receiver (address
and port), sequence and acknowledgment numbers, payload length, window and flags. The k-th
copy the second capture holds of such a key goes with the k-th the first holds (each
capture's copies in its own order), in time linear in the rows. The rest (clocks, which copy
was sent, what was lost between) is :mod:`tcpview.engine.analysis.vantage`'s.
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, inlined, kernel
from .decode import (
    O_ACK,
    O_DPORT,
    O_DST_HI,
    O_DST_LO,
    O_FAM,
    O_FLAGS,
    O_PLEN,
    O_SEQ,
    O_SPORT,
    O_SRC_HI,
    O_SRC_LO,
    O_WIN,
    OK,
    decode_frame,
)

_H47 = 0x7FFFFFFFFFFF  # hashes stay below 2**47: no product or sum below overflows 64 bits

KEY = np.dtype([("frame", np.int64), ("ts", np.float64), ("conn", np.int64), ("seq", np.uint32),
                ("ack", np.uint32), ("len", np.int32), ("win", np.uint16), ("fl", np.uint8), ("up", np.uint8)])
"""A segment as the join sees it: its frame's number in its capture and time there; a hash
(below 2**47) of its connection's two ends, the lower first (the same both ways); its numbers,
payload length, raw window and flags; and ``up``: 0 when it went from the lower end to the
higher (ends ordered by address, then port)."""

ROW, N0, N1, HEAD, TAIL = range(5)
"""The copies table's columns: its key's first row plus one (0: a free slot), the copies each
capture holds, and the first's first copy not yet paired and its last (a chain through ``nxt``)."""
COLUMNS = 5


@inlined
def _fold(h: Int, x: Int) -> Int:
    """``h`` (below 2**47) with the 32-bit ``x`` mixed in."""
    h = h ^ (x & 0xFFFFFFFF)
    h = ((h & 0xFFFFFFFF) * 0x1BD1E995 + (h >> 32) * 0x1B873593) & _H47
    return h ^ (h >> 23)


@inlined
def _end(h: Int, hi: Int, lo: Int, port: Int) -> Int:
    """``h`` with an end (an address's two halves and a port) mixed in."""
    return _fold(_fold(_fold(_fold(_fold(h, hi >> 32), hi), lo >> 32), lo), port)


@kernel
def segment_keys(buf: np.ndarray, frames, fields: np.ndarray, out, at: Int) -> Int:
    """The :data:`KEY` of each TCP segment among ``frames`` (of ``buf``), into ``out`` from row
    ``at`` (room for every frame); ``fields``: room for one frame's decoded fields. Returns the
    row after the last written. A frame that is not a whole TCP segment (a fragment, say) is
    left out: its copies are read, not paired."""
    for k in range(len(frames)):
        f = frames[k]
        if decode_frame(buf, np.int64(f.off), np.int64(f.caplen), np.int64(f.origlen), np.int64(f.linktype),
                        fields) != OK:
            continue
        s_hi, s_lo, sp = fields[O_SRC_HI], fields[O_SRC_LO], fields[O_SPORT]
        d_hi, d_lo, dp = fields[O_DST_HI], fields[O_DST_LO], fields[O_DPORT]
        # unsigned order of the halves: flip the sign bit
        a_hi, b_hi = s_hi ^ -0x8000000000000000, d_hi ^ -0x8000000000000000
        a_lo, b_lo = s_lo ^ -0x8000000000000000, d_lo ^ -0x8000000000000000
        up = 0 if a_hi < b_hi or (a_hi == b_hi and (a_lo < b_lo or (a_lo == b_lo and sp < dp))) else 1
        h = fields[O_FAM]
        if up:
            h = _end(_end(h, d_hi, d_lo, dp), s_hi, s_lo, sp)
        else:
            h = _end(_end(h, s_hi, s_lo, sp), d_hi, d_lo, dp)
        o = out[at]
        o.frame = f.frame
        o.ts = f.ts
        o.conn = h
        o.seq = fields[O_SEQ]
        o.ack = fields[O_ACK]
        o.len = fields[O_PLEN]
        o.win = fields[O_WIN]
        o.fl = fields[O_FLAGS] & 0xFF
        o.up = up
        at += 1
    return at


PART_ROWS = 8192
"""About how many rows a partition of the join holds: its table (twice as many slots, 20
bytes each) stays in a core's cache, where one table for every row would miss on every look."""


def partitions_for(rows: int) -> int:
    """How many partitions :func:`pair_copies` cuts ``rows`` rows into (a power of two)."""
    return 1 << max(0, (rows // PART_ROWS).bit_length())


def tables_for(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Room for :func:`pair_copies`'s tables over ``rows`` rows: the connections' (zeros) and
    a partition's (anything), each of a power of two above twice ``rows`` slots. Only the
    pages a table uses are ever touched: a partition's table uses its first few slots."""
    slots = 1 << max(4, (2 * rows).bit_length())
    return np.zeros((slots, 2), dtype=np.int32), np.empty((slots, COLUMNS), dtype=np.int32)


@inlined
def _key(a, b, na: Int, r: Int):
    """Row ``r`` of the two captures' segments, the first's then the other's."""
    return a[r] if r < na else b[r - na]


@inlined
def _same(a, b, na: Int, x: Int, y: Int) -> bool:
    """Whether rows ``x`` and ``y`` are copies of one segment."""
    kx, ky = _key(a, b, na, x), _key(a, b, na, y)
    return (kx.conn == ky.conn and kx.up == ky.up and kx.seq == ky.seq and kx.ack == ky.ack and kx.len == ky.len
            and kx.win == ky.win and kx.fl == ky.fl)


@kernel
def pair_copies(a, b, parts: Int, conns: np.ndarray, table: np.ndarray, hs: np.ndarray, order: np.ndarray,
                starts: np.ndarray, conn_of: np.ndarray, group: np.ndarray, nxt: np.ndarray, partner: np.ndarray,
                uneven: np.ndarray) -> Int:
    """Pair each segment of capture ``b`` with the copy of it that capture ``a`` holds, if any
    (the k-th copy in ``b`` of a segment with the k-th in ``a``), and number the connections.
    Rows are ``a``'s, then ``b``'s.

    The rows are first cut by their hash into ``parts`` partitions (kept in order), each then
    joined with a table of its own, small enough to stay in cache.

    Args:
        a, b: the two captures' segments (:data:`KEY`), each in its order.
        parts: how many partitions (:func:`partitions_for`: a power of two).
        conns: zeros, a power of two above twice the rows slots, two columns (32-bit).
        table: room for a partition's table: a power of two above twice the rows of the
            largest partition slots (or more), :data:`COLUMNS` columns (32-bit).
        hs, order: room for a row each (64-, 32-bit); starts: room for ``parts + 1``.
        conn_of: out: each row's connection, numbered from 0 in order of first row.
        group: out: a number each segment's copies share (and no other segment's).
        nxt: room for a 32-bit integer per row.
        partner: out: for a row of ``b``, the row of its copy in ``a`` (-1: none); -1 elsewhere.
        uneven: out: whether the two captures hold different numbers of copies of the row's
            segment, both at least one (there the k-th with the k-th may be wrong: a segment
            sent again, its first copy lost between).

    Returns:
        How many connections were numbered.
    """
    na = len(a)
    n = na + len(b)
    if n == 0:
        return 0
    cmask = len(conns) - 1
    n_conns = 0
    for p in range(parts + 1):
        starts[p] = 0
    for r in range(n):
        s = _key(a, b, na, r)
        c = s.conn & cmask
        while True:
            q = conns[c, 0]
            if q == 0:
                conns[c, 0] = r + 1
                conns[c, 1] = n_conns
                n_conns += 1
                break
            if _key(a, b, na, q - 1).conn == s.conn:
                break
            c = (c + 1) & cmask
        conn_of[r] = conns[c, 1]
        h = _fold(_fold(_fold(_fold(s.conn, s.seq), s.ack), np.int64(s.len)),
                  (np.int64(s.win) << 16) | (np.int64(s.fl) << 8) | np.int64(s.up))
        hs[r] = h
        starts[((h >> 24) & (parts - 1)) + 1] += 1
    for p in range(parts):
        starts[p + 1] += starts[p]
    for p in range(parts):  # (each partition's next free place, for the moment)
        nxt[p] = starts[p]
    for r in range(n):
        p = (hs[r] >> 24) & (parts - 1)
        order[nxt[p]] = r
        nxt[p] += 1
    for p in range(parts):
        lo, hi = starts[p], starts[p + 1]
        slots = 16
        while slots < 2 * (hi - lo):
            slots *= 2
        mask = slots - 1
        for i in range(slots):
            table[i, ROW] = 0
            table[i, N0] = 0
            table[i, N1] = 0
        for x in range(lo, hi):
            r = order[x]
            i = hs[r] & mask
            while True:
                q = table[i, ROW]
                if q == 0:
                    table[i, ROW] = r + 1
                    break
                if hs[q - 1] == hs[r] and _same(a, b, na, q - 1, r):
                    break
                i = (i + 1) & mask
            group[r] = (p << 32) | i
            if r < na:
                table[i, N0] += 1
                nxt[r] = -1
                if table[i, N0] == 1:
                    table[i, HEAD] = r
                else:
                    nxt[table[i, TAIL]] = r
                table[i, TAIL] = r
            else:
                table[i, N1] += 1
        for x in range(lo, hi):
            r = order[x]
            i = group[r] & 0xFFFFFFFF
            n0, n1 = table[i, N0], table[i, N1]
            uneven[r] = n0 != n1 and n0 > 0 and n1 > 0
            partner[r] = -1
            if r >= na and n0 > 0:
                q = table[i, HEAD]
                if q >= 0:
                    partner[r] = q
                    table[i, HEAD] = nxt[q]
    return n_conns
