"""Keeping the timeline within a memory budget: the oldest part leaves, and that is counted.

When the tables outgrow the budget, the tracker moves the timeline's *horizon* forward: every
segment and transition before it leaves, and so does every connection that was over by then
(both ends CLOSED, nothing after the horizon). What stays is exact from the horizon on:

- each remaining connection keeps its id, its 4-tuple and its states as of the horizon (the
  base its later transitions replay from), and its segment and byte counts before it;
- the counters' history before the horizon is kept as a few samples per state (what the
  sparklines draw), so the counts do not vanish with the connections;
- how many connections and segments left is counted (the status line, ``"evicted"`` in the
  summary JSON);
- half-open connections (a SYN and nothing since: a SYN flood) beyond a cap leave even though
  they are not over, as syncookies and conntrack keep no state per SYN; their endpoints stay
  in the counters.

The new tables are copies: a reader holding the old ones keeps a consistent view until it
takes the next. Only the writer's thread calls :func:`evict`.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from ...records import Records
from ..core import columns as col
from ..core.passes import conn_progress, conn_stats, state_counts, states_after
from ..core.tcp import LISTEN, NSTATES, SYN_SENT
from .zeek_history import carry

HIGH = 0.6
"""The oldest part leaves once the tables use this share of the budget. Making room copies
what stays into new tables, so for a moment the old tables and the new ones are both held:
HIGH + KEEP of the budget, which keeps the budget the most the timeline takes at any time."""

KEEP = 0.35
"""After an eviction the tables use about this share of the budget."""

SETTLE = 0.1
"""When what cannot leave (connections still open or in TIME_WAIT) holds the tables above
KEEP, the next eviction waits until they grew by this share of the budget again."""

SAMPLES = 64
"""Counter samples kept for each stretch of time that leaves."""

HALF_OPEN_CAP = 10_000
"""Half-open connections (a SYN and nothing since) kept one by one before they are only counted."""


_HEAP_BOUND = False


def bound_heap() -> None:
    """Have the C heap give freed tables back to the system at once (glibc; elsewhere nothing).

    Each eviction makes new tables and drops the old ones, from the tracker's thread. By
    default glibc raises its threshold for giving big blocks their own mapping each time
    one is freed, so later tables come from the thread's heap, whose holes it keeps: under
    connection churn with ``--memory 64M`` that held about 60 MB more at the peak (390 MB
    against 330 MB, ``benchmarks/churn_bench.py``). Fixed thresholds keep every table in a
    mapping of its own, returned when freed. Reading a file without a budget is left as it is
    (no change in its time was measurable either way)."""
    global _HEAP_BOUND
    if _HEAP_BOUND:
        return
    _HEAP_BOUND = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 128 * 1024)
    mallopt(m_trim_threshold, 128 * 1024)


def used_bytes(w: col.Tables) -> int:
    """Bytes the tables' rows in use take (what the budget is measured against)."""
    total = w.hash.nbytes + w.base_states.nbytes + w.base_counts.nbytes + w.base_progress.nbytes
    total += sum(a.nbytes for a in w.base_zeek)
    for name, (dt, counter, _cap) in col.Tables.LAYOUT.items():
        rows = int(w.counts[counter]) if name != "timers" else int(w.counts[col.N_TIMERS])
        itemsize = np.dtype(dt[0]).itemsize * dt[1] if isinstance(dt, tuple) else np.dtype(dt).itemsize
        total += rows * itemsize
    return total


def over_budget(w: col.Tables, budget: int) -> bool:
    """Whether the oldest part should leave now (see :data:`HIGH`, :data:`SETTLE`)."""
    used = used_bytes(w)
    return used > budget * HIGH and used > w.settled + budget * SETTLE


AHEAD = 0.3
"""A file read for a cursor that the budget had let go (see ``Timeline.pin``) is read no
further than this share of the budget past the cursor, until the cursor moves on: what stays
is around the cursor, not only after it."""


def segments_before(w: col.Tables, t: float) -> int:
    """How many segments are at or before time ``t`` (the time column never decreases)."""
    return int(np.searchsorted(w.segs.ts[: int(w.counts[col.N_SEG])], t, side="right"))


def read_ahead(w: col.Tables, pin: float) -> int:
    """About how many bytes of the tables are for the part after ``pin``."""
    n_seg = int(w.counts[col.N_SEG])
    return 0 if n_seg == 0 else used_bytes(w) * (n_seg - segments_before(w, pin)) // n_seg


def evict(w: col.Tables, budget: int, pin: float | None = None) -> bool:
    """Move the horizon forward until the tables fit in ``KEEP`` of ``budget``, but never past
    ``pin`` (a time readers still need); returns whether anything left."""
    n_seg = int(w.counts[col.N_SEG])
    n_trans = int(w.counts[col.N_TRANS])
    n_conn = int(w.counts[col.N_CONN])
    used = used_bytes(w)
    if n_seg < 2 or used <= budget * KEEP:
        return False
    # drop the share of the segments (and what goes with them) that brings use under the mark
    share = min(1.0, (used - budget * KEEP) / max(used, 1))
    k0 = max(1, min(n_seg - 1, int(n_seg * share)))
    if pin is not None:  # the first segment kept is at or before the pin
        k0 = min(k0, segments_before(w, pin) - 1)
        if k0 < 1:
            return False
    horizon = float(w.segs[k0].ts)
    # transitions before the horizon: those of segments before k0 (and timers that fired then)
    t0 = _trans_before(w, k0, n_trans)
    _sample_counters(w, t0)

    # each connection's states, segments and bytes as of the horizon
    states = np.zeros((n_conn, 2), dtype=np.uint8)
    states[: len(w.base_states)] = w.base_states
    states_after(w.trans, 0, t0, states)
    counts = np.zeros((n_conn, 2), dtype=np.int64)
    counts[: len(w.base_counts)] = w.base_counts
    pk, nb, last = np.zeros(n_conn, np.int64), np.zeros(n_conn, np.int64), np.full(n_conn, -1, np.int64)
    conn_stats(w.segs, 0, k0, pk, nb, last)
    for row, ln in w.long[: int(w.counts[col.N_LONG])].tolist():
        if row < k0:
            nb[int(w.segs[int(row)].conn)] += int(ln) - col.LONG_LEN
    counts[:, 0] += pk
    counts[:, 1] += nb
    progress = _progress(w, k0, t0, n_conn)
    lasts = np.full(n_conn, -np.inf)
    lasts[: len(w.base_last)] = w.base_last
    seen = last >= 0
    lasts[seen] = w.segs.ts[last[seen]]

    # connections that are over: both ends CLOSED at the horizon, nothing of theirs after it
    alive = np.zeros(n_conn, dtype=bool)
    alive[w.segs.conn[k0:n_seg].astype(np.int64)] = True
    alive[w.trans.conn[t0:n_trans].astype(np.int64)] = True
    live = _live_timers(w)
    alive[live] = True
    alive |= (states[:, 0] != 0) | (states[:, 1] != 0)
    alive |= w.conns.state[:n_conn, 0] != 0
    alive |= w.conns.state[:n_conn, 1] != 0
    # half-open connections (a SYN and nothing since) beyond the cap leave too, their ends
    # counted per state as before (as syncookies and conntrack keep no state per SYN)
    quiet = np.ones(n_conn, dtype=bool)
    quiet[w.segs.conn[k0:n_seg].astype(np.int64)] = False
    quiet[w.trans.conn[t0:n_trans].astype(np.int64)] = False
    quiet[live] = False
    half = np.flatnonzero(quiet & (states[:, 0] == SYN_SENT) & (states[:, 1] == LISTEN))
    cap = max(HALF_OPEN_CAP, 0)
    if len(half) > cap:
        gone = half[: len(half) - cap]  # the oldest
        alive[gone] = False
        w.held_counts[SYN_SENT] += len(gone)
        w.held_counts[LISTEN] += len(gone)
        w.half_open_aggregated += len(gone)
    keep = np.flatnonzero(alive)
    newrow = np.full(n_conn, -1, dtype=np.int64)
    newrow[keep] = np.arange(len(keep))

    # Zeek's view of the connections that stay but lose segments: carried over
    had = np.zeros(n_conn, dtype=bool)
    had[keep[pk[keep] > 0]] = True
    if w.base_zeek:
        had[w.base_zeek[0]] = True
    had &= alive
    w.base_zeek = carry(w.segs, w.conns.port[:n_conn], w.long[: int(w.counts[col.N_LONG])], w.base_zeek,
                        np.flatnonzero(had), k0)
    w.base_zeek = (newrow[w.base_zeek[0]], *w.base_zeek[1:])

    _compact(w, k0, t0, keep, newrow)
    w.base_states = states[keep]
    w.base_counts = counts[keep]
    w.base_last = lasts[keep]
    w.base_progress = progress[keep]
    w.horizon = horizon
    w.evicted_conns += n_conn - len(keep)
    w.evicted_segs += k0
    w.settled = used_bytes(w)
    return True


def _progress(w: col.Tables, k0: int, t0: int, n_conn: int) -> Records:
    """Each connection's :data:`~tcpview.engine.core.columns.PROGRESS` as of the horizon (what
    readers replay the rows after it from)."""
    progress = np.zeros(n_conn, dtype=col.PROGRESS).view(Records)
    progress[: len(w.base_progress)] = w.base_progress
    states = np.zeros((n_conn, 2), dtype=np.uint8)
    states[: len(w.base_states)] = w.base_states
    conn_progress(w.segs, w.trans, w.conns.fl, w.seg_back[: int(w.counts[col.N_SEG_BACK])],
                  w.anom[: int(w.counts[col.N_ANOM])], 0, k0, 0, t0, states, progress, np.full(2, -1, np.int64))
    # a connection with no analysis row yet (one segment so far) whose segment leaves starts
    # its analysis afresh (see _compact): no initial RTT from before the horizon
    fresh = w.conns.ana[:n_conn] == 0
    progress.syn_ts[fresh] = 0.0
    progress.irtt[fresh] = 0.0
    return progress


def _live_timers(w: col.Tables) -> np.ndarray:
    """The connections of the timers that will still fire: a timer whose side has moved on
    (a reused 4-tuple, a newer timer) stays in the heap until its deadline, and must not keep
    its connection."""
    q = w.timers[: int(w.counts[col.N_TIMERS])]
    c, side = q.conn.astype(np.int64), q.side.astype(np.int64)
    live = (w.conns.state[c, side] == q.state) & (w.conns.gen[c, side] == q.gen)
    return c[live]


def _trans_before(w: col.Tables, k0: int, n_trans: int) -> int:
    """How many transitions came before segment k0 (their ``seg`` is below it)."""
    seg = w.trans.seg[:n_trans]
    return int(np.searchsorted(seg, k0, side="left")) if n_trans else 0


def _sample_counters(w: col.Tables, t0: int) -> None:
    """Keep a few samples of the endpoints per state over the transitions that leave."""
    if t0 == 0:
        return
    counts = np.zeros(NSTATES, dtype=np.int64)
    counts += np.bincount(w.base_states.reshape(-1), minlength=NSTATES)[:NSTATES]
    counts += w.held_counts[:NSTATES]
    marks = np.unique(np.linspace(0, t0, min(SAMPLES, t0) + 1).astype(np.int64))
    start = 0
    for k in marks[1:].tolist():
        state_counts(w.trans, start, k, counts)
        start = k
        seg = int(w.trans[k - 1].seg)
        ts = float(w.segs[min(seg, int(w.counts[col.N_SEG]) - 1)].ts)
        w.history.append((ts, counts.copy()))


def _compact(w: col.Tables, k0: int, t0: int, keep: np.ndarray, newrow: np.ndarray) -> None:
    """New tables without the rows that leave; row numbers in the others follow."""
    cnt = w.counts
    n_seg, n_trans = int(cnt[col.N_SEG]), int(cnt[col.N_TRANS])

    segs = _fresh_records(w.segs, n_seg - k0)
    col.raw(segs)[: n_seg - k0] = col.raw(w.segs)[k0:n_seg]
    segs.conn[: n_seg - k0] = newrow[w.segs.conn[k0:n_seg].astype(np.int64)]
    trans = _fresh_records(w.trans, n_trans - t0)
    col.raw(trans)[: n_trans - t0] = col.raw(w.trans)[t0:n_trans]
    trans.conn[: n_trans - t0] = newrow[w.trans.conn[t0:n_trans].astype(np.int64)]
    trans.seg[: n_trans - t0] = np.maximum(w.trans.seg[t0:n_trans].astype(np.int64) - k0, 0)

    conns = _fresh_records(w.conns, len(keep))
    col.raw(conns)[: len(keep)] = col.raw(w.conns)[keep]
    # their analysis rows move up too (row 0 stays the scratch); a first segment that left
    # leaves its connection to start its analysis afresh
    had = np.flatnonzero(conns.ana[: len(keep)] != 0)
    ana = _fresh_records(w.ana, len(had) + 1)
    col.raw(ana)[1: len(had) + 1] = col.raw(w.ana)[conns.ana[had].astype(np.int64)]
    conns.ana[had] = np.arange(1, len(had) + 1)
    row0 = conns.row0[: len(keep)].astype(np.int64)
    gone = (row0 != col.NO_ROW) & (row0 < k0)
    conns.row0[: len(keep)] = np.where(gone | (row0 == col.NO_ROW), col.NO_ROW, row0 - k0)
    six = np.flatnonzero(conns.fam[: len(keep)] == 6)
    addrs6 = _fresh(w.addrs6, len(six))
    if len(six):
        addrs6[: len(six)] = w.addrs6[conns.caddr[six].astype(np.int64)]
        conns.caddr[six] = np.arange(len(six))
        conns.saddr[six] = np.arange(len(six))

    # timers of connections that left would never fire (their side moved on): they leave too;
    # the rest, sorted as the heap orders them, is a heap again
    n_timers = int(cnt[col.N_TIMERS])
    q = w.timers[:n_timers]
    moved = newrow[q.conn.astype(np.int64)]
    stay = q[moved >= 0].copy()
    stay.conn = moved[moved >= 0]
    stay = stay[np.lexsort((stay.state, stay.side, stay.conn, stay.deadline))]
    timers = _fresh_records(w.timers, len(stay))
    timers[: len(stay)] = stay
    cnt[col.N_TIMERS] = len(stay)

    def pairs(arr: np.ndarray, n: int, first: int) -> tuple[np.ndarray, int]:
        """(row, value) pairs whose row stays, with the row moved down by ``first``."""
        kept = arr[:n][arr[:n, 0] >= first].copy()
        kept[:, 0] -= first
        out = np.zeros((max(len(kept), 16) * 2, arr.shape[1]), dtype=arr.dtype)
        out[: len(kept)] = kept
        return out, len(kept)

    w.seg_back, cnt[col.N_SEG_BACK] = pairs(w.seg_back, int(cnt[col.N_SEG_BACK]), k0)
    w.long, cnt[col.N_LONG] = pairs(w.long, int(cnt[col.N_LONG]), k0)
    w.anom, cnt[col.N_ANOM] = pairs(w.anom, int(cnt[col.N_ANOM]), k0)
    w.dupack, cnt[col.N_DUPACK] = pairs(w.dupack, int(cnt[col.N_DUPACK]), k0)
    w.sack, cnt[col.N_SACK] = pairs(w.sack, int(cnt[col.N_SACK]), k0)
    w.trans_ts, cnt[col.N_TRANS_TS] = pairs(w.trans_ts, int(cnt[col.N_TRANS_TS]), t0)
    w.trans_back, cnt[col.N_TRANS_BACK] = pairs(w.trans_back, int(cnt[col.N_TRANS_BACK]), t0)
    hist = w.base_hist[: int(cnt[col.N_BASE_HIST])]
    hist = hist[newrow[hist[:, 0]] >= 0].copy()
    hist[:, 0] = newrow[hist[:, 0]]
    hist[:, 1] = np.maximum(hist[:, 1] - k0, 0)
    w.base_hist = np.zeros((max(len(hist), 16) * 2, 4), dtype=np.int64)
    w.base_hist[: len(hist)] = hist
    cnt[col.N_BASE_HIST] = len(hist)

    w.segs, w.trans, w.conns, w.addrs6, w.timers, w.ana = segs, trans, conns, addrs6, timers, ana
    cnt[col.N_SEG], cnt[col.N_TRANS], cnt[col.N_CONN], cnt[col.N_ADDR6] = n_seg - k0, n_trans - t0, len(keep), len(six)
    cnt[col.N_ANA] = len(had) + 1
    from ..core.connhash import rebuild_hash

    w.hash = np.zeros(len(w.hash), dtype=np.int32)
    rebuild_hash(w.hash, w.conns, w.addrs6, len(keep))


def _fresh(table: np.ndarray, rows: int) -> np.ndarray:
    """An empty table like ``table`` with room for ``rows`` and as many again to grow into."""
    return np.zeros((max(2 * rows, 64), *table.shape[1:]), dtype=table.dtype)


def _fresh_records(table: Records, rows: int) -> Records:
    """:func:`_fresh` for a record table."""
    return np.zeros(max(2 * rows, 64), dtype=table.dtype).view(Records)
