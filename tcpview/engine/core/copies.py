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
side holds, and side 0's first copy not yet paired and its last (a chain through ``nxt``)."""
CONN_ROW = 0
"""The connections table's column of the connection's first row plus one (0: a free slot)."""


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


def tables_for(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty tables for :func:`pair_copies` over ``rows`` rows: the copies' (a row of 32-bit
    integers per slot: one look, one cache line) and the connections' (first row, id), each
    a power of two above twice ``rows`` slots (zeros: the pages are only touched where a key
    lands)."""
    slots = 1 << max(4, (2 * rows).bit_length())
    return np.zeros((slots, 5), dtype=np.int32), np.zeros((slots, 2), dtype=np.int32)


@inlined
def _same(keys, a: Int, b: Int) -> bool:
    """Whether rows ``a`` and ``b`` are copies of one segment."""
    ka, kb = keys[a], keys[b]
    return (ka.conn == kb.conn and ka.up == kb.up and ka.seq == kb.seq and ka.ack == kb.ack and ka.len == kb.len
            and ka.win == kb.win and ka.fl == kb.fl)


@kernel
def pair_copies(keys, side: np.ndarray, table: np.ndarray, conns: np.ndarray, conn_of: np.ndarray,
                slot_of: np.ndarray, nxt: np.ndarray, partner: np.ndarray, uneven: np.ndarray) -> Int:
    """Pair each row of ``side`` 1 with the copy of its segment that ``side`` 0 holds, if any,
    and number the connections.

    Args:
        keys: the segments (:data:`KEY`), each side's in its order.
        side: per row, 0 (the first capture), 1 (the other) or -1 (neither: left alone).
        table, conns: empty tables (:func:`tables_for`).
        conn_of: out: each row's connection, numbered from 0 in order of first row.
        slot_of, nxt: room for a 32-bit integer per row.
        partner: out: for a row of side 1, the row of its copy on side 0 (-1: none); -1 elsewhere.
        uneven: out: whether the two sides hold different numbers of copies of the row's
            segment, both at least one (there the k-th with the k-th may be wrong: a segment
            sent again, its first copy lost between).

    Returns:
        How many connections were numbered.
    """
    mask = len(table) - 1
    n = len(side)
    n_conns = 0
    for r in range(n):
        conn_of[r] = -1
        k = side[r]
        if k < 0:
            continue
        s = keys[r]
        # the connection
        c = s.conn & mask
        while True:
            q = conns[c, 0]
            if q == 0:
                conns[c, 0] = r + 1
                conns[c, 1] = n_conns
                n_conns += 1
                break
            if keys[q - 1].conn == s.conn:
                break
            c = (c + 1) & mask
        conn_of[r] = conns[c, 1]
        # the segment
        h = _fold(_fold(_fold(_fold(s.conn, s.seq), s.ack), np.int64(s.len)),
                  (np.int64(s.win) << 16) | (np.int64(s.fl) << 8) | np.int64(s.up))
        i = h & mask
        while True:
            q = table[i, ROW]
            if q == 0:
                table[i, ROW] = r + 1
                break
            if _same(keys, q - 1, r):
                break
            i = (i + 1) & mask
        slot_of[r] = i
        if k == 0:
            table[i, N0] += 1
            nxt[r] = -1
            if table[i, N0] == 1:
                table[i, HEAD] = r
            else:
                nxt[table[i, TAIL]] = r
            table[i, TAIL] = r
        else:
            table[i, N1] += 1
    # the k-th copy on side 1 with the k-th on side 0
    for r in range(n):
        partner[r] = -1
        uneven[r] = False
        k = side[r]
        if k < 0:
            continue
        i = slot_of[r]
        n0, n1 = table[i, N0], table[i, N1]
        uneven[r] = n0 != n1 and n0 > 0 and n1 > 0
        if k == 1 and n0 > 0:
            q = table[i, HEAD]
            if q >= 0:
                partner[r] = q
                table[i, HEAD] = nxt[q]
    return n_conns
