"""Which connections the table lists, in which order, and the values it shows, as of a cursor
time (no Textual).

The filter language is :mod:`.conn_filter`'s (its names are here too, for the tables that use
both). Every value comes from the timeline's columns in bulk, as of the cursor: states, counts,
and what the segments up to the cursor said (notes, analysis flags, retransmissions, the
initial RTT: :meth:`~tcpview.engine.timeline.reader.Reader.progress_at`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...records import Records
from ..core.columns import NOTE_SHOWN
from ..timeline.conns import ConnView, conn_addrs, notes_of
from ..timeline.timeline import Timeline
from ..timeline.view import View
from ..timeline.zeek_history import zeek_all
from .conn_filter import (
    NOTES,
    ConnQuery,
    ProcessInfo,
    check,
    endpoint_texts,
    ip_parts,
    parse_analysis,
    parse_anomaly,
    parse_states,
    process_mask,
    progress_mask,
    slow_mask,
    state_mask,
    zeek_mask,
)
from .diagnosis import advance, verdicts_at

__all__ = ["NOTES", "SORT_KEYS", "ConnQuery", "ConnRows", "Facts", "ProcessInfo", "check", "endpoint_texts",
           "parse_analysis", "parse_anomaly", "parse_states", "read_ahead", "state_mask", "zeek_mask"]

_NOTE_TEXTS = np.array([",".join(notes_of(b)) for b in range(NOTE_SHOWN + 1)])
"""The notes column's text for each combination of ``NOTE_*`` bits (sorted on as text)."""


SORT_KEYS: tuple[str, ...] = ("id", "client", "server", "cstate", "sstate", "pkts", "bytes", "rtt", "retr", "zeek",
                               "idle", "age", "notes", "proc", "slow")


@dataclass
class Facts:
    """Every connection's values as of one cursor time, in arrays by row (what the table
    shows, filters and sorts on): both states, segments, payload bytes, the time of the
    latest segment (its first time when it has none), and what its segments up to the
    cursor said."""

    t: float | None
    n: int
    states: np.ndarray
    packets: np.ndarray
    nbytes: np.ndarray
    last_ts: np.ndarray
    view: View
    """The view they were read from (rows are its rows)."""
    progress: Records
    """Each connection's :data:`~tcpview.engine.core.columns.PROGRESS` as of the cursor: ``notes``
    (``NOTE_*`` bits), ``ana`` (analysis bits), ``retr`` (retransmissions), ``irtt`` (the
    initial RTT in seconds, 0 until the handshake's third segment)."""

    def notes(self, row: int) -> list[str]:
        """The notes of the connection in ``row`` as of the cursor."""
        return notes_of(int(self.progress.notes[row])) if row < self.n else []


def read_ahead(tl: Timeline) -> None:
    """Carry on, to the newest segment, the passes the viewer's next look at the newest time
    starts with (the states, counts and progress of every connection; the diagnosis's pass):
    for the thread that reads a live source or a stream, after each batch, so they run there,
    and the viewer's own thread then carries them over the few segments since. Each keeps
    its result (the timeline's cache, and the diagnosis's state under its lock)."""
    v = tl.view()
    tl.states_at(None, v)
    tl.conn_stats_at(None, v)
    tl.progress_at(None, v)
    advance(tl, None, v)


class ConnRows:
    """The filtered, sorted list of connection ids for the table, and the values it shows.

    ``compute`` is called on the UI tick; it returns a ``range`` when no filter or sort
    applies, else an array of ids; values come from the timeline's columns in bulk, once per
    cursor time (:meth:`facts`), so 100k connections filter and sort in a few numpy passes.
    """

    def __init__(self) -> None:
        self.query = ConnQuery()
        self.sort = "id"
        self.reverse = False
        self._texts: list[tuple[str, str, str, str]] = []
        self._static: np.ndarray = np.zeros(0, dtype=bool)
        self._static_text: str | None = None
        self._facts: tuple[tuple, Facts] | None = None
        self._listed: tuple[int, Facts] | None = None  # (timeline's id, the facts the list was made from)
        self._verdicts: tuple[tuple, np.ndarray] | None = None
        self._generation = 0
        self.with_processes = False
        """Whether processes are known here (a live capture on this host): until then a
        process term is refused as not in this table."""
        self.processes: Mapping[int, Iterable[ProcessInfo]] = {}
        """The processes known to hold each connection's sockets on this host (connection id
        -> :data:`ProcessInfo`s), for the ``proc:``, ``pid:`` and ``user:`` terms; whoever
        knows them (the live viewer, from the kernel) sets them with :meth:`set_processes`."""

    def set_processes(self, processes: Mapping[int, Iterable[ProcessInfo]]) -> None:
        """Hand in the processes holding the connections' sockets (see :attr:`processes`)."""
        self.processes = processes
        self.with_processes = True

    def set_query(self, text: str) -> ConnQuery:
        """Filter with a new query, unless a term of it is bad: then the filter stays as it
        was (a bad term never becomes the filter). Returns the query parsed (see ``errors``)."""
        q = ConnQuery.parse(text, without=() if self.with_processes else ("process",))
        if not q.errors:
            self.query = q
        return q

    def _check_generation(self, tl: Timeline) -> None:
        """Rows renumbered (older connections left the timeline): the per-row caches go."""
        if tl.generation != self._generation:
            self._generation = tl.generation
            self._texts = []
            self._static, self._static_text = np.zeros(0, dtype=bool), None

    def texts(self, tl: Timeline, row: int) -> tuple[str, str, str, str]:
        """(client text, server text, client ip, server ip) of the connection in ``row``, lower
        case, cached."""
        self._check_generation(tl)
        texts = self._texts
        v = tl.view()
        while len(texts) <= row:
            c = ConnView(tl, v, len(texts))
            texts.append(endpoint_texts(c.client_text(), c.server_text()))
        return texts[row]

    def facts(self, tl: Timeline, t: float | None) -> Facts:
        """The table's values for every connection as of time t (kept until t or the
        timeline changes)."""
        v = tl.view()
        key = (v.version, t, id(tl))
        if self._facts is not None and self._facts[0] == key:
            return self._facts[1]
        n = tl.conn_count_at(t, v)
        states = tl.states_at(t, v)
        pk, nb, last = tl.conn_stats_at(t, v)
        first = v.conns.first_ts[:n]
        before = first.copy()
        m = min(n, len(v.base_last))
        had = v.base_counts[:m, 0] > 0
        before[:m][had] = v.base_last[:m][had]  # its segments left with the horizon
        last_ts = np.where(last[:n] >= 0, v.segs.ts[np.maximum(last[:n], 0)], before) if n else first
        f = Facts(t, n, states[:n], pk[:n], nb[:n], last_ts, v, tl.progress_at(t, v)[:n])
        self._facts = (key, f)
        return f

    def facts_listed(self, tl: Timeline, t: float | None) -> Facts:
        """The facts the list was last made from (:meth:`compute`), what its rows show: a batch
        published since does not make them again for the rows drawn after it (the next list
        does). As of now (:meth:`facts`) when there is no such list, or older connections left
        the timeline since (the rows are numbered anew)."""
        listed = self._listed
        if listed is not None and listed[0] == id(tl) and listed[1].t == t \
                and listed[1].view.generation == tl.view().generation:
            return listed[1]
        return self.facts(tl, t)

    def _static_mask(self, tl: Timeline, v: View, n: int) -> np.ndarray:
        """Where the first n connections of ``v`` pass the terms that do not depend on the
        cursor: ports, ids and addresses in numpy passes over the columns; words against each
        connection's text, kept per query as the table grows."""
        q = self.query
        C = v.conns[:n]
        mask = np.ones(n, dtype=bool)
        for p in q.ports:
            mask &= (C.port[:, 0] == p) | (C.port[:, 1] == p)
        if q.ids:
            mask &= np.isin(C.cid, q.ids)
        if q.ips:
            chi, clo = conn_addrs(v, n, False)
            shi, slo = conn_addrs(v, n, True)
            for ip in q.ips:
                parsed = ip_parts(ip)
                if parsed is None:
                    return np.zeros(n, dtype=bool)
                fam, hi, lo = parsed
                mask &= (C.fam == fam) & (((chi == hi) & (clo == lo)) | ((shi == hi) & (slo == lo)))
        if q.words:
            self._check_generation(tl)
            if self._static_text != q.text:
                self._static, self._static_text = np.zeros(0, dtype=bool), q.text
            have = len(self._static)
            if have < n:
                more = [all(w in cl or w in sv for w in q.words)
                        for cl, sv, _ci, _si in (self.texts(tl, i) for i in range(have, n))]
                self._static = np.concatenate((self._static, np.array(more, dtype=bool)))
            mask &= self._static[:n]
        return mask

    def flagged(self, tl: Timeline, t: float | None, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The indices in ``ids`` (connection ids, as listed) of the connections with a segment
        that has an analysis flag at or before time t, in order."""
        f = self.facts(tl, t)
        cids = np.asarray(ids, dtype=np.int64)
        known = f.view.conns.cid[: f.n].astype(np.int64)
        at = np.searchsorted(known, cids)
        ok = at < f.n
        ok[ok] = (known[at[ok]] == cids[ok]) & (f.progress.ana[at[ok]] != 0)
        return np.flatnonzero(ok)

    def compute(self, tl: Timeline, t: float | None) -> np.ndarray | range:
        """Connection ids to list as of time t (None: now)."""
        rows, v = self.compute_rows(tl, t)
        return rows if not v.evicted_conns else v.ids(rows)

    def compute_rows(self, tl: Timeline, t: float | None) -> tuple[np.ndarray | range, View]:
        """The rows of the connections to list as of time t, and the view they are rows of."""
        f = self.facts(tl, t)
        self._listed = (id(tl), f)
        v = f.view
        n = f.n
        q = self.query
        if q.empty:
            ids: np.ndarray | range = range(n)
        else:
            mask = np.ones(n, dtype=bool)
            if q.ports or q.ips or q.words or q.ids:
                mask &= self._static_mask(tl, v, n)
            if q.uses_progress:
                mask &= progress_mask(q, f.progress.notes, f.progress.ana, f.progress.anom)
            if q.uses_state:
                mask &= state_mask(q, f.states[:, 0], f.states[:, 1])
            if q.uses_zeek:
                mask &= zeek_mask(q, *zeek_all(tl, t, v))
            if q.uses_process:
                mask &= process_mask(q, v.conns.cid[:n].astype(np.int64), self.processes)
            if q.uses_slow:
                mask &= slow_mask(q, self.verdicts(tl, t, v)[:n])
            ids = np.flatnonzero(mask)
        if self.sort == "id":
            return (ids[::-1] if self.reverse else ids), v
        # (a range indexes an array as a list of Python ints: 10 ms for 150,000 rows)
        ids = np.arange(ids.start, ids.stop) if isinstance(ids, range) else ids
        values = self.sort_values(tl, t, n, f)
        keys = values if isinstance(values, list) else [values]
        # stable either way: equal values keep ascending ids (sort the reversed ids, then
        # reverse the result, for descending order)
        order_ids = ids[::-1] if self.reverse else ids
        order = np.lexsort([k[order_ids] for k in reversed(keys)])
        out = order_ids[order]
        return (out[::-1] if self.reverse else out), v

    def sort_values(self, tl: Timeline, t: float | None, n: int,
                    f: Facts | None = None) -> np.ndarray | list[np.ndarray]:
        """The current sort column's value for each of the first ``n`` connections, by id,
        as of time t (a list of arrays, most significant first, when it sorts on several).
        ``f``: the facts the rows were filtered with (taken again when not given)."""
        s = self.sort
        f = f if f is not None else self.facts(tl, t)
        v = f.view
        C = v.conns[:n]
        if s in ("cstate", "sstate"):
            return f.states[:n, 0 if s == "cstate" else 1]
        if s in ("client", "server"):
            server = s == "server"
            hi, lo = conn_addrs(v, n, server)
            return [C.fam, hi, lo, C.port[:, 1 if server else 0]]
        if s == "age":
            return -C.first_ts
        if s == "notes":
            return _NOTE_TEXTS[f.progress.notes[:n] & NOTE_SHOWN]
        if s == "pkts":
            return f.packets[:n]
        if s == "bytes":
            return f.nbytes[:n]
        if s == "idle":
            return -f.last_ts[:n]  # least idle first: the newest last segment first
        if s == "rtt":
            return f.progress.irtt[:n]
        if s == "retr":
            return f.progress.retr[:n]
        if s == "zeek":
            codes, _hist = zeek_all(tl, t, v)
            return codes[:n]
        if s == "proc":  # by command then pid; none known last
            procs = self.processes
            first = [min(((c or "~", p if p is not None else -1) for p, c, _u in procs.get(cid, ())),
                         default=("~~", -1)) for cid in C.cid.tolist()]
            return [np.array([f[0] for f in first] or [""], dtype=object)[:n].astype(str),
                    np.array([f[1] for f in first], dtype=np.int64)]
        if s == "slow":
            return self.verdicts(tl, t, v)[:n]
        return np.arange(n)

    def verdicts(self, tl: Timeline, t: float | None, v: View | None = None) -> np.ndarray:
        """Each connection's ``tcpview diagnose`` verdict as of time t, by row of view ``v``
        (the facts' view when None: rows and values from one view; an index in
        :data:`~tcpview.engine.analysis.diagnosis.VERDICTS`; kept until t or the timeline changes)."""
        v = v or self.facts(tl, t).view
        key = (v.version, t, id(tl))
        if self._verdicts is None or self._verdicts[0] != key:
            self._verdicts = (key, verdicts_at(tl, t, v))
        return self._verdicts[1]
