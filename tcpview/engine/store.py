"""The timeline: the engine's tables, and every question asked of them at a cursor time.

Invariants (see also INVARIANTS.md):

- One thread appends (the tracker, through the compiled loop); any thread reads. After each
  batch the writer publishes a :class:`View`: the arrays and how many rows of each are
  complete. Readers take a view once per question and never look past its lengths, so they
  see a consistent prefix without a lock. Rows below a published length are never rewritten;
  a table that grows is copied, and a reader holding the old arrays keeps a valid view.
- Readers answer from the append-only rows (segments, transitions, a connection's 4-tuple),
  not from the writer's working fields, so every answer is the replay of a prefix: "the
  world as of t" is a binary search over the time-ordered transitions and a compiled pass
  over them (:mod:`tcpview.engine.replay`).
- pydantic models (:mod:`tcpview.engine.model`) are built on demand for what is shown or
  exported, never stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import columns as col
from .conncols import ConnColumns, conn_array_chunks
from .conns import SIDES, ConnList, ConnView
from .decode import UNSUPPORTED_LINK, reason_text
from .evict import AHEAD, bound_heap, evict, over_budget, read_ahead
from .replay import (
    conn_rows,
    conn_stats,
    seg_count_at,
    seg_count_before,
    state_counts,
    state_series,
    states_after,
    trans_count_at,
)

if TYPE_CHECKING:  # the pydantic models, imported where one is built (pydantic is slow to import)
    from .model import Connection, Segment, Transition
from .tcp import CLOSED, LISTEN, NSTATES, STATE_NAMES, SYN_SENT, WHY_FW2_EXPIRED, WHY_TW_EXPIRED


@dataclass(frozen=True, eq=False)
class View:
    """What readers see: the tables and how many of their rows were complete when published."""

    conns: np.ndarray
    segs: np.ndarray
    trans: np.ndarray
    addrs6: np.ndarray
    seg_back: np.ndarray
    trans_back: np.ndarray
    base_hist: np.ndarray
    long: np.ndarray
    anom: np.ndarray
    trans_ts: np.ndarray
    dupack: np.ndarray
    sack: np.ndarray
    ana: np.ndarray
    n: dict[str, int]
    packets: int
    tcp_packets: int
    first_ts: float | None
    last_ts: float | None
    skipped: dict[str, int]
    version: int
    generation: int
    """Bumped when rows leave (an eviction): row numbers from an older generation are void."""
    base_states: np.ndarray
    """Each connection's states at the horizon (shorter than ``n_conn``: the rest are CLOSED)."""
    base_counts: np.ndarray
    """Each connection's segments and bytes before the horizon (likewise)."""
    base_last: np.ndarray
    """The time of each connection's last segment before the horizon (likewise)."""
    horizon: float | None
    """The time before which rows have left (None: nothing has)."""
    history: tuple
    """``(time, endpoints per state)`` samples of the counters before the horizon."""
    evicted_conns: int
    evicted_segs: int
    held_counts: np.ndarray
    """Endpoints per state of the half-open connections that left (they still count)."""
    base_zeek: tuple = ()
    """Zeek's working state of the connections whose first segments left (rows, W, HB)."""
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def n_conn(self) -> int:
        return self.n["conns"]

    @property
    def next_id(self) -> int:
        """The id the next connection will get (how many there have been)."""
        return self.n_conn + self.evicted_conns

    def row_of(self, cid: int) -> int:
        """The row of connection id ``cid`` (-1 when it has left or does not exist yet)."""
        if not self.evicted_conns:
            return cid if 0 <= cid < self.n_conn else -1
        ids = self.conns.cid[: self.n_conn]
        i = int(np.searchsorted(ids, cid))
        return i if i < self.n_conn and int(ids[i]) == cid else -1

    def ids(self, rows):  # type: ignore[no-untyped-def]
        """Connection ids of ``rows`` (the rows themselves while nothing has left)."""
        if not self.evicted_conns:
            return rows
        return self.conns.cid[np.asarray(rows, dtype=np.int64)].astype(np.int64)

    def start_states(self, n: int) -> np.ndarray:
        """The first n connections' states at the horizon, as an ``(n, 2)`` array to replay from."""
        states = np.zeros((n, 2), dtype=np.uint8)
        m = min(n, len(self.base_states))
        states[:m] = self.base_states[:m]
        return states

    def start_counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first n connections' segments and bytes before the horizon."""
        pk, nb = np.zeros(n, np.int64), np.zeros(n, np.int64)
        m = min(n, len(self.base_counts))
        pk[:m], nb[:m] = self.base_counts[:m, 0], self.base_counts[:m, 1]
        return pk, nb

    @property
    def n_seg(self) -> int:
        return self.n["segs"]

    @property
    def n_trans(self) -> int:
        return self.n["trans"]

    # -- the rare things, as dicts ---------------------------------------------------------------
    def _pairs(self, name: str) -> dict[int, float]:
        got = self._memo.get(name)
        if got is None:
            arr = getattr(self, name)[: self.n[name]]
            got = {int(r): v for r, v in arr.tolist()}
            self._memo[name] = got
        return got

    def seg_real_ts(self, row: int) -> float:
        """Capture time of segment ``row`` as captured (the table keeps times non-decreasing)."""
        if self.n["seg_back"]:
            real = self._pairs("seg_back").get(row)
            if real is not None:
                return real
        return float(self.segs[row].ts)

    def seg_len(self, row: int) -> int:
        """Payload length of segment ``row``."""
        ln = int(self.segs[row].len)
        if ln == col.LONG_LEN:
            return int(self._pairs("long")[row])
        return ln

    def seg_anomaly(self, row: int) -> int:
        """Anomaly bits of segment ``row``."""
        if self.n["anom"]:
            return int(self._pairs("anom").get(row, 0))
        return 0

    def initial_rtts(self, n: int) -> np.ndarray:
        """The initial RTT of the first n connections in seconds (0: none)."""
        at = self.conns.ana[:n].astype(np.int64)
        # a connection's analysis row may be newer than this view (made by the writer since)
        at[at >= min(self.n["ana"], len(self.ana))] = 0
        return np.where(at > 0, self.ana.a_irtt[at], 0.0)

    def initial_rtt(self, row: int) -> float:
        """The initial RTT of the connection in ``row`` in seconds (0: none)."""
        at = int(self.conns.ana[row])
        if at >= min(self.n["ana"], len(self.ana)):  # made by the writer after this view
            return 0.0
        return float(self.ana.a_irtt[at]) if at > 0 else 0.0

    def seg_dupack(self, row: int) -> tuple[int, int]:
        """A duplicate ACK's number and the frame it repeats (Wireshark's ``#n`` and
        ``duplicate_ack_frame``), or (0, 0)."""
        if self.n["dupack"]:
            v = int(self._pairs("dupack").get(row, 0))
            return v & col.DUPACK_NUM_MASK, v >> col.DUPACK_FRAME_SHIFT
        return 0, 0

    def trans_real_ts(self, row: int, key: float) -> float:
        """Time of transition ``row`` as it happened (``key`` is its time in the log)."""
        if self.n["trans_back"]:
            real = self._pairs("trans_back").get(row)
            if real is not None:
                return real
        return key

    @property
    def clock_stepped_back(self) -> bool:
        """Whether the capture's clock ever went backwards."""
        return bool(self.n["seg_back"] or self.n["trans_back"] or self.n["trans_ts"])

    def stepped_back(self, row: int) -> bool:
        """Whether the connection in ``row`` has a segment or a transition whose time the
        clock rule moved: questions about it then use its own times, as captured."""
        got = self._memo.get("stepped")
        if got is None:
            got = set()
            for r in self.seg_back[: self.n["seg_back"], 0].astype(np.int64).tolist():
                if r < self.n_seg:
                    got.add(int(self.segs[r].conn))
            for r in self.trans_back[: self.n["trans_back"], 0].astype(np.int64).tolist():
                if r < self.n_trans:
                    got.add(int(self.trans[r].conn))
            for r in self.trans_ts[: self.n["trans_ts"], 0].astype(np.int64).tolist():
                if r < self.n_trans:
                    why = (int(self.trans[r].code) >> col.TR_WHY_SHIFT) & 15
                    if why not in (WHY_TW_EXPIRED, WHY_FW2_EXPIRED):
                        got.add(int(self.trans[r].conn))
            self._memo["stepped"] = got
        return row in got

    def base_hist_of(self, cid: int) -> list[tuple[int, int, int]]:
        """``(segment row, dir, old base)`` of each base change of connection ``cid``."""
        hist = self._memo.get("base_hist")
        if hist is None:
            hist = {}
            for c, row, d, old in self.base_hist[: self.n["base_hist"]].tolist():
                hist.setdefault(c, []).append((row, d, old))
            self._memo["base_hist"] = hist
        return hist.get(cid, [])

    def long_bytes_before(self, k: int) -> list[tuple[int, int]]:
        """(row, length) of the long segments among the first k."""
        return [(r, ln) for r, ln in self.long[: self.n["long"]].tolist() if r < k]


class Timeline:
    """All connections, their segments and transitions; queries at any cursor time."""

    def __init__(self, rows: int | None = None) -> None:
        """``rows``: start the tables that small (see :class:`~tcpview.engine.columns.Tables`)."""
        self._w = col.Tables(rows)
        self.version = 0
        self.generation = 0
        self._budget: int | None = None
        self.pin: float | None = None
        """A time readers still need (a file replay's cursor): the oldest part leaves only
        before it, and :meth:`holding` tells a file's reader to wait past it."""
        self.held = False
        """Whether the file's reader is waiting for the pin to move on (see :meth:`holding`)."""
        self._view = self._make_view()
        self._lock = threading.Lock()  # guards the readers' caches below, not the tables
        self._rows: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()
        self._cache: dict[str, tuple] = {}
        self.conns = ConnList(self)

    @property
    def budget(self) -> int | None:
        """Bytes the tables may use (None: no limit); over it, the oldest rows leave."""
        return self._budget

    @budget.setter
    def budget(self, size: int | None) -> None:
        if size is not None:
            bound_heap()
        self._budget = size

    # -- the writer's side --------------------------------------------------------------------
    def publish(self) -> None:
        """Make everything appended so far visible to readers (tracker only, after a batch);
        first, when the tables outgrow the budget, let the oldest rows leave."""
        self._make_room()
        self.version += 1
        self._view = self._make_view()

    def _make_room(self) -> bool:
        """Let the oldest rows leave when the tables outgrow the budget (never past the pin);
        returns whether any left."""
        if self.budget is None or not over_budget(self._w, self.budget) or not evict(self._w, self.budget, self.pin):
            return False
        self.generation += 1
        return True

    def holding(self) -> bool:
        """Whether a file's reader should wait (writer's thread): the timeline is pinned and
        holds :data:`~tcpview.engine.evict.AHEAD` of its budget past the pin. Room the pin
        moving on has made is made first (published only when anything left)."""
        pin, budget = self.pin, self.budget
        if pin is None or budget is None:
            self.held = False
            return False
        if self._make_room():
            self.version += 1
            self._view = self._make_view()
        self.held = read_ahead(self._w, pin) > budget * AHEAD
        return self.held

    @property
    def horizon(self) -> float | None:
        """The time before which rows have left (None: nothing has)."""
        return self._view.horizon

    @property
    def evicted(self) -> dict[str, int]:
        """How many connections and segments have left the timeline."""
        v = self._view
        return {"connections": v.evicted_conns, "segments": v.evicted_segs}

    def _make_view(self) -> View:
        w = self._w
        cnt = w.cnt.tolist()
        skipped: dict[str, int] = {}
        skip = w.skip.tolist()
        for code, k in enumerate(skip[:16]):
            if k:
                skipped[reason_text(code, 0)] = k
        for lt1, k in zip(skip[16::2], skip[17::2], strict=True):
            if lt1:
                skipped[reason_text(UNSUPPORTED_LINK, lt1 - 1)] = k
        packets = cnt[col.PACKETS]
        n = {name: cnt[counter] for name, (_dt, counter, _cap) in col.Tables.LAYOUT.items()}
        return View(w.conns, w.segs, w.trans, w.addrs6, w.seg_back, w.trans_back, w.base_hist, w.long, w.anom,
                    w.trans_ts, w.dupack, w.sack, w.ana, n, packets, cnt[col.TCP_PACKETS],
                    float(w.clk[col.FIRST_TS]) if packets else None, float(w.clk[col.LAST_TS]) if packets else None,
                    skipped, self.version, self.generation, w.base_states, w.base_counts, w.base_last, w.horizon,
                    tuple(w.history), w.evicted_conns, w.evicted_segs, w.held_counts.copy(),
                    w.base_zeek)

    # -- the readers' side ----------------------------------------------------------------------
    def view(self) -> View:
        """The newest published view (take it once per question)."""
        return self._view

    @property
    def packets(self) -> int:
        """Frames read, TCP or not."""
        return self._view.packets

    @property
    def tcp_packets(self) -> int:
        """TCP segments stored."""
        return self._view.tcp_packets

    @property
    def first_ts(self) -> float | None:
        """Capture time of the first frame (None before any)."""
        return self._view.first_ts

    @property
    def last_ts(self) -> float | None:
        """Latest capture time seen."""
        return self._view.last_ts

    @property
    def skipped(self) -> dict[str, int]:
        """Frames not decoded, by reason."""
        return dict(self._view.skipped)

    def nbytes(self) -> int:
        """Bytes the store's tables hold (allocated, not only used)."""
        return self._w.nbytes()

    # -- rows of one connection (cached, extended as the timeline grows) ------------------------------
    def rows_of(self, row: int, v: View | None = None) -> np.ndarray:
        """Rows of the segments of the connection in ``row`` of ``v`` (the newest view by default)."""
        v = v or self._view
        return self._cached_rows("seg", row, v.segs, v.n_seg, v.generation)

    def trans_rows_of(self, row: int, v: View | None = None) -> np.ndarray:
        """Rows of the transitions of the connection in ``row`` of ``v``."""
        v = v or self._view
        return self._cached_rows("trans", row, v.trans, v.n_trans, v.generation)

    def _cached_rows(self, kind: str, cid: int, table: np.ndarray, n: int, generation: int) -> np.ndarray:
        key = (kind, cid, generation)
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None:
                self._rows.move_to_end(key)
        if hit is not None and hit[0] == n:
            return hit[1]
        if hit is not None and hit[0] > n:  # an older view than the one cached
            return hit[1][: int(np.searchsorted(hit[1], n))]
        if hit is not None:
            more = conn_rows(table, cid, hit[0], n)
            rows = np.concatenate((hit[1], more)) if len(more) else hit[1]
        else:
            rows = conn_rows(table, cid, 0, n)
        with self._lock:
            self._rows[key] = (n, rows)
            self._rows.move_to_end(key)
            while len(self._rows) > 512:
                self._rows.popitem(last=False)
        return rows

    # -- "as of t" ---------------------------------------------------------------------------------
    def trans_index_at(self, t: float | None, v: View | None = None) -> int:
        """How many transitions happened at or before ``t`` (all when None)."""
        v = v or self._view
        if t is None:
            return v.n_trans
        return int(trans_count_at(v.trans, v.segs, v.trans_ts, v.n["trans_ts"], v.n_trans, t))

    def seg_index_at(self, t: float | None, v: View | None = None) -> int:
        """How many segments were captured at or before ``t`` (all when None)."""
        v = v or self._view
        if t is None:
            return v.n_seg
        return int(seg_count_at(v.segs, v.n_seg, t))

    def seg_index_before(self, t: float, v: View | None = None) -> int:
        """How many segments were captured strictly before ``t``."""
        v = v or self._view
        return int(seg_count_before(v.segs, v.n_seg, t))

    def seg_time(self, i: int, v: View | None = None) -> float:
        """The (non-decreasing) time of segment row i, as the cursor uses it."""
        v = v or self._view
        return float(v.segs[i].ts)

    def states_at(self, t: float | None, v: View | None = None) -> np.ndarray:
        """Both endpoints' states of every connection as of ``t``: shape ``(n_conn, 2)``."""
        v = v or self._view
        k = self.trans_index_at(t, v)
        prev = self._cache.get("states")
        if prev is not None and prev[0] == v.generation and prev[1] <= k and len(prev[2]) <= v.n_conn:
            states = v.start_states(v.n_conn)
            states[: len(prev[2])] = prev[2]
            k0 = prev[1]
        else:
            states, k0 = v.start_states(v.n_conn), 0
        states_after(v.trans, k0, k, states)
        self._cache["states"] = (v.generation, k, states)
        return states

    def conn_stats_at(self, t: float | None, v: View | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per connection as of ``t``: segments, payload bytes and the row of its latest segment
        (-1 when none)."""
        v = v or self._view
        m = self.seg_index_at(t, v)
        n = v.n_conn
        prev = self._cache.get("conn")
        pk, nb = v.start_counts(n)
        last = np.full(n, -1, np.int64)
        k0 = 0
        if prev is not None and prev[0] == v.generation and prev[1] <= m and len(prev[2]) <= n:
            j = len(prev[2])
            pk[:j], nb[:j], last[:j] = prev[2], prev[3], prev[4]
            k0 = prev[1]
        conn_stats(v.segs, k0, m, pk, nb, last)
        self._cache["conn"] = (v.generation, m, pk, nb, last)
        if v.n["long"]:
            nb = nb.copy()
            for row, ln in v.long_bytes_before(m):
                nb[int(v.segs[row].conn)] += ln - col.LONG_LEN
        return pk, nb, last

    def half_open_at(self, t: float | None = None) -> int:
        """Connections whose SYN was never answered as of time t: the client in SYN_SENT, the
        server not past LISTEN (what a SYN flood makes), counting those that left the
        timeline under a memory budget."""
        v = self._view
        n = self.conn_count_at(t, v)
        states = self.states_at(t, v)[:n]
        waiting = (states[:, 0] == SYN_SENT) & ((states[:, 1] == LISTEN) | (states[:, 1] == CLOSED))
        return int(np.count_nonzero(waiting)) + int(v.held_counts[SYN_SENT])

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Endpoints per state as of time t (now when None), CLOSED excluded, as ss counts."""
        v = self._view
        k = self.trans_index_at(t, v)
        if v.horizon is not None and t is not None and t < v.horizon:
            return self._sampled_counts(v, t)
        prev = self._cache.get("counts")
        if prev is not None and prev[0] == v.generation and prev[1] <= k:
            counts = prev[2].copy()
            k0 = prev[1]
        else:
            counts = np.bincount(v.base_states.reshape(-1), minlength=NSTATES)[:NSTATES].astype(np.int64)
            counts += v.held_counts[:NSTATES]
            k0 = 0
        state_counts(v.trans, k0, k, counts)
        self._cache["counts"] = (v.generation, k, counts.copy())
        return {STATE_NAMES[i]: int(counts[i]) for i in range(1, NSTATES)}

    def _sampled_counts(self, v: View, t: float) -> dict[str, int]:
        """Counters before the horizon, from the samples kept when those rows left."""
        counts = np.zeros(NSTATES, dtype=np.int64)
        for ts, sample in v.history:
            if ts > t:
                break
            counts = sample
        return {STATE_NAMES[i]: int(counts[i]) for i in range(1, NSTATES)}

    def counter_series(self, state: int, buckets: int, t_end: float | None = None) -> list[int]:
        """Count of endpoints in ``state`` sampled at ``buckets`` even times up to t_end."""
        v = self._view
        if v.first_ts is None or buckets <= 0:
            return []
        t0 = v.first_ts
        t1 = v.last_ts if t_end is None else t_end
        if t1 is None or t1 <= t0:
            return [self.counters_at(t1)[STATE_NAMES[state]]] * buckets
        times = t0 + (t1 - t0) * (np.arange(1, buckets + 1) / buckets)
        series = state_series(v.trans, v.segs, v.trans_ts, v.n["trans_ts"], v.n_trans, state, times)
        if v.horizon is None:
            return series.tolist()
        base = int(np.count_nonzero(v.base_states == state)) + int(v.held_counts[state])
        out = []
        for tb, val in zip(times.tolist(), series.tolist(), strict=True):
            out.append(self._sampled_counts(v, tb)[STATE_NAMES[state]] if tb < v.horizon else base + val)
        return out

    def conn_count_at(self, t: float | None, v: View | None = None) -> int:
        """Number of connections whose first packet is at or before t (in ``v``, the newest
        view by default)."""
        v = v or self._view
        if t is None:
            return v.n_conn
        firsts = self._cache.get("firsts")
        if firsts is None or firsts[0] != (v.generation, v.n_conn):
            acc = np.maximum.accumulate(v.conns.first_ts[: v.n_conn]) if v.n_conn else np.zeros(0)
            firsts = ((v.generation, v.n_conn), acc)
            self._cache["firsts"] = firsts
        return int(np.searchsorted(firsts[1], t, side="right"))

    # -- models ----------------------------------------------------------------------------------
    def connection_dict(self, cid: int, t: float | None = None) -> dict:
        """Connection ``cid`` as of time t as a plain dict, in the shape of :class:`Connection`."""
        return self.conns[cid].as_dict(t)

    def connection(self, cid: int, t: float | None = None) -> Connection:
        """The pydantic model of connection ``cid`` as of time t."""
        from .model import Connection

        return Connection.model_validate(self.connection_dict(cid, t))

    def connection_columns(self, t: float | None = None) -> ConnColumns:
        """Every connection that exists at time t, column by column (what a summary prints),
        built from the tables in bulk."""
        whole = ConnColumns.empty()
        for part in self.connection_column_chunks(t):
            whole.extend(part)
        return whole

    def connection_column_chunks(self, t: float | None = None, size: int = 65536) -> Iterator[ConnColumns]:
        """:meth:`connection_columns` in pieces of ``size`` connections: only one piece is
        ever Python objects (a million connections would be a million of each column)."""
        for part in conn_array_chunks(self, t, size):
            yield part.columns()

    def connection_dicts(self, t: float | None = None) -> list[dict]:
        """Every connection that exists at time t, as plain dicts in the shape of
        :class:`Connection` (for bulk output; :meth:`connection` gives the model)."""
        return self.connection_columns(t).dicts()

    def connections(self, t: float | None = None) -> list[Connection]:
        """Every connection that exists at time t, as models."""
        from .model import Connection

        return [Connection.model_validate(d) for d in self.connection_dicts(t)]

    def segment(self, cid: int, i: int) -> Segment:
        """The pydantic model of segment i of connection cid."""
        return self.conns[cid].segment(i)

    def segments(self, cid: int, t: float | None = None) -> Iterator[Segment]:
        """Connection cid's segments up to time t, as models."""
        c = self.conns[cid]
        for i in range(c.count_at(t)):
            yield c.segment(i)

    def transitions(self, cid: int, t: float | None = None) -> list[Transition]:
        """Connection cid's state transitions up to time t, as models."""
        from .model import Transition

        out = []
        for ts, frame, side, old, new, why in self.conns[cid].trans:
            if t is not None and ts > t:
                break
            out.append(Transition(ts=ts, frame=frame, conn=cid, side=SIDES[side], old=STATE_NAMES[old],
                                  new=STATE_NAMES[new], why=why))
        return out

    def all_segments_in_frame_order(self) -> Iterator[Segment]:
        """Every segment of every connection, ordered by frame number (for export)."""
        v = self._view
        n = v.n_seg
        conn = v.segs.conn[:n].astype(np.int64)
        order = np.argsort(v.segs.frame[:n], kind="stable")
        # each segment's index within its connection
        by_conn = np.argsort(conn, kind="stable")
        counts = np.bincount(conn, minlength=v.n_conn)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
        index = np.empty(n, dtype=np.int64)
        index[by_conn] = np.arange(n) - np.repeat(starts, counts)
        views: dict[int, ConnView] = {}
        for row in order.tolist():
            cid = int(conn[row])
            c = views.get(cid)
            if c is None:
                c = views[cid] = ConnView(self, v, cid)
            yield c.segment(int(index[row]))
