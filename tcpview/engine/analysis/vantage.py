"""Two vantage points of the same connections: pair the copies, find the clocks' offset.

Design: the captures are first read merged by time as they are (one timeline, each frame
keeping its capture). A segment both captures saw is then in it twice, with the same 4-tuple,
sequence and acknowledgment numbers, length, flags and window (what a router does not change).
Those copies are paired here (the k-th copy in one capture with the k-th in the other). The
captures are then read again, merged with the estimated offsets, leaving out the receiving
side's copy of every pair: the tracker sees each segment once, when its sender's side saw it
leave, so states, flags and retransmissions are those of one observer, and each kept frame
carries its one-way delay or the fact that it never arrived (:class:`Vantages`). This costs a
second read (of half the frames), but needs no second tracker kind and nothing in the compiled
loop, and several captures that share nothing (a ring's files) are read once.

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

from dataclasses import dataclass

import numpy as np

from ...sources.merge import CaptureMap
from ..core import columns as col
from ..timeline.conns import conn_addrs
from ..timeline.timeline import Timeline
from ..timeline.vantages import CaptureClock, Vantages
from .graphs import Graph, Series

_M = np.uint64(0x100000001B3)


def _mix(cols: list[np.ndarray]) -> np.ndarray:
    """A 64-bit hash of each row of ``cols`` (unsigned integers)."""
    h = np.full(len(cols[0]), 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            h ^= c.astype(np.uint64)
            h *= _M
            h ^= h >> np.uint64(31)
    return h


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


def join_captures(tl: Timeline, given: dict[int, float]) -> Join:
    """Pair the copies of each segment in ``tl`` (several captures merged, at the offsets
    they were merged with) between the first capture and each other one.

    Args:
        tl: the captures read merged (with ``given`` offsets, 0 for the others).
        given: offsets the user gave, by capture index: kept, not estimated.
    """
    caps = tl.captures
    assert caps is not None
    v = tl.view()
    n = v.n_seg
    s = v.segs[:n]
    files = caps.files
    read_at = [float(o) for o in caps.offsets]
    clocks = [CaptureClock(f, read_at[i], given=i in given) for i, f in enumerate(files)]
    empty = [np.zeros(0, dtype=np.int64) for _ in files]
    if not n or len(files) < 2:
        return Join(clocks, empty, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool))
    # first the SYNs alone: captures that share no handshake are not two vantage points
    # (a ring's files, unrelated captures), and pairing every segment would be wasted
    syn = np.flatnonzero((s.fl & 0x02) != 0)
    key, _pk, _up, _cu = _keys(v, s[syn])
    scap = caps.indices(s.frame[syn].astype(np.int64))
    if not np.isin(key[scap != 0], key[scap == 0]).any():
        return Join(clocks, empty, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool))
    frames = s.frame.astype(np.int64)
    cap = caps.indices(frames)
    orig = caps.originals(frames)
    ts = s.ts.astype(np.float64) - np.asarray(read_at)[cap]  # each capture's own clock
    key, pair_key, up, client_up = _keys(v, s)

    # each key's copies, the first capture's first, each capture's in time order: the key's
    # low byte gives way to the capture (a stable sort keeps the rows' own order)
    key = (key & ~np.uint64(0xFF)) | cap.astype(np.uint64)
    order = np.argsort(key, kind="stable")
    ks, cs = key[order] >> np.uint64(8), cap[order]
    idx = np.arange(n)
    run = np.r_[True, ks[1:] != ks[:-1]]
    run_start = np.maximum.accumulate(np.where(run, idx, 0))
    grp = run | np.r_[True, cs[1:] != cs[:-1]]
    occ = idx - np.maximum.accumulate(np.where(grp, idx, 0))
    first_cap = cs[run_start]
    # how many copies of each row's key the first capture has (its group leads the key's run)
    starts = np.flatnonzero(run)
    ends = np.r_[starts[1:], n]
    n0 = np.repeat(np.add.reduceat((cs == 0).astype(np.int64), starts), ends - starts)
    partner = np.full(n, -1, dtype=np.int64)
    ok = (cs != 0) & (first_cap == 0) & (occ < n0)
    partner[ok] = run_start[ok] + occ[ok]
    j_rows = order[ok]
    z_rows = order[partner[ok]]

    skip: list[list[np.ndarray]] = [[] for _ in files]
    sent_keys, sent_owd, sent_lost = [], [], []
    span = [(float(ts[cap == i].min()), float(ts[cap == i].max())) if np.any(cap == i) else (0.0, 0.0)
            for i in range(len(files))]
    offsets = [0.0] * len(files)
    for j in range(1, len(files)):
        mine = cap[j_rows] == j
        zr, jr = z_rows[mine], j_rows[mine]
        clocks[j].pairs = int(len(jr))
        if not len(jr):
            offsets[j] = read_at[j]
            continue
        dd = ts[zr] - ts[jr]
        pk, u = pair_key[zr], up[zr]
        near, lo, hi = _orient(pk, u, dd)
        mid = given[j] if j in given else _midpoint(lo, hi)
        off = read_at[j] if mid is None else mid  # None: no connection was seen both ways
        clocks[j].bounds, clocks[j].offset = (lo, hi), off
        offsets[j] = off
        # which end each capture is near, per connection: the lower end sends "up"
        zero_near_up = near  # per pair: capture 0 is near the lower end of its connection
        zero_near_client = zero_near_up == client_up[zr]
        clocks[j].vantage = _label(~zero_near_client, pk)
        if clocks[0].vantage is None or clocks[0].vantage == _label(zero_near_client, pk):
            clocks[0].vantage = _label(zero_near_client, pk)
        else:
            clocks[0].vantage = "mixed"
        # the copy on the sender's side is kept; the receiver's left out
        zero_sends = zero_near_up == (u == 0)
        send_r = np.where(zero_sends, zr, jr)
        recv_r = np.where(zero_sends, jr, zr)
        # a key copied more often on one side (a segment sent again, the first lost between):
        # the k-th with the k-th is wrong there; each arrival goes with the last copy sent before it
        uneven = _uneven(order, starts, ends, cs, j)
        if len(uneven):
            t = _on_first(ts, cap, offsets)
            send_r, recv_r = _rematch(send_r, recv_r, uneven, order, starts, ends, cap, j, t,
                                      dict(zip(pk.tolist(), zero_near_up.tolist(), strict=True)), pair_key, up,
                                      tol=0.0 if lo is None or hi is None else max(hi - lo, 0.0))
            zero_sends = cap[send_r] == 0
        skip[j].append(orig[recv_r[zero_sends]])
        skip[0].append(orig[recv_r[~zero_sends]])
        owd = _on_first(ts[recv_r], cap[recv_r], offsets) - _on_first(ts[send_r], cap[send_r], offsets)
        sent_keys.append((cap[send_r] << 32) | orig[send_r])
        sent_owd.append(owd)
        sent_lost.append(np.zeros(len(send_r), dtype=bool))
        matched = np.zeros(n, dtype=bool)
        matched[send_r] = matched[recv_r] = True
        lost = _lost(cap, ts, orig, pair_key, up, matched, j, pk, zero_near_up, span, offsets, owd)
        sent_keys.append(lost)
        sent_owd.append(np.full(len(lost), np.nan))
        sent_lost.append(np.ones(len(lost), dtype=bool))
    for i, c in enumerate(clocks):
        c.offset = offsets[i] if i else 0.0
    keys = np.concatenate(sent_keys) if sent_keys else np.zeros(0, dtype=np.int64)
    sort = np.argsort(keys, kind="stable")
    return Join(clocks, [_sorted_set(np.concatenate(k)) if k else np.zeros(0, dtype=np.int64) for k in skip],
                keys[sort], np.concatenate(sent_owd)[sort] if sent_owd else np.zeros(0),
                np.concatenate(sent_lost)[sort] if sent_lost else np.zeros(0, dtype=bool))


def _sorted_set(a: np.ndarray) -> np.ndarray:
    """``a``'s values once each, sorted (np.unique, without its hashing: faster here)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _keys(v, s) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For segment rows ``s`` of view ``v``: a hash of what a router leaves as it is (the
    sender's and receiver's address and port, seq, ack, length, window, flags); a hash of the
    connection's two ends; the direction on the wire (0: from the lower end to the higher, the
    same for every copy whichever end the tracker called client); and whether the lower end
    is the tracker's client."""
    m = v.n_conn
    chi, clo = conn_addrs(v, m, server=False)
    shi, slo = conn_addrs(v, m, server=True)
    ports = v.conns.port[:m].astype(np.int64)
    cp, sp = ports[:, 0], ports[:, 1]
    # per connection (few), then looked up per segment
    c2s = _mix([chi, clo, cp, shi, slo, sp])
    s2c = _mix([shi, slo, sp, chi, clo, cp])
    client_low = (chi < shi) | ((chi == shi) & ((clo < slo) | ((clo == slo) & (cp < sp))))
    ends = np.where(client_low, c2s, s2c)
    conn = s.conn.astype(np.int64)  # a connection's row is its id, unless older ones left
    rows = np.searchsorted(v.conns.cid[:m], conn) if v.evicted_conns else conn
    fl = s.fl.astype(np.int64)
    d = col.seg_dir(fl)
    key = _mix([np.where(d == 0, c2s[rows], s2c[rows]), s.seq, s.ack,
                s.len.astype(np.int64) | (s.win.astype(np.int64) << 16) | ((fl & 0xFF) << 32)])
    low = client_low[rows]
    up = np.where(low, d, 1 - d)
    return key, ends[rows], up, low

def _uneven(order: np.ndarray, starts: np.ndarray, ends: np.ndarray, cs: np.ndarray, j: int) -> np.ndarray:
    """The runs (of rows sorted by key) whose key the first capture and capture ``j`` hold
    different numbers of copies of, both at least one."""
    if not len(starts):
        return np.zeros(0, dtype=np.int64)
    n0 = np.add.reduceat((cs == 0).astype(np.int64), starts)
    nj = np.add.reduceat((cs == j).astype(np.int64), starts)
    return np.flatnonzero((n0 != nj) & (n0 > 0) & (nj > 0))


def _rematch(send_r: np.ndarray, recv_r: np.ndarray, uneven: np.ndarray, order: np.ndarray, starts: np.ndarray,
             ends: np.ndarray, cap: np.ndarray, j: int, t: np.ndarray, zero_up_of: dict, pair_key: np.ndarray,
             up: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs, those of the ``uneven`` runs made again: each copy that arrived, in time
    order, with the last copy sent no later (``tol``: the offset's uncertainty) not yet taken."""
    redo = np.concatenate([order[starts[k]:ends[k]] for k in uneven.tolist()])
    keep = ~np.isin(send_r, redo)
    sends, recvs = [send_r[keep]], [recv_r[keep]]
    extra_s: list[int] = []
    extra_r: list[int] = []
    for k in uneven.tolist():
        rows = order[starts[k]:ends[k]]
        rows = rows[(cap[rows] == 0) | (cap[rows] == j)]
        zero_up = zero_up_of.get(int(pair_key[rows[0]]))
        if zero_up is None:
            continue  # a connection no pair placed
        zero_sends = zero_up == (int(up[rows[0]]) == 0)
        sender = 0 if zero_sends else j
        sent = sorted(rows[cap[rows] == sender].tolist(), key=lambda r: t[r])
        got = sorted(rows[cap[rows] != sender].tolist(), key=lambda r: t[r])
        taken: set[int] = set()
        for r in got:
            best = None
            for q in sent:
                if t[q] <= t[r] + tol and q not in taken:
                    best = q
            if best is not None:
                taken.add(best)
                extra_s.append(best)
                extra_r.append(r)
    sends.append(np.array(extra_s, dtype=np.int64))
    recvs.append(np.array(extra_r, dtype=np.int64))
    return np.concatenate(sends), np.concatenate(recvs)


def _on_first(ts: np.ndarray, cap: np.ndarray, offsets: list[float]) -> np.ndarray:
    """Times of each capture's own clock on the first capture's."""
    return ts + np.asarray(offsets)[cap]


def _orient(pk: np.ndarray, up: np.ndarray, dd: np.ndarray) -> tuple[np.ndarray, float | None, float | None]:
    """Per pair, whether the first capture is near the lower end of its connection (the
    direction whose copies reach the other capture sooner is sent from its side), and the
    bounds on the offset that all connections together allow."""
    near = np.zeros(len(pk), dtype=bool)
    lo: float | None = None
    hi: float | None = None
    keys, inv = np.unique(pk, return_inverse=True)
    one_way = []
    for k in range(len(keys)):
        m = inv == k
        a, b = dd[m & (up == 0)], dd[m & (up == 1)]
        if len(a) and len(b):
            zero_up = float(np.median(a)) <= float(np.median(b))
            near[m] = zero_up
            sent, got = (a, b) if zero_up else (b, a)
            lo = float(sent.max()) if lo is None else max(lo, float(sent.max()))
            hi = float(got.min()) if hi is None else min(hi, float(got.min()))
        else:
            one_way.append((m, a, b))
    # a connection seen one way only: placed by the others' offset (its copies arrive later)
    mid = _midpoint(lo, hi)
    for m, a, b in one_way:
        if mid is None:
            zero_up = len(a) > 0  # nothing to go by: the first capture is the sender's
        else:
            zero_up = (float(np.median(a)) <= mid) if len(a) else (float(np.median(b)) > mid)
        near[m] = zero_up
        if mid is None:
            sent, got = (a, b) if zero_up else (b, a)
            if len(sent):
                lo = float(sent.max()) if lo is None else max(lo, float(sent.max()))
            if len(got):
                hi = float(got.min()) if hi is None else min(hi, float(got.min()))
    return near, lo, hi


def _midpoint(lo: float | None, hi: float | None) -> float | None:
    """The middle of the allowed offsets (a one-sided bound alone: that bound)."""
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    return lo if lo is not None else hi


def _label(near_client: np.ndarray, pk: np.ndarray) -> str:
    """``client``, ``server`` or ``mixed``: the end a capture is near, over its connections."""
    if near_client.all():
        return "client"
    if not near_client.any():
        return "server"
    return "mixed"


def _lost(cap: np.ndarray, ts: np.ndarray, orig: np.ndarray, pair_key: np.ndarray, up: np.ndarray,
          matched: np.ndarray, j: int, pk_pairs: np.ndarray, zero_up_pairs: np.ndarray,
          span: list[tuple[float, float]], offsets: list[float], owd: np.ndarray) -> np.ndarray:
    """Keys ``capture << 32 | frame`` of the segments of joined connections (between the first
    capture and capture ``j``) that the sender's side saw leave and the receiver's side never
    saw, while it was capturing."""
    keys_joined, first = np.unique(pk_pairs, return_index=True)
    # per joined connection: whether capture 0 is near its lower end
    zero_up_of = dict(zip(pk_pairs[first].tolist(), zero_up_pairs[first].tolist(), strict=True))
    cand = np.flatnonzero(~matched & ((cap == 0) | (cap == j)) & np.isin(pair_key, keys_joined))
    if not len(cand):
        return np.zeros(0, dtype=np.int64)
    zero_up = np.array([zero_up_of[k] for k in pair_key[cand].tolist()], dtype=bool)
    zero_sends = zero_up == (up[cand] == 0)
    sender = np.where(zero_sends, 0, j)
    cand = cand[cap[cand] == sender]
    if not len(cand):
        return np.zeros(0, dtype=np.int64)
    receiver = np.where(cap[cand] == 0, j, 0)
    t = ts[cand] + np.asarray(offsets)[cap[cand]]
    recv_first = np.array([span[r][0] + offsets[r] for r in range(len(span))])[receiver]
    recv_last = np.array([span[r][1] + offsets[r] for r in range(len(span))])[receiver]
    slowest = float(np.nanmax(owd)) if len(owd) and np.isfinite(owd).any() else 0.0
    inside = (t >= recv_first) & (t + slowest <= recv_last)
    cand = cand[inside]
    return (cap[cand] << 32) | orig[cand]


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
