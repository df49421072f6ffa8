"""Connections in bulk, for output: as numpy columns (:class:`ConnArrays`, a piece at a time)
and as columns of plain Python values (:class:`ConnColumns`, what a summary prints).

A million connections are a million of each Python value: the pieces keep only one piece's
worth alive at a time, and :mod:`tcpview.engine.output.json_rows` writes the usual rows straight
from the numpy columns without making Python values at all.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from ...textutil import addr_text
from ..core import columns as col
from ..core.tcp import STATE_NAMES
from ..core.zeek_analyzer import CONN_STATES
from .conns import ConnView, notes_of
from .rowgroups import rows_of_many
from .zeek_history import zeek_codes

if TYPE_CHECKING:
    from .reader import Reader
    from .view import View

_NAMES = np.array(STATE_NAMES)
_ZEEK = np.array(CONN_STATES)


@dataclass
class ConnColumns:
    """Connections as columns of plain Python values, the shape a summary prints."""

    ids: list[int]
    cip: list[str]
    cport: list[int]
    cstate: list[str]
    sip: list[str]
    sport: list[int]
    sstate: list[str]
    first: list[float]
    last: list[float]
    packets: list[int]
    nbytes: list[int]
    partial: list[bool]
    notes: list[tuple[str, ...]]
    conn_state: list[str]
    history: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> ConnColumns:
        return cls(*([] for _ in fields(cls)))

    def extend(self, other: ConnColumns) -> None:
        """Append the rows of ``other``."""
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def set(self, i: int, d: dict) -> None:
        """Put connection dict ``d`` (the shape of :class:`Connection`) in row i."""
        self.ids[i] = d["id"]
        self.cip[i], self.cport[i], self.cstate[i] = d["client"]["ip"], d["client"]["port"], d["client"]["state"]
        self.sip[i], self.sport[i], self.sstate[i] = d["server"]["ip"], d["server"]["port"], d["server"]["state"]
        self.first[i], self.last[i] = d["first_ts"], d["last_ts"]
        self.packets[i], self.nbytes[i] = d["packets"], d["bytes"]
        self.partial[i], self.notes[i] = d["partial"], tuple(d["notes"])
        self.conn_state[i], self.history[i] = d["conn_state"], d["history"]

    def dicts(self) -> list[dict]:
        """The rows as dicts in the shape of :class:`Connection`."""
        return [{"id": i, "client": {"ip": ci, "port": cp, "state": cs}, "server": {"ip": si, "port": sp, "state": ss},
                 "first_ts": f, "last_ts": la, "packets": pk, "bytes": nb, "partial": pa, "notes": list(no),
                 "conn_state": zs, "history": zh}
                for i, ci, cp, cs, si, sp, ss, f, la, pk, nb, pa, no, zs, zh in zip(
                    self.ids, self.cip, self.cport, self.cstate, self.sip, self.sport, self.sstate, self.first,
                    self.last, self.packets, self.nbytes, self.partial, self.notes, self.conn_state, self.history,
                    strict=True)]


def addr_texts(v: View, rows: np.ndarray, server: bool) -> list[str]:
    """The client's (or server's) address of connections ``rows`` as text."""
    C = v.conns[rows]
    # each address once (a busy server is one address), then spread by index
    four, where = np.unique((C.saddr if server else C.caddr).astype(np.uint32), return_inverse=True)
    octets = [((four >> shift) & 0xFF).tolist() for shift in (24, 16, 8, 0)]
    texts = [f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*octets, strict=True)]
    out = [texts[i] for i in where.tolist()]
    for i in np.flatnonzero(C.fam == 6).tolist():
        row = v.addrs6[int(C.caddr[i])]
        hi, lo = (row[2], row[3]) if server else (row[0], row[1])
        out[i] = addr_text(6, int(hi), int(lo))
    return out


@dataclass
class ConnArrays:
    """Connections ``lo``..``lo+len-1`` of a view as of a time, column by column (numpy)."""

    v: View
    lo: int
    ids: np.ndarray
    cport: np.ndarray
    sport: np.ndarray
    cstate: np.ndarray  # state numbers (index STATE_NAMES)
    sstate: np.ndarray
    first: np.ndarray  # float64 seconds
    last: np.ndarray
    packets: np.ndarray
    nbytes: np.ndarray
    note_bits: np.ndarray  # NOTE_* bits as of the time (partial, refused, reset, anomaly)
    notes: list[tuple[str, ...]]
    noted: np.ndarray  # which rows have notes
    zstate: np.ndarray  # Zeek's conn_state (index CONN_STATES)
    zhist: np.ndarray  # Zeek's history (index ztexts)
    ztexts: list[str]
    fixed: dict[int, dict] = field(default_factory=dict)
    """Rows (from 0) answered apart, as whole dicts: connections whose clock stepped back."""

    def __len__(self) -> int:
        return len(self.ids)

    def plain(self) -> np.ndarray:
        """Which rows are the usual kind: IPv4, not answered apart."""
        usual = self.v.conns.fam[self.lo: self.lo + len(self)] != 6
        if self.fixed:
            usual[list(self.fixed)] = False
        return usual

    def columns(self, rows: np.ndarray | None = None) -> ConnColumns:
        """These connections (or only ``rows`` of them) as plain Python values."""
        rows = np.arange(len(self)) if rows is None else rows
        at = rows + self.lo
        cols = ConnColumns(
            ids=self.ids[rows].tolist(), cip=addr_texts(self.v, at, False), cport=self.cport[rows].tolist(),
            cstate=_NAMES[self.cstate[rows]].tolist(), sip=addr_texts(self.v, at, True),
            sport=self.sport[rows].tolist(), sstate=_NAMES[self.sstate[rows]].tolist(),
            first=self.first[rows].tolist(), last=self.last[rows].tolist(), packets=self.packets[rows].tolist(),
            nbytes=self.nbytes[rows].tolist(), partial=((self.note_bits[rows] & col.NOTE_PARTIAL) != 0).tolist(),
            notes=[self.notes[i] for i in rows.tolist()], conn_state=_ZEEK[self.zstate[rows]].tolist(),
            history=[self.ztexts[h] for h in self.zhist[rows].tolist()])
        for j, i in enumerate(rows.tolist()):
            if i in self.fixed:
                cols.set(j, self.fixed[i])
        return cols


def conn_array_chunks(tl: Reader, t: float | None = None, size: int = 65536) -> Iterator[ConnArrays]:
    """Every connection that exists at time t, in pieces of ``size``, as numpy columns.

    Only what takes a pass over every segment or transition (states, counts, last segments)
    is made for all connections at once; the rest a piece at a time."""
    v = tl.view()
    n = tl.conn_count_at(t, v)
    stop = tl.seg_index_at(t, v)
    states = tl.states_at(t, v)[:n]
    pk, nb, last = tl.conn_stats_at(t, v)
    pk, nb, last = pk[:n], nb[:n], last[:n]
    C = v.conns[:n]
    back = v.pairs("seg_back") if v.n["seg_back"] else {}  # last segments the clock rule moved
    note_bits = tl.progress_upto(stop, v).notes[:n] & col.NOTE_SHOWN
    noted = np.flatnonzero(note_bits)
    stepped: list[int] = []
    if v.clock_stepped_back:
        stepped = sorted(r for r in v.stepped_rows() if r < n)
    seg_rows = rows_of_many(v.segs.conn[: v.n_seg], stepped) if stepped else {}
    trans_rows = rows_of_many(v.trans.conn[: v.n_trans], stepped) if stepped else {}
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        part = C[lo:hi]
        first = part.first_ts.astype(np.float64)
        lst = last[lo:hi]
        last_ts = first.copy()
        seen = lst >= 0
        last_ts[seen] = v.segs.ts[lst[seen]]
        m = max(0, min(hi, len(v.base_last)) - lo)
        before = ~seen[:m] & (pk[lo:lo + m] > 0)
        last_ts[:m][before] = v.base_last[lo:lo + m][before]  # its segments left with the horizon
        if back:
            for i in np.flatnonzero(seen & np.isin(lst, list(back))).tolist():
                last_ts[i] = back[int(lst[i])]
        bits = note_bits[lo:hi].astype(np.int64)
        notes: list[tuple[str, ...]] = [()] * (hi - lo)  # most have none: one shared empty tuple
        mine = noted[(noted >= lo) & (noted < hi)]
        has = np.zeros(hi - lo, dtype=bool)
        has[mine - lo] = True
        for i, b in zip(mine.tolist(), bits[mine - lo].tolist(), strict=True):
            notes[i - lo] = tuple(notes_of(b))
        fixed = {}
        # connections whose clock stepped back answer from their own times, from their rows
        for i in stepped[bisect.bisect_left(stepped, lo):bisect.bisect_left(stepped, hi)]:
            c = ConnView(tl, v, i)
            c.use_rows(seg_rows[i], trans_rows[i])
            fixed[i - lo] = c.as_dict(t)
        zstate, zhist, ztexts = zeek_codes(v, lo, hi, stop, last)
        yield ConnArrays(v=v, lo=lo, ids=part.cid, cport=part.port[:, 0], sport=part.port[:, 1],
                         cstate=states[lo:hi, 0], sstate=states[lo:hi, 1], first=first, last=last_ts,
                         packets=pk[lo:hi], nbytes=nb[lo:hi], note_bits=bits, notes=notes, noted=has, zstate=zstate,
                         zhist=zhist, ztexts=ztexts, fixed=fixed)
