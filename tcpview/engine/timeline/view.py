"""What readers see: a published view of the engine's tables (:class:`View`), and the rare
facts kept beside them, read as dicts.

Readers take one view per question and never look past its lengths, so they see a consistent
prefix without a lock (see INVARIANTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...records import Records
from ..core import columns as col
from ..core.tcp import WHY_FW2_EXPIRED, WHY_TW_EXPIRED


@dataclass(frozen=True, eq=False)
class View:
    """What readers see: the tables and how many of their rows were complete when published."""

    conns: Records
    segs: Records
    trans: Records
    addrs6: np.ndarray
    seg_back: np.ndarray
    trans_back: np.ndarray
    base_hist: np.ndarray
    long: np.ndarray
    anom: np.ndarray
    trans_ts: np.ndarray
    dupack: np.ndarray
    sack: np.ndarray
    ana: Records
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
    base_progress: np.ndarray | None = None
    """Each connection's :data:`~tcpview.engine.core.columns.PROGRESS` at the horizon (likewise)."""
    fragments: int = 0
    """Frames held as IP fragments of a datagram that a later frame completed (that frame is
    the TCP packet)."""
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

    def ids(self, rows):
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

    def start_progress(self, n: int) -> Records:
        """The first n connections' :data:`~tcpview.engine.core.columns.PROGRESS` at the horizon."""
        out = np.zeros(n, dtype=col.PROGRESS).view(Records)
        if self.base_progress is not None:
            m = min(n, len(self.base_progress))
            col.raw(out)[:m] = col.raw(self.base_progress)[:m]
        return out

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
    def pairs(self, name: str) -> dict[int, float]:
        """A table of (row, value) pairs (``seg_back``, ``long``, ``anom``, ``dupack``...) as a
        dict, made once per view."""
        got = self._memo.get(name)
        if got is None:
            arr = getattr(self, name)[: self.n[name]]
            got = {int(r): v for r, v in arr.tolist()}
            self._memo[name] = got
        return got

    def seg_real_ts(self, row: int) -> float:
        """Capture time of segment ``row`` as captured (the table keeps times non-decreasing)."""
        if self.n["seg_back"]:
            real = self.pairs("seg_back").get(row)
            if real is not None:
                return real
        return float(self.segs[row].ts)

    def seg_real_times(self) -> np.ndarray:
        """Every segment's capture time as captured (:meth:`seg_real_ts` for all rows at once;
        the table's own when the clock never stepped back: do not write to it)."""
        ts = self.segs.ts[: self.n_seg]
        if not self.n["seg_back"]:
            return ts
        back = self.seg_back[: self.n["seg_back"]]
        ts = ts.copy()
        ts[back[:, 0].astype(np.int64)] = back[:, 1]
        return ts

    def seg_len(self, row: int) -> int:
        """Payload length of segment ``row``."""
        ln = int(self.segs[row].len)
        if ln == col.LONG_LEN:
            return int(self.pairs("long")[row])
        return ln

    def seg_anomaly(self, row: int) -> int:
        """Anomaly bits of segment ``row``."""
        if self.n["anom"]:
            return int(self.pairs("anom").get(row, 0))
        return 0

    def initial_rtts(self, n: int) -> np.ndarray:
        """The initial RTT of the first n connections in seconds (0: none)."""
        at = self.conns.ana[:n].astype(np.int64)
        # a connection's analysis row may be newer than this view (made by the writer since)
        at[at >= min(self.n["ana"], len(self.ana))] = 0
        return np.where(at > 0, self.ana.a_irtt[at], 0.0)

    def seg_dupack(self, row: int) -> tuple[int, int]:
        """A duplicate ACK's number and the frame it repeats (Wireshark's ``#n`` and
        ``duplicate_ack_frame``), or (0, 0)."""
        if self.n["dupack"]:
            v = int(self.pairs("dupack").get(row, 0))
            return col.dupack_number(v), col.dupack_frame(v)
        return 0, 0

    def trans_real_ts(self, row: int, key: float) -> float:
        """Time of transition ``row`` as it happened (``key`` is its time in the log)."""
        if self.n["trans_back"]:
            real = self.pairs("trans_back").get(row)
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
        return row in self.stepped_rows()

    def stepped_rows(self) -> set[int]:
        """The rows of the connections :meth:`stepped_back` is true of (made once per view)."""
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
                    why = col.trans_why(int(self.trans[r].code))
                    if why not in (WHY_TW_EXPIRED, WHY_FW2_EXPIRED):
                        got.add(int(self.trans[r].conn))
            self._memo["stepped"] = got
        return got

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

