"""Zeek's view of the stored connections, read on demand: the replay of
:mod:`tcpview.engine.core.zeek_analyzer` over a range of connections (a summary, the table's filter), over
one connection's segments (the model, a table row), and carried over for the connections an
eviction keeps while their first segments leave.

Histories come back as numbers into a list of the distinct ones (a million connections have a
handful), and are written into a fixed number of bytes per connection first; a longer one
makes the replay run again with room for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.zeek_analyzer import CONN_STATES, SERVER_PORTS, scan, scan_rows
from ..core.zeek_endpoint import HIST_ROOM, HLEN, NF

if TYPE_CHECKING:
    from .reader import Reader
    from .view import View

NO_BASE = (np.zeros(0, dtype=np.int64), np.zeros((0, NF), dtype=np.int64), np.zeros((0, 8), dtype=np.uint8))
_NO_MAP = np.zeros(0, dtype=np.int64)


def _base_for(base: tuple, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The carried-over state (rows, W, HB) of connections lo..hi-1: its entries' numbers
    among them (-1: not one of them), W, HB, and the history room it needs."""
    rows, bW, bHB = base if base else NO_BASE
    bk = np.where((rows >= lo) & (rows < hi), rows - lo, -1).astype(np.int64)
    need = int(bW[bk >= 0, HLEN].max()) if (bk >= 0).any() else 0
    return bk, bW, bHB, need


def _room(need: int) -> int:
    return max(HIST_ROOM, -(-need // 8) * 8)


def _longs(v) -> tuple[np.ndarray, np.ndarray]:
    pairs = v.long[: v.n["long"]]
    return np.ascontiguousarray(pairs[:, 0], dtype=np.int64), np.ascontiguousarray(pairs[:, 1], dtype=np.int64)


def _texts(HB: np.ndarray, lens: np.ndarray) -> list[str]:
    room = HB.shape[1]
    raw = HB.tobytes()
    return [raw[k * room: k * room + n].decode("ascii") for k, n in enumerate(lens.tolist())]


def _distinct(HB: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's history as a number and the distinct histories' texts (a million
    connections have a handful): rows hashed, then checked equal to their number's text."""
    words = HB.view(np.uint64)
    h = np.zeros(len(HB), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * np.uint64(0x100000001B3)
    _u, first, ids = np.unique(h, return_index=True, return_inverse=True)
    if not (words == words[first[ids]]).all():  # two histories with one hash: the slow way
        _u, first, ids = np.unique(HB.view(f"V{HB.shape[1]}").ravel(), return_index=True, return_inverse=True)
    return ids.astype(np.int64).ravel(), _texts(HB[first], lens[first])


def zeek_codes(v, lo: int, hi: int, stop: int, last: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The conn_state codes (index :data:`CONN_STATES`) of connections ``lo``..``hi-1`` of
    view ``v`` from the segments before row ``stop``; their histories as numbers into the
    list of distinct histories that comes third. ``last``: each connection's latest segment
    row before ``stop`` (-1: none), when known: each replay ends there."""
    m = max(hi - lo, 0)
    codes = np.zeros(m, dtype=np.int64)
    ids = np.zeros(m, dtype=np.int64)
    texts: dict[str, int] = {}
    W = np.empty((min(m, PART), NF), dtype=np.int64)
    for a in range(lo, hi, PART):
        b = min(hi, a + PART)
        end = stop if last is None else min(stop, int(last[a:b].max()) + 1)
        part_codes, part_ids, part_texts = _replay(v, a, b, end, W[: b - a])
        codes[a - lo: b - lo] = part_codes
        number = np.array([texts.setdefault(t, len(texts)) for t in part_texts], dtype=np.int64)
        ids[a - lo: b - lo] = number[part_ids]
    return codes, ids, list(texts)


PART = 8192  # connections replayed at a time (their working state: 392 bytes each)


def _replay(v, lo: int, hi: int, stop: int, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    m = hi - lo
    out = np.zeros(m, dtype=np.int64)
    row0 = int(v.conns.row0[lo])
    start = row0 if row0 < stop else 0  # its first segment left: from the first kept
    long_rows, long_lens = _longs(v)
    ports = np.ascontiguousarray(v.conns.port[lo:hi], dtype=np.int64)
    bk, bW, bHB, need = _base_for(v.base_zeek, lo, hi)
    room = _room(need)
    while True:
        HB = np.zeros((m, room), dtype=np.uint8)
        most = scan(v.segs, _NO_MAP, lo, start, stop, long_rows, long_lens, ports, SERVER_PORTS, W, HB, out, bk, bW,
                     bHB)
        if most <= room:
            return (out, *_distinct(HB, W[:, HLEN]))
        room = _room(int(most))


def zeek_of_rows(v, row: int, rows: np.ndarray) -> tuple[str, str]:
    """The conn_state and history of the connection in ``row`` from its segments ``rows``."""
    long_rows, long_lens = _longs(v)
    ports = np.ascontiguousarray(v.conns.port[row: row + 1], dtype=np.int64)
    bk, bW, bHB, need = _base_for(v.base_zeek, row, row + 1)
    W = np.empty((1, NF), dtype=np.int64)
    out = np.zeros(1, dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    room = _room(need)
    while True:
        HB = np.zeros((1, room), dtype=np.uint8)
        most = scan_rows(v.segs, rows, long_rows, long_lens, ports, SERVER_PORTS, W, HB, out, bk, bW, bHB)
        if most <= room:
            return CONN_STATES[int(out[0])], _texts(HB, W[:, HLEN])[0]
        room = _room(int(most))


def carry(segs: np.ndarray, ports: np.ndarray, long_pairs: np.ndarray, base: tuple, rows: np.ndarray,
          stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeek's working state of connections ``rows`` after segments 0..stop-1 (from ``base``,
    what was carried over before): what an eviction keeps of the connections that stay when
    their first segments leave. Returns (rows, W, HB) in the shape of ``base``."""
    m = len(rows)
    if m == 0:
        return NO_BASE
    kmap = np.full(len(ports), -1, dtype=np.int64)
    kmap[rows] = np.arange(m)
    brows, bW, bHB = base if base else NO_BASE
    bk = kmap[brows] if len(brows) else brows
    need = int(bW[bk >= 0, HLEN].max()) if (bk >= 0).any() else 0
    long_rows = np.ascontiguousarray(long_pairs[:, 0], dtype=np.int64)
    long_lens = np.ascontiguousarray(long_pairs[:, 1], dtype=np.int64)
    sub_ports = np.ascontiguousarray(ports[rows], dtype=np.int64)
    W = np.empty((m, NF), dtype=np.int64)
    out = np.zeros(m, dtype=np.int64)
    room = _room(need)
    while True:
        HB = np.zeros((m, room), dtype=np.uint8)
        most = scan(segs, kmap, 0, 0, stop, long_rows, long_lens, sub_ports, SERVER_PORTS, W, HB, out, bk, bW, bHB)
        if most <= room:
            return np.asarray(rows, dtype=np.int64), W, HB
        room = _room(int(most))


def zeek_all(tl: Reader, t: float | None = None, v: View | None = None) -> tuple[np.ndarray, list[str]]:
    """conn_state codes and histories of every connection as of time t (kept until the
    timeline or t changes)."""
    v = v or tl.view()
    n = tl.conn_count_at(t, v)
    stop = tl.seg_index_at(t, v)
    key = (v.generation, n, stop, id(v.segs))
    hit = tl.cached("zeek")
    if hit is not None and hit[0] == key:
        return hit[1]
    last = tl.conn_stats_at(t, v)[2]
    codes, ids, texts = zeek_codes(v, 0, n, stop, last)
    out = (codes, [texts[i] for i in ids.tolist()])
    tl.remember("zeek", (key, out))
    return out
