"""The connection table's index: an open-addressing hash table from a 4-tuple (either way round)
to the row of the connection that owns it, in a plain integer array."""

from __future__ import annotations

import numpy as np

from ...jit import helper, inlined, kernel
from .columns import F_IN_TABLE

# -- the connection table ---------------------------------------------------------------------------
_H47 = 0x7FFFFFFFFFFF  # hashes stay below 2**47: no product or sum below overflows 64 bits


@helper
def _ep_hash(hi: int, lo: int, port: int) -> int:
    h = (((lo & 0xFFFFFFFF) * 0x5BD1E995) & _H47) + ((((lo >> 32) & 0xFFFFFFFF) * 0x1B873593) & _H47)
    h += ((((hi & 0xFFFFFFFF) * 0x27D4EB2F) & _H47) + ((((hi >> 32) & 0xFFFFFFFF) * 0x165667B1) & _H47)
          + port * 0x3C6EF372)
    return h & _H47


@helper
def slot(nslots: int, fam: int, a_hi: int, a_lo: int, a_port: int, b_hi: int, b_lo: int, b_port: int) -> int:
    """The first slot to look at: the same for both directions (the endpoints' hashes add up)."""
    h = (_ep_hash(a_hi, a_lo, a_port) + _ep_hash(b_hi, b_lo, b_port) + fam) & _H47
    h ^= h >> 23
    h = ((h & 0x7FFFFFFF) * 0x5BD1E995 + ((h >> 31) & 0xFFFF) * 0x1B873593) & _H47
    h ^= h >> 19
    return h & (nslots - 1)


@inlined
def _is(C, A6: np.ndarray, c: int, fam: int, c_hi: int, c_lo: int, cp: int, s_hi: int, s_lo: int, sp: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether connection c has this client and server."""
    r = C[c]
    if r.fam != fam or r.port[0] != cp or r.port[1] != sp:
        return False
    if fam == 4:
        return r.caddr == c_lo and r.saddr == s_lo
    a = r.caddr
    return A6[a, 0] == c_hi and A6[a, 1] == c_lo and A6[a, 2] == s_hi and A6[a, 3] == s_lo


@inlined
def find(H: np.ndarray, C, A6: np.ndarray, fam: int, s_hi: int, s_lo: int, sp: int, d_hi: int, d_lo: int,  # type: ignore[no-untyped-def]
         dp: int) -> tuple:
    """``(slot, row, dir)`` of the newest connection with this 4-tuple; row -1 when none (then
    ``slot`` is where to put it). ``dir`` is 0 when the sender is the client."""
    mask = len(H) - 1
    i = slot(len(H), fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    while True:
        v = np.int64(H[i])
        if v == 0:
            return i, np.int64(-1), np.int64(0)
        c = v - 1
        if _is(C, A6, c, fam, s_hi, s_lo, sp, d_hi, d_lo, dp):
            return i, c, np.int64(0)
        if _is(C, A6, c, fam, d_hi, d_lo, dp, s_hi, s_lo, sp):
            return i, c, np.int64(1)
        i = (i + 1) & mask


@kernel
def rebuild_hash(H: np.ndarray, C, A6: np.ndarray, n: int) -> None:  # type: ignore[no-untyped-def]
    """Fill an empty hash table with the connections that own their 4-tuple."""
    for c in range(n):
        r = C[c]
        if r.fl & F_IN_TABLE:
            if r.fam == 4:
                ch, cl, sh, sl = 0, np.int64(r.caddr), 0, np.int64(r.saddr)
            else:
                a = r.caddr
                ch, cl, sh, sl = A6[a, 0], A6[a, 1], A6[a, 2], A6[a, 3]
            mask = len(H) - 1
            i = slot(len(H), np.int64(r.fam), ch, cl, np.int64(r.port[0]), sh, sl, np.int64(r.port[1]))
            while H[i] != 0:
                i = (i + 1) & mask
            H[i] = c + 1
