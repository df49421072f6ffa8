"""Two vantage points of the same connections: pair the copies, find the clocks' offset.

Design: each capture is first read on its own for what a router does not change of each TCP
segment (:func:`capture_keys`: the 4-tuple, sequence and acknowledgment numbers, length, flags
and window; decoded, not tracked). A segment both captures saw is in both, and its copies are
paired by one compiled hash join (:mod:`tcpview.engine.core.copies`: the k-th copy in one
capture with the k-th in the other). The captures are then read merged by time, at the
estimated offsets, leaving out the receiving side's copy of every pair: the tracker sees each
segment once, when its sender's side saw it leave, so states, flags and retransmissions are
those of one observer, and each kept frame carries its one-way delay or the fact that it never
arrived (:class:`Vantages`). The first pass costs a read and a decode of every frame (about
a tenth of a second per million), no tracker, and nothing in the compiled loop. Captures that
share no handshake with the first (a ring's files, unrelated captures) are not paired.
Fragmented segments are not in the first pass (it does not reassemble): they are read, not
paired.

Clock offset: a segment cannot arrive before it was sent. For capture j against the first
(``d = t_first - t_j``, both as read), a segment that the first capture's side sent gives
``offset >= d`` and one it received ``offset <= d``. Each connection says which side each
capture is on (the direction whose copies reach the other capture sooner is the one sent from
there); the bounds of every joined connection are intersected and the midpoint of the interval
is the offset. The interval is as wide as the smallest one-way delay one way plus the smallest
the other way, so the midpoint is off by at most half of that (exact when the paths are
symmetric); with nothing known of the paths' asymmetry, no other point of the interval has a
smaller worst case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ...sources.base import FileSource
from ...sources.merge import CaptureMap
from ...sources.pcap import CaptureError
from ..core.copies import KEY, pair_copies, partitions_for, segment_keys, tables_for
from ..core.decode import OUT_SIZE
from ..timeline.timeline import Timeline
from ..timeline.vantages import CaptureClock, Vantages
from .graphs import Graph, Series


@dataclass
class Join:
    """What pairing the copies found, to read the captures again with (see the module)."""

    captures: list[CaptureClock]
    skip: list[np.ndarray]
    """Per capture, its own frame numbers of the receiving side's copies, sorted."""
    sent: np.ndarray
    """Keys ``capture << 32 | frame`` of the frames kept that the join knows of, sorted."""
    owd: np.ndarray
    """Their one-way delays (NaN: lost between the captures)."""
    lost: np.ndarray

    @property
    def joined(self) -> bool:
        """Some capture shares segments with the first."""
        return any(c.pairs for c in self.captures[1:])

    def vantages(self, frames: CaptureMap) -> Vantages:
        """What a timeline read with :attr:`skip` (its frames: ``frames``) learns: each of its
        frames' one-way delay, or that it was lost between the captures."""
        return Vantages(self.captures, frames, self.sent, self.owd, self.lost)


def capture_keys(path: str) -> np.recarray:
    """The :data:`~tcpview.engine.core.copies.KEY` of each TCP segment of capture ``path``, in
    its order (a file that is damaged part-way: those before the damage).

    Raises:
        CaptureError: it is not a capture.
    """
    fields = np.zeros(OUT_SIZE, dtype=np.int64)
    at = 0
    read = False
    with FileSource(path).reader as reader:
        # room for as many segments as the file could hold (a record and its IP and TCP
        # headers take 56 bytes at the least): only the pages written are ever touched
        out = np.empty((reader.size or 0) // 56 + 1, dtype=KEY).view(np.recarray)
        try:
            for b in reader.batches():
                if b is None or not len(b):
                    continue
                read = True
                if at + len(b) > len(out):  # (a file that grew as it was read)
                    out = np.concatenate([out[:at], np.empty(max(len(out), len(b)), dtype=KEY)]).view(np.recarray)
                at = int(segment_keys(b.buf, b.frames, fields, out, at))
        except CaptureError:
            if not read:
                raise
    return out[:at].view(np.recarray)


class _Pairs:
    """Two captures' segments (the first's, then the other's) and their copies paired."""

    def __init__(self, first: np.recarray, other: np.recarray, j: int) -> None:
        na, n = len(first), len(first) + len(other)
        self.na = na
        self.side = np.zeros(n, dtype=np.int8)
        self.side[na:] = 1
        self.cap = self.side.astype(np.int64) * j
        self.ts = np.concatenate([first.ts, other.ts])
        self.frame = np.concatenate([first.frame, other.frame])
        self.up = np.concatenate([first.up, other.up])
        conns, table = tables_for(n)
        parts = partitions_for(n)
        self.conn = np.empty(n, dtype=np.int32)
        self.group = np.empty(n, dtype=np.int64)
        self.partner = np.empty(n, dtype=np.int64)
        self.uneven = np.empty(n, dtype=np.bool_)
        self.n_conn = int(pair_copies(first, other, parts, conns, table, np.empty(n, dtype=np.int64),
                                      np.empty(n, dtype=np.int32), np.empty(parts + 1, dtype=np.int64), self.conn,
                                      self.group, np.empty(n, dtype=np.int32), self.partner, self.uneven))
        # each connection's client: the sender of its SYN, else of its first segment seen
        used = np.flatnonzero(conns[:, 0])
        first_row = np.empty(self.n_conn, dtype=np.int64)
        first_row[conns[used, 1]] = conns[used, 0] - 1
        self.client_low = self.up[first_row] == 0
        fl = np.concatenate([first.fl, other.fl])
        syn = np.flatnonzero((fl & 0x12) == 0x02)
        self.client_low[self.conn[syn]] = self.up[syn] == 0


def _shares_handshakes(first: np.recarray, other: np.recarray) -> bool:
    """Whether two captures share a SYN: those that share none are not two vantage points (a
    ring's files, unrelated captures), and pairing every segment would be wasted."""
    syns = [k[(k.fl & 0x02) != 0] for k in (first, other)]
    return bool(len(syns[0]) and len(syns[1]) and (_Pairs(syns[0], syns[1], 1).partner >= 0).any())


def join_captures(files: list[str], keys: Iterable[np.recarray], given: dict[int, float]) -> Join:
    """Pair the copies of each segment between the first capture and each other one.

    Args:
        files: the captures.
        keys: each one's segments (:func:`capture_keys`), in order: only the first's and one
            other's are held at a time (a ring's many files share nothing with the first).
        given: offsets the user gave, by capture index: kept, not estimated.
    """
    clocks = [CaptureClock(f, given.get(i, 0.0), given=i in given) for i, f in enumerate(files)]
    skip: list[list[np.ndarray]] = [[] for _ in files]
    offsets = [given.get(i, 0.0) for i in range(len(files))]
    span = [(0.0, 0.0)] * len(files)
    sent_keys, sent_owd, sent_lost = [], [], []
    each = iter(keys)
    first = next(each, None)
    for j, kj in enumerate(each, start=1):
        assert first is not None
        for i, k in ((0, first), (j, kj)):
            span[i] = (float(k.ts.min()), float(k.ts.max())) if len(k) else (0.0, 0.0)
        if not _shares_handshakes(first, kj):
            continue
        g = _Pairs(first, kj, j)
        del kj
        jr = np.flatnonzero(g.partner >= 0)
        zr = g.partner[jr]
        clocks[j].pairs = int(len(jr))
        if not len(jr):
            continue
        # the keys each side holds a different number of copies of (a segment sent again, the
        # first lost between): the k-th with the k-th may be wrong there
        even = ~g.uneven[jr]
        dd = g.ts[zr] - g.ts[jr]
        conn, u = g.conn[zr], g.up[zr]
        near, lo, hi = _orient(conn, u, dd, even, g.n_conn)
        mid = given[j] if j in given else _midpoint(lo, hi)
        off = offsets[j] if mid is None else mid  # None: no connection was seen both ways
        clocks[j].bounds, clocks[j].offset = (lo, hi), off
        offsets[j] = off
        joined = np.zeros(g.n_conn, dtype=bool)
        joined[conn] = True
        zero_near_client = near == g.client_low  # per connection: capture 0 is near its client
        clocks[j].vantage = _label(~zero_near_client[joined])
        mine = _label(zero_near_client[joined])
        clocks[0].vantage = mine if clocks[0].vantage in (None, mine) else "mixed"
        # the copy on the sender's side is kept; the receiver's left out
        zero_sends = near[conn] == (u == 0)
        send_r = np.where(zero_sends, zr, jr)
        recv_r = np.where(zero_sends, jr, zr)
        if not even.all():
            send_r, recv_r = _rematch(g, send_r, recv_r, near, offsets,
                                      tol=0.0 if lo is None or hi is None else max(hi - lo, 0.0))
            zero_sends = g.cap[send_r] == 0
        # each frame's part, by row (rows go as the frames do: no sorting)
        n, na = len(g.side), g.na
        recv = np.zeros(n, dtype=bool)
        recv[recv_r] = True
        skip[0].append(g.frame[:na][recv[:na]])
        skip[j].append(g.frame[na:][recv[na:]])
        owd = np.full(n, np.nan)
        owd[send_r] = _on_first(g.ts[recv_r], g.cap[recv_r], offsets) - _on_first(g.ts[send_r], g.cap[send_r], offsets)
        matched = recv.copy()
        matched[send_r] = True
        lost = np.zeros(n, dtype=bool)
        lost[_lost(g, matched, send_r, j, joined, near, span, offsets, owd[send_r])] = True
        known = lost.copy()
        known[send_r] = True
        rows = np.flatnonzero(known)
        sent_keys.append((g.cap[rows] << 32) | g.frame[rows])
        sent_owd.append(owd[rows])
        sent_lost.append(lost[rows])
    for i, c in enumerate(clocks):
        c.offset = offsets[i] if i else 0.0
    if len(sent_keys) == 1:  # two captures: each part is sorted already
        return Join(clocks, [k[0] if k else np.zeros(0, dtype=np.int64) for k in skip], sent_keys[0], sent_owd[0],
                    sent_lost[0])
    keys_sent = np.concatenate(sent_keys) if sent_keys else np.zeros(0, dtype=np.int64)
    sort = np.argsort(keys_sent, kind="stable")
    return Join(clocks, [_sorted_set(np.concatenate(k)) if k else np.zeros(0, dtype=np.int64) for k in skip],
                keys_sent[sort], np.concatenate(sent_owd)[sort] if sent_owd else np.zeros(0),
                np.concatenate(sent_lost)[sort] if sent_lost else np.zeros(0, dtype=bool))


def _sorted_set(a: np.ndarray) -> np.ndarray:
    """``a``'s values once each, sorted (np.unique, without its hashing: faster here)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _rematch(g: _Pairs, send_r: np.ndarray, recv_r: np.ndarray, near: np.ndarray, offsets: list[float],
             tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs, those of the keys the two sides hold different numbers of copies of (both
    at least one) made again: each copy that arrived, in time order, with the last copy sent
    no later (``tol``: the offset's uncertainty) not yet taken."""
    rows = np.flatnonzero(g.uneven)
    keep = ~np.isin(send_r, rows)
    sends, recvs = [send_r[keep]], [recv_r[keep]]
    rows = rows[np.argsort(g.group[rows], kind="stable")]  # each key's copies together, in order
    cut = np.flatnonzero(np.diff(g.group[rows])) + 1
    t = _on_first(g.ts[rows], g.cap[rows], offsets)
    zero_sends_all = near[g.conn[rows]] == (g.up[rows] == 0)
    extra_s: list[int] = []
    extra_r: list[int] = []
    for a, e in zip([0, *cut.tolist()], [*cut.tolist(), len(rows)], strict=True):
        sender = 0 if zero_sends_all[a] else 1
        mine = np.arange(a, e)
        by_side = g.side[rows[mine]]
        sent = sorted(mine[by_side == sender].tolist(), key=lambda k: t[k])
        got = sorted(mine[by_side != sender].tolist(), key=lambda k: t[k])
        taken: set[int] = set()
        for k in got:
            best = None
            for q in sent:
                if t[q] <= t[k] + tol and q not in taken:
                    best = q
            if best is not None:
                taken.add(best)
                extra_s.append(int(rows[best]))
                extra_r.append(int(rows[k]))
    sends.append(np.array(extra_s, dtype=np.int64))
    recvs.append(np.array(extra_r, dtype=np.int64))
    return np.concatenate(sends), np.concatenate(recvs)


def _on_first(ts: np.ndarray, cap: np.ndarray, offsets: list[float]) -> np.ndarray:
    """Times of each capture's own clock on the first capture's."""
    return ts + np.asarray(offsets)[cap]


def _orient(conn: np.ndarray, up: np.ndarray, dd: np.ndarray, even: np.ndarray,
            n_conn: int) -> tuple[np.ndarray, float | None, float | None]:
    """Per connection (of ``n_conn``), whether the first capture is near its lower end (the
    direction whose copies reach the other capture sooner is sent from its side), and the
    bounds on the offset that all connections together allow.

    Each pair (connection ``conn``, direction ``up``) gives ``dd``, the first capture's time
    less the other's. Sent from the first capture's side, ``dd`` is the offset less the
    one-way delay; sent towards it, the offset plus it: the two directions' values lie on
    either side of the offset, so their means do too. The means are taken over the ``even``
    pairs (of keys both sides hold as often), where a pair cannot be two different sendings.
    """
    near = np.zeros(n_conn, dtype=bool)
    sums, counts, seen = [], [], []
    for k in (0, 1):
        way = up == k
        use = way & even
        n_use = np.bincount(conn[use], minlength=n_conn)
        n_all = np.bincount(conn[way], minlength=n_conn)
        s_use = np.bincount(conn[use], weights=dd[use], minlength=n_conn)
        s_all = np.bincount(conn[way], weights=dd[way], minlength=n_conn)
        fallback = n_use == 0
        sums.append(np.where(fallback, s_all, s_use))
        counts.append(np.where(fallback, n_all, n_use))
        seen.append(n_all > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = [sums[k] / counts[k] for k in (0, 1)]
    both = seen[0] & seen[1]
    near[both] = mean[0][both] <= mean[1][both]
    lo, hi = _bounds(conn, up, dd, near, both)
    # a connection seen one way only: placed by the others' offset (its copies arrive later)
    one = (seen[0] | seen[1]) & ~both
    if one.any():
        mid = _midpoint(lo, hi)
        if mid is None:
            near[one] = seen[0][one]  # nothing to go by: the first capture is the sender's
            lo2, hi2 = _bounds(conn, up, dd, near, one)
            lo = lo2 if lo is None else (lo if lo2 is None else max(lo, lo2))
            hi = hi2 if hi is None else (hi if hi2 is None else min(hi, hi2))
        else:
            m = np.where(seen[0], mean[0], mean[1])
            near[one] = np.where(seen[0], m <= mid, m > mid)[one]
    return near, lo, hi


def _bounds(conn: np.ndarray, up: np.ndarray, dd: np.ndarray, near: np.ndarray,
            which: np.ndarray) -> tuple[float | None, float | None]:
    """The offsets the pairs of connections ``which`` allow: no later than any sent from the
    first capture's side says (``dd`` of those at most it), no earlier than any sent to it."""
    mine = which[conn]
    sent = mine & (near[conn] == (up == 0))
    got = mine & ~sent
    lo = float(dd[sent].max()) if sent.any() else None
    hi = float(dd[got].min()) if got.any() else None
    return lo, hi


def _midpoint(lo: float | None, hi: float | None) -> float | None:
    """The middle of the allowed offsets (a one-sided bound alone: that bound)."""
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    return lo if lo is not None else hi


def _label(near_client: np.ndarray) -> str:
    """``client``, ``server`` or ``mixed``: the end a capture is near, over its connections."""
    if near_client.all():
        return "client"
    if not near_client.any():
        return "server"
    return "mixed"


def _lost(g: _Pairs, matched: np.ndarray, send_r: np.ndarray, j: int, joined: np.ndarray, near: np.ndarray,
          span: list[tuple[float, float]], offsets: list[float], owd: np.ndarray) -> np.ndarray:
    """The rows of the segments of joined connections (between the first
    capture and capture ``j``) that the sender's side saw leave and the receiver's side never
    saw, while it was capturing: it was capturing when the segment left, and either went on
    for longer than the slowest segment took, or saw a segment of the same connection and
    direction that left after this one (``send_r``: the rows of the copies that arrived, on
    the sender's side). The second holds where the first cannot: a segment lost among the
    last a connection sent, its resend arriving within less than one delay's jitter of the
    capture's end."""
    cand = np.flatnonzero(~matched)
    cand = cand[joined[g.conn[cand]]]
    if not len(cand):
        return np.zeros(0, dtype=np.int64)
    zero_sends = near[g.conn[cand]] == (g.up[cand] == 0)
    cand = cand[np.where(zero_sends, 0, 1) == g.side[cand]]  # those on the sender's side
    if not len(cand):
        return np.zeros(0, dtype=np.int64)
    at = np.asarray(offsets)
    cap = g.cap[cand]
    receiver = np.where(cap == 0, j, 0)
    t = g.ts[cand] + at[cap]
    recv_first = np.array([span[r][0] + offsets[r] for r in range(len(span))])[receiver]
    recv_last = np.array([span[r][1] + offsets[r] for r in range(len(span))])[receiver]
    slowest = float(np.nanmax(owd)) if len(owd) and np.isfinite(owd).any() else 0.0
    # per connection and direction: when the last segment that arrived left
    last_arrived = np.full(2 * g.n_conn, -np.inf)
    np.maximum.at(last_arrived, 2 * g.conn[send_r].astype(np.int64) + g.up[send_r], g.ts[send_r] + at[g.cap[send_r]])
    overtaken = t < last_arrived[2 * g.conn[cand].astype(np.int64) + g.up[cand]]
    inside = (t >= recv_first) & ((t + slowest <= recv_last) | overtaken)
    return cand[inside]


OWD_KINDS = ("owd",)
"""The graph kinds two vantage points give."""


def build_owd(tl: Timeline, cid: int) -> Graph | None:
    """The ``owd`` graph of connection ``cid``: each segment's one-way delay (ms) from the
    vantage point it left to the one it reached, per direction, at the time it left; None when
    the timeline does not join two vantage points or they did not both see this connection."""
    va = tl.vantages
    c = tl.conns.get(cid)
    if va is None or c is None:
        return None
    v = tl.view()
    segs = v.segs[: v.n_seg]
    rows = np.flatnonzero(segs.conn == cid)
    g = Graph("owd", f"#{c.id} {c.client_text()} → {c.server_text()}  one-way delay between the captures", "s", "ms")
    for d, name in ((0, "client → server"), (1, "server → client")):
        x, owd = va.series(segs, rows, d)
        if len(x):
            g.series.append(Series(name, x - c.first_ts, owd * 1000.0))
    return g if g.series else None
