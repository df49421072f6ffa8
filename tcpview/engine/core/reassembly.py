"""IP fragment reassembly in the compiled loop, as the Linux kernel reassembles, without holding
the fragments' bytes.

The loop needs of a fragmented datagram only what TCP analysis reads: its TCP header (options,
SACK blocks included; the first fragment has its first 20 bytes, the options may go on in
the next) and the datagram's total payload length. So a datagram in progress is a row of a
fixed table (:class:`Fragments`): its key, the extents of the fragments seen, the first
fragment's decoded fields and the first :data:`HOLD` bytes of its payload. When
the fragments cover the datagram, :func:`reassemble` gives the TCP segment to the frame that
completed it (Wireshark's "Reassembled in #N"); the other fragments' frames are counted as
held (``counts[FRAGMENTS]``).

The kernel's rules (``net/ipv4/ip_fragment.c``, ``net/ipv6/reassembly.c``,
``inet_frag_queue_insert``):

- a datagram is keyed by source, destination, identification and protocol (IPv4; only TCP's
  are reassembled here) or source, destination and the fragment header's identification
  (IPv6);
- it times out ``net.ipv4.ipfrag_time`` (30 s) or ``net.ipv6.ip6frag_time`` (60 s) of capture
  time after its first fragment arrived;
- a fragment that overlaps one already held drops the whole datagram (RFC 5722, which Linux
  applies to IPv4 too); an exact duplicate of one is dropped alone;
- a final fragment that ends short of bytes already seen, or a fragment past the end a final
  one set, drops the datagram; a fragment's length is cut to a multiple of 8 where more follow;
- past the memory limit (``ipfrag_high_thresh``, 4 MB) a new fragment is dropped; here the
  bytes the fragments cover count, and the table's rows (:data:`SLOTS`) and a datagram's
  fragments (:data:`MAX_FRAGS`) are bounded too.

Every fragment's frame is counted once, in ``skipped`` by reason while its datagram is not
complete (``FRAG_WAITING``) and once it cannot be (timed out, without its first fragment,
overlapping, a duplicate, bad, table full, over the limit), or in ``counts[FRAGMENTS]``.
Datagrams past their time are dropped when a fragment arrives after it and at the end of each
batch (:func:`expire_fragments`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...jit import Int, helper
from .columns import FRAGMENTS
from .connhash import slot
from .decode import (
    FRAG_BAD,
    FRAG_DUPLICATE,
    FRAG_NO_FIRST,
    FRAG_OVER_LIMIT,
    FRAG_OVERLAP,
    FRAG_TABLE_FULL,
    FRAG_TIMED_OUT,
    FRAG_WAITING,
    O_DST_HI,
    O_DST_LO,
    O_FAM,
    O_FRAG_AT,
    O_FRAG_ID,
    O_FRAG_LEN,
    O_FRAG_MORE,
    O_FRAG_OFF,
    O_FRAG_PRE,
    O_PLEN,
    O_SRC_HI,
    O_SRC_LO,
    O_THL,
    O_TOFF,
    OK,
    OUT_SIZE,
)

SLOTS = 1024
"""Datagrams in progress at most (a fragment of one more is dropped: ``FRAG_TABLE_FULL``)."""
MAX_FRAGS = 64
"""Fragments of one datagram held at most (past it, one more is dropped: ``FRAG_OVER_LIMIT``)."""
MAX_BYTES = 4 << 20
"""Bytes the fragments held may cover, as the kernel's ``ipfrag_high_thresh`` (4 MB)."""
HOLD = 128
"""Bytes kept of the start of a datagram's payload: the longest TCP header (60) after IPv6
extension headers in the fragmentable part."""
TIMEOUT4 = 30.0
"""``net.ipv4.ipfrag_time``: seconds an IPv4 datagram may take to complete."""
TIMEOUT6 = 60.0
"""``net.ipv6.ip6frag_time``."""

# a datagram's row of integers (D_FAM 0: a free row)
(D_FAM, D_SRC_HI, D_SRC_LO, D_DST_HI, D_DST_LO, D_ID, D_FRAMES, D_BYTES, D_TOTAL, D_END, D_NFRAGS, D_FIRST,
 D_CUT, D_SLOT) = range(14)
D_SIZE = 16
UNKNOWN = -1  # D_TOTAL before the final fragment
# the table's totals
T_USED, T_BYTES, T_NEXT = range(3)  # rows in use, bytes covered, free rows on the stack


class Fragments(NamedTuple):
    """The datagrams in progress: a fixed table, the same size whatever comes."""

    dgrams: np.ndarray  # (SLOTS, D_SIZE) int64: a datagram's key and progress (D_*)
    deadline: np.ndarray  # (SLOTS + 1) float64: when each times out; [SLOTS]: the earliest
    extents: np.ndarray  # (SLOTS, MAX_FRAGS, 2) int32: its fragments' [start, end) in its payload
    first: np.ndarray  # (SLOTS, OUT_SIZE) int64: its first fragment's decoded fields
    header: np.ndarray  # (SLOTS, HOLD) uint8: its payload's first bytes (captured up to D_CUT)
    by_key: np.ndarray  # (2 * SLOTS) int32: rows by key, open addressing (row + 1; 0 empty)
    free: np.ndarray  # (SLOTS) int32: the free rows, a stack
    totals: np.ndarray  # (4) int64: T_*


def new_fragments() -> Fragments:
    """An empty table (numpy's zeroed memory: pages are only touched as rows are used)."""
    deadline = np.full(SLOTS + 1, np.inf)
    totals = np.zeros(4, dtype=np.int64)
    totals[T_NEXT] = SLOTS
    return Fragments(np.zeros((SLOTS, D_SIZE), dtype=np.int64), deadline,
                     np.zeros((SLOTS, MAX_FRAGS, 2), dtype=np.int32), np.zeros((SLOTS, OUT_SIZE), dtype=np.int64),
                     np.zeros((SLOTS, HOLD), dtype=np.uint8), np.zeros(2 * SLOTS, dtype=np.int32),
                     np.arange(SLOTS - 1, -1, -1, dtype=np.int32), totals)


def in_progress(frags: Fragments) -> int:
    """How many datagrams are in progress."""
    return int(frags.totals[T_USED])


@helper
def _home(nslots: Int, d: np.ndarray) -> Int:
    return slot(nslots, d[D_FAM], d[D_SRC_HI], d[D_SRC_LO], d[D_ID], d[D_DST_HI], d[D_DST_LO], np.int64(0))


@helper
def _release(frags: Fragments, r: Int) -> None:
    """Free row ``r``: out of the index (moving later entries of its probe run back, so no
    tombstones pile up) and onto the free stack."""
    index = frags.by_key
    mask = len(index) - 1
    i = frags.dgrams[r, D_SLOT]
    j = i
    while True:
        j = (j + 1) & mask
        v = np.int64(index[j])
        if v == 0:
            break
        k = _home(len(index), frags.dgrams[v - 1])
        # the entry at j may fill the hole at i unless its home lies cyclically in (i, j]
        if (i <= j and (k <= i or k > j)) or (i > j and k <= i and k > j):
            index[i] = v
            frags.dgrams[v - 1, D_SLOT] = i
            i = j
    index[i] = 0
    totals = frags.totals
    totals[T_BYTES] -= frags.dgrams[r, D_BYTES]
    totals[T_USED] -= 1
    frags.dgrams[r, D_FAM] = 0
    frags.deadline[r] = np.inf
    frags.free[totals[T_NEXT]] = r
    totals[T_NEXT] += 1


@helper
def _drop(frags: Fragments, r: Int, reason: Int, skipped: np.ndarray) -> None:
    """Drop datagram ``r``: its frames held are counted under ``reason``."""
    n = frags.dgrams[r, D_FRAMES]
    skipped[FRAG_WAITING] -= n
    skipped[reason] += n
    _release(frags, r)


@helper
def expire_fragments(frags: Fragments, now: float, skipped: np.ndarray) -> None:
    """Drop the datagrams whose time ran out by capture time ``now``."""
    deadline = frags.deadline
    if now < deadline[SLOTS]:
        return
    earliest = np.inf
    for r in range(SLOTS):
        t = deadline[r]
        if t <= now:
            _drop(frags, r, FRAG_TIMED_OUT if frags.dgrams[r, D_FIRST] else FRAG_NO_FIRST, skipped)
        elif t < earliest:
            earliest = t
    deadline[SLOTS] = earliest


@helper
def _find(frags: Fragments, f: np.ndarray) -> tuple:
    """``(index slot, row)`` of the datagram of fragment ``f``; row -1 (and the slot to put
    it in) when there is none."""
    index = frags.by_key
    mask = len(index) - 1
    fam, sh, sl, dh, dl, ident = f[O_FAM], f[O_SRC_HI], f[O_SRC_LO], f[O_DST_HI], f[O_DST_LO], f[O_FRAG_ID]
    i = slot(len(index), fam, sh, sl, ident, dh, dl, np.int64(0))
    while True:
        v = np.int64(index[i])
        if v == 0:
            return i, np.int64(-1)
        d = frags.dgrams[v - 1]
        if (d[D_FAM] == fam and d[D_ID] == ident and d[D_SRC_LO] == sl and d[D_DST_LO] == dl and d[D_SRC_HI] == sh
                and d[D_DST_HI] == dh):
            return i, v - 1
        i = (i + 1) & mask


@helper
def _start(frags: Fragments, i: Int, f: np.ndarray, ts: float) -> Int:
    """A row for a new datagram at index slot ``i`` (-1 when the table is full)."""
    totals = frags.totals
    if totals[T_NEXT] == 0:
        return np.int64(-1)
    totals[T_NEXT] -= 1
    r = np.int64(frags.free[totals[T_NEXT]])
    totals[T_USED] += 1
    d = frags.dgrams[r]
    d[D_FAM] = f[O_FAM]
    d[D_SRC_HI] = f[O_SRC_HI]
    d[D_SRC_LO] = f[O_SRC_LO]
    d[D_DST_HI] = f[O_DST_HI]
    d[D_DST_LO] = f[O_DST_LO]
    d[D_ID] = f[O_FRAG_ID]
    d[D_FRAMES] = 0
    d[D_BYTES] = 0
    d[D_TOTAL] = UNKNOWN
    d[D_END] = 0
    d[D_NFRAGS] = 0
    d[D_FIRST] = 0
    d[D_CUT] = HOLD
    d[D_SLOT] = i
    frags.by_key[i] = r + 1
    t = ts + (TIMEOUT4 if f[O_FAM] == 4 else TIMEOUT6)
    frags.deadline[r] = t
    if t < frags.deadline[SLOTS]:
        frags.deadline[SLOTS] = t
    return r


@helper
def reassemble(frags: Fragments, buf: np.ndarray, frame_end: Int, ts: float, f: np.ndarray, skipped: np.ndarray,
               counts: np.ndarray) -> tuple:
    """Take the fragment ``decode_frame`` left in ``f`` (its frame's captured bytes end at
    ``frame_end`` in ``buf``), at capture time ``ts``.

    Returns ``(code, row, header_end)``: ``OK`` when it completed its datagram, whose TCP
    segment is then in ``f`` as ``decode_frame`` leaves one, its TCP header's bytes in
    ``frags.header[row][f[O_TOFF]:header_end]``; otherwise the reason to count
    this frame under (``FRAG_WAITING`` while it is held), the others of its datagram being
    counted here.
    """
    expire_fragments(frags, ts, skipped)
    off = f[O_FRAG_OFF]
    more = f[O_FRAG_MORE]
    end = off + f[O_FRAG_LEN]
    if more:
        end &= ~np.int64(7)  # the kernel trims a fragment that is not the last to 8-byte units
    if end <= off or end > 65535:
        return np.int64(FRAG_BAD), np.int64(0), np.int64(0)
    i, r = _find(frags, f)
    if r < 0:
        r = _start(frags, i, f, ts)
        if r < 0:
            return np.int64(FRAG_TABLE_FULL), np.int64(0), np.int64(0)
    d = frags.dgrams[r]
    total = d[D_TOTAL]
    if not more:
        if end < d[D_END] or (total != UNKNOWN and end != total):
            _drop(frags, r, FRAG_OVERLAP, skipped)  # bytes past the end it says, or two ends
            return np.int64(FRAG_OVERLAP), np.int64(0), np.int64(0)
        d[D_TOTAL] = end
        total = end
    elif total != UNKNOWN and end > total:
        _drop(frags, r, FRAG_OVERLAP, skipped)
        return np.int64(FRAG_OVERLAP), np.int64(0), np.int64(0)
    ext = frags.extents[r]
    for k in range(d[D_NFRAGS]):
        a = np.int64(ext[k, 0])
        e = np.int64(ext[k, 1])
        if off < e and a < end:
            if a == off and e == end:
                return np.int64(FRAG_DUPLICATE), np.int64(0), np.int64(0)
            _drop(frags, r, FRAG_OVERLAP, skipped)
            return np.int64(FRAG_OVERLAP), np.int64(0), np.int64(0)
    size = end - off
    if d[D_NFRAGS] == MAX_FRAGS or frags.totals[T_BYTES] + size > MAX_BYTES:
        if d[D_FRAMES] == 0:
            _release(frags, r)  # nothing held yet: the row was made for this one
        return np.int64(FRAG_OVER_LIMIT), np.int64(0), np.int64(0)
    ext[d[D_NFRAGS], 0] = off
    ext[d[D_NFRAGS], 1] = end
    d[D_NFRAGS] += 1
    d[D_BYTES] += size
    frags.totals[T_BYTES] += size
    if end > d[D_END]:
        d[D_END] = end
    if off < HOLD:  # bytes of the TCP header (or before it): kept
        at = f[O_FRAG_AT] - off  # where the payload's byte 0 would be in buf
        stop = min(end, np.int64(HOLD))
        if at + stop > frame_end:  # the capture cut this fragment short
            stop = max(frame_end - at, off)
            if stop < d[D_CUT]:
                d[D_CUT] = stop
        header = frags.header[r]
        for k in range(off, stop):
            header[k] = buf[at + k]
    if off == 0:
        first = frags.first[r]
        for k in range(OUT_SIZE):
            first[k] = f[k]
        d[D_FIRST] = 1
    if total == UNKNOWN or d[D_BYTES] != total or not d[D_FIRST]:
        d[D_FRAMES] += 1
        return np.int64(FRAG_WAITING), np.int64(0), np.int64(0)
    # complete: the first fragment's TCP fields, with the datagram's whole length
    held = d[D_FRAMES]
    skipped[FRAG_WAITING] -= held
    counts[FRAGMENTS] += held
    first = frags.first[r]
    for k in range(OUT_SIZE):
        f[k] = first[k]
    plen = total - first[O_FRAG_PRE] - first[O_THL]
    f[O_PLEN] = plen if plen > 0 else 0
    f[O_TOFF] = first[O_FRAG_PRE]
    header_end = min(first[O_FRAG_PRE] + first[O_THL], d[D_CUT])
    _release(frags, r)  # its header's bytes stay in the row until the row is used again
    return np.int64(OK), r, header_end
