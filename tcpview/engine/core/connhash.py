"""The connection table's index: an open-addressing hash table from a 4-tuple (either way round)
to the row of the connection that owns it, in a plain integer array (a slot holds that row + 1;
0 is an empty slot)."""

from __future__ import annotations

import numpy as np

from ...jit import Int, helper, inlined, kernel
from .columns import F_IN_TABLE

# -- the connection table ---------------------------------------------------------------------------
_H47 = 0x7FFFFFFFFFFF  # hashes stay below 2**47: no product or sum below overflows 64 bits
EMPTY = 0
"""A free slot of the hash table (a used one holds its connection's row + 1)."""
NO_CONN = -1
"""The row :func:`find` gives when no connection has the 4-tuple."""


@helper
def _ep_hash(hi: Int, lo: Int, port: Int) -> Int:
    h = (((lo & 0xFFFFFFFF) * 0x5BD1E995) & _H47) + ((((lo >> 32) & 0xFFFFFFFF) * 0x1B873593) & _H47)
    h += ((((hi & 0xFFFFFFFF) * 0x27D4EB2F) & _H47) + ((((hi >> 32) & 0xFFFFFFFF) * 0x165667B1) & _H47)
          + port * 0x3C6EF372)
    return h & _H47


@helper
def slot(nslots: Int, fam: Int, a_hi: Int, a_lo: Int, a_port: Int, b_hi: Int, b_lo: Int, b_port: Int) -> Int:
    """The first slot to look at: the same for both directions (the endpoints' hashes add up)."""
    h = (_ep_hash(a_hi, a_lo, a_port) + _ep_hash(b_hi, b_lo, b_port) + fam) & _H47
    h ^= h >> 23
    h = ((h & 0x7FFFFFFF) * 0x5BD1E995 + ((h >> 31) & 0xFFFF) * 0x1B873593) & _H47
    h ^= h >> 19
    return h & (nslots - 1)


@inlined
def _is(conns, addrs6: np.ndarray, c: Int, fam: Int, c_hi: Int, c_lo: Int, cp: Int, s_hi: Int, s_lo: Int,
        sp: Int) -> bool:
    """Whether connection c has this client and server."""
    conn = conns[c]
    if conn.fam != fam or conn.port[0] != cp or conn.port[1] != sp:
        return False
    if fam == 4:
        return conn.caddr == c_lo and conn.saddr == s_lo
    a = conn.caddr
    return addrs6[a, 0] == c_hi and addrs6[a, 1] == c_lo and addrs6[a, 2] == s_hi and addrs6[a, 3] == s_lo


@inlined
def find(table: np.ndarray, conns, addrs6: np.ndarray, fam: Int, s_hi: Int, s_lo: Int, sp: Int, d_hi: Int,
         d_lo: Int, dp: Int) -> tuple:
    """``(slot, row, sender)`` of the newest connection with this 4-tuple in hash table
    ``table``; row ``NO_CONN`` when none (then ``slot`` is where to put it). ``sender`` is 0
    when the source is the client."""
    mask = len(table) - 1
    i = slot(len(table), fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    while True:
        v = np.int64(table[i])
        if v == EMPTY:
            return i, np.int64(NO_CONN), np.int64(0)
        c = v - 1
        if _is(conns, addrs6, c, fam, s_hi, s_lo, sp, d_hi, d_lo, dp):
            return i, c, np.int64(0)
        if _is(conns, addrs6, c, fam, d_hi, d_lo, dp, s_hi, s_lo, sp):
            return i, c, np.int64(1)
        i = (i + 1) & mask


@kernel
def rebuild_hash(table: np.ndarray, conns, addrs6: np.ndarray, n: Int) -> None:
    """Fill an empty hash table with those of the first n connections that own their 4-tuple."""
    mask = len(table) - 1
    for c in range(n):
        conn = conns[c]
        if conn.fl & F_IN_TABLE:
            if conn.fam == 4:
                ch, cl, sh, sl = 0, np.int64(conn.caddr), 0, np.int64(conn.saddr)
            else:
                a = conn.caddr
                ch, cl, sh, sl = addrs6[a, 0], addrs6[a, 1], addrs6[a, 2], addrs6[a, 3]
            i = slot(len(table), np.int64(conn.fam), ch, cl, np.int64(conn.port[0]), sh, sl,
                     np.int64(conn.port[1]))
            while table[i] != EMPTY:
                i = (i + 1) & mask
            table[i] = c + 1
