"""One connection of the timeline, read from the tables (:class:`ConnView`), the list of them
(:class:`ConnList`); connections as columns for bulk output are in :mod:`.conncols`.

Everything here reads a published :class:`~tcpview.engine.timeline.view.View`; nothing writes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...textutil import addr_text, addr_value, endpoint
from ..core import columns as col
from ..core.passes import one_conn_progress, seg_fields, seg_states, trans_times
from ..core.rtt import conn_numbers
from ..core.tcp import (
    STATE_NAMES,
    WHY_FW2_EXPIRED,
    WHY_TW_EXPIRED,
    WHYS,
    analysis_names,
    anomaly_names,
    flag_names,
)
from ..core.tcpopts import parse_options_of
from .zeek_history import zeek_of_rows

if TYPE_CHECKING:
    from ..core.model import Segment
    from .reader import Reader
    from .view import View

CLIENT, SERVER = 0, 1


def conn_addrs(v: View, n: int, server: bool) -> tuple[np.ndarray, np.ndarray]:
    """The client's (or server's) address of the first n connections as two unsigned 64-bit
    halves, which sort as the addresses do (IPv4 in the low half)."""
    C = v.conns[:n]
    hi = np.zeros(n, dtype=np.uint64)
    lo = (C.saddr if server else C.caddr).astype(np.uint64)
    six = np.flatnonzero(C.fam == 6)
    if len(six):
        rows = v.addrs6[C.caddr[six].astype(np.int64)].view(np.uint64)
        hi[six] = rows[:, 2 if server else 0]
        lo[six] = rows[:, 3 if server else 1]
    return hi, lo


def notes_of(bits: int) -> list[str]:
    """The notes shown for a connection with these ``NOTE_*`` bits (its
    :data:`~tcpview.engine.core.columns.PROGRESS` notes): a refused connection is not also
    called reset."""
    out = []
    if bits & col.NOTE_PARTIAL:
        out.append("partial")
    if bits & col.NOTE_REFUSED:
        out.append("refused")
    elif bits & col.NOTE_RESET:
        out.append("reset")
    if bits & col.NOTE_ANOMALY:
        out.append("anomaly")
    return out


class ConnList(Sequence):
    """``timeline.conns``: the connections published so far, as :class:`ConnView` s by id.

    Ids count from 0 in order of first packet; once older connections have left the timeline
    (a memory budget), the ids still standing are no longer 0..n-1: iterate, or use
    :meth:`ids`.
    """

    def __init__(self, tl: Reader) -> None:
        self._tl = tl

    def __len__(self) -> int:
        return self._tl.view().n_conn

    def __getitem__(self, cid):
        v = self._tl.view()
        if isinstance(cid, slice):  # by position (row), which is by id until rows have left
            return [ConnView(self._tl, v, row) for row in range(*cid.indices(v.n_conn))]
        if cid < 0:
            cid += v.n_conn
        row = v.row_of(cid)
        if row < 0:
            raise IndexError(f"no connection {cid}")
        return ConnView(self._tl, v, row)

    def __iter__(self):
        v = self._tl.view()
        for row in range(v.n_conn):
            yield ConnView(self._tl, v, row)

    def has(self, cid: int) -> bool:
        """Whether connection ``cid`` is in the timeline (published, and not evicted)."""
        return self._tl.view().row_of(cid) >= 0

    def get(self, cid: int | None) -> ConnView | None:
        """Connection ``cid``, or None when it is not in the timeline. One look at the newest
        view: ``has`` then ``[]`` could see two, and a memory budget may have let it go in
        between."""
        if cid is None:
            return None
        v = self._tl.view()
        row = v.row_of(cid)
        return ConnView(self._tl, v, row) if row >= 0 else None

    def ids(self) -> list[int]:
        """The ids of the connections in the timeline, in order."""
        v = self._tl.view()
        return [int(x) for x in v.ids(np.arange(v.n_conn))]


class ConnView:
    """One connection as of a published view: its 4-tuple, segments and transitions.

    ``row`` is where it is in that view's tables, ``id`` its connection id.
    """

    __slots__ = ("_tl", "_v", "row", "id", "_r", "_rows", "_trows", "_states", "_nums")

    def __init__(self, tl: Reader, v: View, row: int) -> None:
        self._tl = tl
        self._v = v
        self.row = row
        # its row as a plain structured scalar: a view of the table (what the writer updates
        # shows), read field by field in C (a record array's attributes go through Python)
        self._r = v.conns.view(np.ndarray)[row]
        self.id = int(self._r["cid"])
        self._rows: np.ndarray | None = None
        self._trows: np.ndarray | None = None
        self._states: np.ndarray | None = None
        self._nums: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def view(self) -> View:
        """The published view this connection was read from."""
        return self._v

    @property
    def conn_record(self) -> np.void:
        """Its row of the connection table (a structured scalar: ``conn_record["port"]`` ...)."""
        return self._r

    def use_rows(self, seg_rows: np.ndarray, trans_rows: np.ndarray) -> None:
        """Answer from these segment and transition rows (found for many connections at
        once) instead of looking its own up."""
        self._rows, self._trows = seg_rows, trans_rows

    # -- identity -----------------------------------------------------------------------------
    @property
    def family(self) -> int:
        return int(self._r["fam"])

    def _addr(self, server: bool) -> tuple[int, int]:
        r = self._r
        if r["fam"] == 4:
            return 0, int(r["saddr"] if server else r["caddr"])
        a6 = self._v.addrs6[int(r["caddr"])]
        return (int(a6[2]), int(a6[3])) if server else (int(a6[0]), int(a6[1]))

    @property
    def cip(self) -> int | bytes:
        return addr_value(self.family, *self._addr(False))

    @property
    def sip(self) -> int | bytes:
        return addr_value(self.family, *self._addr(True))

    @property
    def cport(self) -> int:
        return int(self._r["port"][0])

    @property
    def sport(self) -> int:
        return int(self._r["port"][1])

    def client_ip_text(self) -> str:
        return addr_text(self.family, *self._addr(False))

    def server_ip_text(self) -> str:
        return addr_text(self.family, *self._addr(True))

    def client_text(self) -> str:
        return endpoint(self.client_ip_text(), self.cport)

    def server_text(self) -> str:
        return endpoint(self.server_ip_text(), self.sport)

    @property
    def first_ts(self) -> float:
        return float(self._r["first_ts"])

    def progress_at(self, t: float | None) -> np.record:
        """Its :data:`~tcpview.engine.core.columns.PROGRESS` as of time t (now when None): notes,
        analysis bits, retransmissions and initial RTT, from its segments at or before t."""
        v = self._v
        if t is None or not (v.clock_stepped_back and v.stepped_back(self.row)):
            return self._tl.progress_at(t, v)[self.row]
        # its own times, as captured (as count_at): replayed from its first segments alone
        P = v.start_progress(self.row + 1)[self.row:]
        states = v.start_states(self.row + 1)[self.row:]
        one_conn_progress(v.segs, v.trans, v.conns.fl, v.seg_back[: v.n["seg_back"]], v.anom[: v.n["anom"]],
                          self.rows[: self.count_at(t)], self.trans_rows, states, P, np.zeros(2, np.int64))
        return P[0]

    def notes(self, t: float | None = None) -> list[str]:
        """Its notes as of time t (now when None): partial, refused or reset, anomaly."""
        return notes_of(int(self.progress_at(t).notes))

    @property
    def refused(self) -> bool:
        """Whether a RST answered its SYN (as of now)."""
        return bool(self.progress_at(None).notes & col.NOTE_REFUSED)

    # -- rows -----------------------------------------------------------------------------------
    @property
    def rows(self) -> np.ndarray:
        """Rows of its segments in the segment table, oldest first."""
        if self._rows is None:
            self._rows = self._tl.rows_of(self.row, self._v)
        return self._rows

    @property
    def trans_rows(self) -> np.ndarray:
        """Rows of its transitions in the transition table, oldest first."""
        if self._trows is None:
            self._trows = self._tl.trans_rows_of(self.row, self._v)
        return self._trows

    @property
    def seg_states(self) -> np.ndarray:
        """Both endpoints' states after each of its segments, shape ``(n, 2)``."""
        if self._states is None:
            out = np.zeros((len(self.rows), 2), dtype=np.uint8)
            seg_states(self._v.trans, self.trans_rows, self.rows, out)
            self._states = out
        return self._states

    @property
    def n(self) -> int:
        """Number of segments stored."""
        return len(self.rows)

    @property
    def start_states(self) -> tuple[int, int]:
        """Both endpoints' states before its first stored segment (CLOSED unless older rows
        have left the timeline)."""
        st = self._v.start_states(self.row + 1)[self.row]
        return int(st[0]), int(st[1])

    @property
    def state(self) -> list[int]:
        """[client, server] states now (after every published transition)."""
        return list(self.states_at(None))

    @property
    def last_ts(self) -> float:
        """Capture time of the newest segment."""
        return self.last_ts_at(self.n)

    def last_ts_at(self, k: int) -> float:
        """Capture time of the newest of its first k segments (its first time when k is 0, or
        the last before the horizon when older segments have left)."""
        if k <= 0:
            if self.row < len(self._v.base_last) and self._v.base_counts[self.row, 0]:
                return float(self._v.base_last[self.row])
            return self.first_ts
        return self._v.seg_real_ts(int(self.rows[k - 1]))

    def count_at(self, t: float | None) -> int:
        """Number of this connection's segments with ts <= t (all when t is None)."""
        rows = self.rows
        if t is None:
            return len(rows)
        if self._v.clock_stepped_back and self._v.stepped_back(self.row):
            # the connection's own times, as captured: all of them if its last is before t
            real = [self._v.seg_real_ts(r) for r in rows.tolist()]
            if not real or real[-1] <= t:
                return len(real)
            return bisect.bisect_right(real, t)
        return int(np.searchsorted(self._v.segs.ts[rows], t, side="right"))

    def trans_times(self) -> np.ndarray:
        """The log times of its transitions."""
        v = self._v
        return trans_times(v.trans, v.segs, v.trans_ts, v.n["trans_ts"], self.trans_rows)

    def states_at(self, t: float | None) -> tuple[int, int]:
        """(client, server) TcpState values as of time t (now when t is None)."""
        tr = self.trans_rows
        if t is not None and len(tr):
            if self._v.clock_stepped_back and self._v.stepped_back(self.row):
                real = [x[0] for x in self.trans]
                k = len(real) if real[-1] <= t else bisect.bisect_right(real, t)
            else:
                k = int(np.searchsorted(self.trans_times(), t, side="right"))
            tr = tr[:k]
        st = [int(x) for x in self._v.start_states(self.row + 1)[self.row]]
        for code in self._v.trans.code[tr].tolist():
            st[col.trans_side(code)] = col.trans_new(code)
        return st[0], st[1]

    def bytes_at(self, k: int) -> int:
        """Payload bytes in its first k segments."""
        rows = self.rows[:k]
        total = int(self._v.segs.len[rows].sum(dtype=np.int64))
        if self._v.n["long"]:
            for r in rows[self._v.segs.len[rows] == col.LONG_LEN].tolist():
                total += self._v.seg_len(r) - col.LONG_LEN
        return total

    @property
    def bytes(self) -> int:
        """Payload bytes of every segment."""
        return self.bytes_at(self.n)

    def record(self, i: int) -> tuple:
        """Segment i as ``(ts, frame, seq_raw, ack_raw, len, win, flags, dir, client_state,
        server_state, bits)``: ``win`` scaled as known then, ``bits`` anomalies | analysis << 8."""
        return self.records(i, i + 1)[0]

    def records(self, start: int, stop: int) -> list[tuple]:
        """Segments ``start .. stop-1`` as :meth:`record` gives them."""
        v = self._v
        rows = self.rows[start:stop]
        f = np.zeros((len(rows), 9), dtype=np.int64)
        seg_fields(v.segs, rows, f)
        st = self.seg_states[start:stop].tolist()
        out = []
        for j, (frame, seq, ack, ln, win, flags, d, shift, ana) in enumerate(f.tolist()):
            row = int(rows[j])
            if ln == col.LONG_LEN:
                ln = v.seg_len(row)
            bits = v.seg_anomaly(row) | (ana << 8)
            out.append((v.seg_real_ts(row), frame, seq, ack, ln, win << shift, flags, d, st[j][0], st[j][1], bits))
        return out

    def base_at(self, i: int, d: int) -> int:
        """The relative-seq base of direction d as it was when segment i was seen.

        A base only changes when a SYN arrives after other segments of its direction (e.g. an
        injected RST before the SYN+ACK); earlier segments keep the base of their time, as
        Wireshark numbers them.
        """
        hist = self._v.base_hist_of(self.row)
        if hist:
            row = int(self.rows[i])
            for hrow, dd, old in hist:
                if dd == d and row < hrow:
                    return old
        return int(self._r["seqbase"][d])

    def rel_of(self, i: int, d: int, flags: int, seq_raw: int, ack_raw: int) -> tuple[int, int]:
        """Relative (seq, ack) for segment i with the given raw fields."""
        seq = (seq_raw - self.base_at(i, d)) & 0xFFFFFFFF
        # without the ACK flag the field means nothing; show it raw, as Wireshark does
        ack = (ack_raw - self.base_at(i, 1 - d)) & 0xFFFFFFFF if flags & 0x10 else ack_raw
        return seq, ack

    def rel(self, i: int) -> tuple[int, int]:
        """Relative (seq, ack) of segment i, Wireshark-style."""
        r = self.record(i)
        return self.rel_of(i, r[7], r[6], r[2], r[3])

    @property
    def opts(self) -> list[dict | None]:
        """Each side's SYN options as the ladder shows them (``mss``, ``ws``, ``sack_perm``),
        None where no SYN with options was seen."""
        r = self._r
        fl = int(r["fl"])
        return [parse_options_of(fl, int(r["mss"][d]) if fl & (col.F_HAVE_MSS << d) else -1, int(r["ws"][d]), d)
                for d in (0, 1)]

    @property
    def trans(self) -> list[tuple]:
        """Its transitions as ``(ts, frame, side, old, new, why)``, oldest first."""
        v = self._v
        rows = self.trans_rows
        keys = self.trans_times().tolist()
        out = []
        for j, r in enumerate(rows.tolist()):
            t = v.trans[r]
            code = int(t.code)
            why = col.trans_why(code)
            timer = why == WHY_TW_EXPIRED or why == WHY_FW2_EXPIRED
            frame = 0 if timer else int(v.segs[int(t.seg)].frame)
            ts = v.trans_real_ts(r, keys[j]) if timer else v.seg_real_ts(int(t.seg))
            out.append((ts, frame, col.trans_side(code), col.trans_old(code), col.trans_new(code),
                        WHYS[why]))
        return out

    def as_dict(self, t: float | None = None) -> dict:
        """This connection as of time t as a plain dict, in the shape of :class:`Connection`."""
        k = self.count_at(t)
        cs, ss = self.states_at(t)
        pk, nb = self._v.start_counts(self.row + 1)
        progress = self.progress_at(t)
        return {
            "id": self.id,
            "client": {"ip": self.client_ip_text(), "port": self.cport, "state": STATE_NAMES[cs]},
            "server": {"ip": self.server_ip_text(), "port": self.sport, "state": STATE_NAMES[ss]},
            "first_ts": self.first_ts,
            "last_ts": self.last_ts_at(k),
            "packets": int(pk[self.row]) + k,
            "bytes": int(nb[self.row]) + self.bytes_at(k),
            "partial": bool(progress.notes & col.NOTE_PARTIAL),
            "notes": notes_of(int(progress.notes)),
            **dict(zip(("conn_state", "history"), self.zeek(k), strict=True)),
        }

    def zeek(self, count: int | None = None) -> tuple[str, str]:
        """Zeek's conn_state and history of it after its first ``count`` segments (all when
        None), see :mod:`tcpview.engine.core.zeek_analyzer`."""
        rows = self.rows if count is None else self.rows[:count]
        return zeek_of_rows(self._v, self.row, rows)

    def numbers(self) -> tuple[np.ndarray, np.ndarray]:
        """For each of its segments: the index of the segment it acknowledges (-1: none) and its
        bytes in flight (-1: none), as Wireshark reports them (:mod:`tcpview.engine.core.rtt`)."""
        if self._nums is None:
            v = self._v
            rows = self.rows
            plens = v.segs.len[rows].astype(np.int64)
            for j in np.flatnonzero(plens == col.LONG_LEN).tolist():
                plens[j] = v.seg_len(int(rows[j]))
            sacked = np.zeros(len(rows), dtype=np.int64)
            if v.n["sack"]:
                pairs = v.sack[: v.n["sack"]]
                at = np.searchsorted(pairs[:, 0], rows)
                hit = (at < len(pairs)) & (pairs[np.minimum(at, len(pairs) - 1), 0] == rows)
                sacked[hit] = pairs[at[hit], 1]
            base = self._r["seqbase"].astype(np.int64)
            self._nums = conn_numbers(v.segs, rows, plens, sacked, base)
        return self._nums

    def flagged(self, count: int) -> np.ndarray:
        """The indices of its first ``count`` segments that have an analysis flag."""
        fl = self._v.segs.fl[self.rows[:count]].astype(np.int64)
        return np.flatnonzero(col.seg_analysis(fl))

    def analysis_bits(self) -> int:
        """The analysis flags of all its segments, or-ed."""
        fl = self._v.segs.fl[self.rows].astype(np.int64)
        return int(np.bitwise_or.reduce(col.seg_analysis(fl))) if len(fl) else 0

    def dup_ack_num(self, i: int) -> int:
        """Which duplicate ACK of a run its segment i is (0: not one)."""
        return self._v.seg_dupack(int(self.rows[i]))[0]

    def ack_rtt(self, i: int) -> float | None:
        """Seconds from the segment its segment i acknowledges to it (Wireshark's ack_rtt)."""
        j = int(self.numbers()[0][i])
        if j < 0:
            return None
        v = self._v
        rtt = v.seg_real_ts(int(self.rows[i])) - v.seg_real_ts(int(self.rows[j]))
        return rtt if rtt != 0 else None

    def bytes_in_flight(self, i: int) -> int | None:
        """Its sender's bytes in flight after segment i (Wireshark's bytes_in_flight)."""
        b = int(self.numbers()[1][i])
        return b if b > 0 else None

    def segment(self, i: int) -> Segment:
        """The pydantic model of its segment i."""
        from ..core.model import Segment

        ts, frame, seq_raw, ack_raw, plen, win, flags, d, cs, ss, bits = self.record(i)
        seq, ack = self.rel_of(i, d, flags, seq_raw, ack_raw)
        dup, dup_frame = self._v.seg_dupack(int(self.rows[i]))
        return Segment(
            frame=frame, ts=ts, conn=self.id, dir="c2s" if d == 0 else "s2c", flags=flag_names(flags),
            seq=seq, ack=ack, seq_raw=seq_raw, ack_raw=ack_raw, len=plen, win=win,
            client_state=STATE_NAMES[cs], server_state=STATE_NAMES[ss],
            anomalies=anomaly_names(bits & 0xFF), analysis=analysis_names(bits >> 8),
            ack_rtt=self.ack_rtt(i), bytes_in_flight=self.bytes_in_flight(i),
            dup_ack_num=dup or None, dup_ack_frame=dup_frame if dup else None,
        )
