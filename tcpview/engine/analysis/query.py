"""Which connections the table lists, in which order, as of a cursor time (no Textual).

The filter is a small query: whitespace-separated terms, all of which must match (AND):

``state:CLOSE_WAIT``  either endpoint is in that state (names, ``close-wait``, prefixes such as
``state:fin_wait`` and the ``ss`` short forms ``tw``, ``cw``, ``est``, ``syn-recv`` work);
``client:STATE`` / ``server:STATE`` one endpoint only; ``port:443`` either port;
``is:partial`` / ``is:refused`` / ``is:reset`` / ``is:anomaly`` notes; ``id:12``;
``analysis:retransmission`` a segment of it has that analysis flag (Wireshark's names, or the
ladder's tags: ``analysis:dup-ack``, ``an:zero-win``), or that anomaly (``an:rst-out-of-win``,
``an:xmas``; the JSON's names ``rst_out_of_window`` too);
``zeek:REJ`` Zeek's conn_state as of the cursor; ``history:^S$`` a regular expression found in
Zeek's history letters (``history:r`` the responder reset);
an IP address matches either endpoint's address exactly; any other word matches part of the
client or server text (``10.0.0.`` , ``:443``).

Every table that filters connections uses this one language (the capture's connection table,
the kernel's socket table). A table that has nothing to match a kind of term against (the
socket table has no notes) parses with that kind in ``without``: such a term is an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.columns import F_PARTIAL, F_REFUSED, F_RESET, SEG_ANA_SHIFT
from ..timeline.conns import ConnView, conn_addrs, notes_of
from ..timeline.timeline import Timeline
from ..timeline.view import View
from ..core.tcp import STATE_NAMES, Analysis, Anomaly
from ..core.zeek_analyzer import CONN_STATES
from ..timeline.zeek_history import zeek_all

_ALIASES = {
    "TW": "TIME_WAIT",
    "CW": "CLOSE_WAIT",
    "EST": "ESTABLISHED",
    "SYN_RECV": "SYN_RECEIVED",
    "SYN_RCVD": "SYN_RECEIVED",
    "FIN_WAIT1": "FIN_WAIT_1",
    "FIN_WAIT2": "FIN_WAIT_2",
    "FW1": "FIN_WAIT_1",
    "FW2": "FIN_WAIT_2",
}
NOTES = ("partial", "refused", "reset", "anomaly")
_KINDS = {"state": "state", "st": "state", "client": "state", "cs": "state", "server": "state", "ss": "state",
          "port": "port", "is": "note", "note": "note", "id": "id", "ip": "ip", "host": "ip", "addr": "ip",
          "analysis": "analysis", "an": "analysis", "zeek": "zeek", "conn_state": "zeek", "history": "history",
          "hist": "history"}
"""``key:`` -> the kind of term it starts (what ``ConnQuery.parse``'s ``without`` names)."""


# the ladder's tags for analysis flags, as filter words too
_ANALYSIS_ALIASES = {
    "retrans": "retransmission", "fast-retrans": "fast_retransmission", "spurious-retrans": "spurious_retransmission",
    "ooo": "out_of_order", "lost": "lost_segment", "ack-lost": "ack_lost_segment", "zero-win": "zero_window",
    "win-probe": "window_probe", "win-probe-ack": "window_probe_ack", "win-full": "window_full",
    "win-update": "window_update", "keepalive": "keep_alive", "keepalive-ack": "keep_alive_ack",
    "dupack": "dup_ack",
}


# the ladder's tags for anomalies (JSON's names, with _ for -, work as well)
_ANOMALY_ALIASES = {"rst-out-of-win": "rst_out_of_window"}


def parse_anomaly(word: str) -> int:
    """The anomaly bit an ``analysis:`` word names (0 when it names none)."""
    w = word.lower()
    w = _ANOMALY_ALIASES.get(w, w).replace("-", "_")
    return next((int(a) for a in Anomaly if a.name is not None and a.name.lower() == w), 0)


def parse_analysis(word: str) -> int:
    """The analysis bit an ``analysis:`` word names (0 when it names none)."""
    w = word.lower()
    w = _ANALYSIS_ALIASES.get(w, w).replace("-", "_")
    for a in Analysis:
        if a.name is not None and a.name.lower() == w:
            return int(a)
    return 0


def parse_states(word: str) -> frozenset[int]:
    """State values a ``state:`` word names (empty when it names none)."""
    w = word.upper().replace("-", "_")
    w = _ALIASES.get(w, w)
    if w in STATE_NAMES:
        return frozenset((STATE_NAMES.index(w),))
    return frozenset(i for i, name in enumerate(STATE_NAMES) if name.startswith(w)) if w else frozenset()


@dataclass
class ConnQuery:
    """A parsed filter; :meth:`parse` never raises, it collects ``errors``."""

    text: str = ""
    either_states: list[frozenset[int]] = field(default_factory=list)
    client_states: list[frozenset[int]] = field(default_factory=list)
    server_states: list[frozenset[int]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    analysis: list[int] = field(default_factory=list)
    anomalies: list[int] = field(default_factory=list)
    zeek: list[int] = field(default_factory=list)  # conn_state codes (index CONN_STATES)
    history: list[re.Pattern] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, without: Collection[str] = ()) -> ConnQuery:
        """Parse a filter query (see the module docstring).

        Args:
            text: the query.
            without: kinds of ``key:value`` term the table cannot filter on (``"state"``,
                ``"port"``, ``"note"``, ``"id"``, ``"ip"``); each such term is an error.
        """
        q = cls(text=text.strip())
        for term in q.text.split():
            key, sep, value = term.partition(":")
            key = key.lower()
            kind = _KINDS.get(key) if sep else None
            if kind in without:
                q.errors.append(f"not in this table {term!r}")
            elif kind == "state":
                states = parse_states(value)
                if not states:
                    q.errors.append(f"unknown state {value!r}")
                    continue
                target = {"client": q.client_states, "cs": q.client_states, "server": q.server_states,
                          "ss": q.server_states}.get(key, q.either_states)
                target.append(states)
            elif kind == "port":
                if value.isdigit() and int(value) < 65536:
                    q.ports.append(int(value))
                else:
                    q.errors.append(f"bad port {value!r}")
            elif kind == "note":
                if value.lower() in NOTES:
                    q.notes.append(value.lower())
                else:
                    q.errors.append(f"unknown note {value!r} (partial, refused, reset, anomaly)")
            elif kind == "analysis":
                bit, anomaly = parse_analysis(value), parse_anomaly(value)
                if bit:
                    q.analysis.append(bit)
                elif anomaly:
                    q.anomalies.append(anomaly)
                else:
                    q.errors.append(f"unknown analysis {value!r} (a ladder tag: retrans, dup-ack, zero-win, ..., "
                                    "syn-fin, rst-out-of-win; or Wireshark's name: retransmission...)")
            elif kind == "zeek":
                if value.upper() in CONN_STATES:
                    q.zeek.append(CONN_STATES.index(value.upper()))
                else:
                    q.errors.append(f"unknown conn_state {value!r} ({', '.join(CONN_STATES)})")
            elif kind == "history":
                try:
                    q.history.append(re.compile(value))
                except re.error as e:
                    q.errors.append(f"bad history pattern {value!r}: {e}")
            elif kind == "id":
                if value.isdigit():
                    q.ids.append(int(value))
                else:
                    q.errors.append(f"bad id {value!r}")
            elif kind == "ip":
                q.ips.append(_norm_ip(value) or value.lower())
            else:
                ip = _norm_ip(term)
                if ip is not None:
                    q.ips.append(ip)
                else:
                    q.words.append(term.lower())
        return q

    @property
    def empty(self) -> bool:
        """True when the query lets every connection through."""
        return not (self.either_states or self.client_states or self.server_states or self.ports or self.ips
                    or self.words or self.notes or self.ids or self.analysis or self.anomalies or self.zeek
                    or self.history)

    @property
    def uses_state(self) -> bool:
        """True when the result depends on the cursor time (state terms)."""
        return bool(self.either_states or self.client_states or self.server_states)

    @property
    def uses_zeek(self) -> bool:
        """True when it asks for Zeek's view (conn_state or history, as of the cursor)."""
        return bool(self.zeek or self.history)

    def static_match(self, c: ConnView, texts: tuple[str, str, str, str]) -> bool:
        """The terms that do not depend on time (ports, addresses, words, notes, ids)."""
        return self.fields_match(c.id, c.cport, c.sport, texts, c.notes, c.analysis_bits, lambda: c.anomalies)

    def fields_match(self, cid: int, cport: int, sport: int, texts: tuple[str, str, str, str],
                     notes: Callable[[], list[str]] | None = None,
                     analysis: Callable[[], int] | None = None, anomalies: Callable[[], int] | None = None) -> bool:
        """The terms that do not depend on time, for any table's connection.

        Args:
            cid: the connection's id.
            cport: the client's port.
            sport: the server's port.
            texts: :func:`endpoint_texts` of the client's and server's text.
            notes: returns the connection's notes; called only if a term asks for one.
            analysis: returns the analysis flags of all its segments; likewise.
            anomalies: returns the anomaly bits of all its segments; likewise.
        """
        if self.ids and cid not in self.ids:
            return False
        for p in self.ports:
            if cport != p and sport != p:
                return False
        cl, sv, cip, sip = texts
        for ip in self.ips:
            if ip != cip and ip != sip:
                return False
        for w in self.words:
            if w not in cl and w not in sv:
                return False
        if self.notes:
            have = notes() if notes is not None else []
            for n in self.notes:
                if n not in have:
                    return False
        if self.analysis:
            bits = analysis() if analysis is not None else 0
            if any(not bits & b for b in self.analysis):
                return False
        if self.anomalies:
            bits = anomalies() if anomalies is not None else 0
            if any(not bits & b for b in self.anomalies):
                return False
        return True

    def state_match(self, cs: int | None, ss: int | None) -> bool:
        """The state terms, given both endpoints' states (None: unknown, matches no state)."""
        for s in self.either_states:
            if cs not in s and ss not in s:
                return False
        for s in self.client_states:
            if cs not in s:
                return False
        for s in self.server_states:
            if ss not in s:
                return False
        return True


def endpoint_texts(client: str, server: str) -> tuple[str, str, str, str]:
    """What the address and word terms match against, from the client's and server's text
    (``10.0.0.5:443``, ``[2001:db8::1]:443``): (client text, server text, client ip, server
    ip), lower case."""
    return client.lower(), server.lower(), _ep_ip(client), _ep_ip(server)


def _ip_parts(text: str) -> tuple[int, int, int] | None:
    """``(family, high, low)`` of an address as the connection columns hold it (None: not one)."""
    try:
        a = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if a.version == 4:
        return 4, 0, int(a)
    n = int(a)
    return 6, n >> 64, n & 0xFFFFFFFFFFFFFFFF


def _norm_ip(text: str) -> str | None:
    t = text.strip("[]")
    try:
        return str(ipaddress.ip_address(t))
    except ValueError:
        return None


def _ep_ip(text: str) -> str:
    host = text.rsplit(":", 1)[0]
    return host.strip("[]").lower()


def state_mask(q: ConnQuery, cs: np.ndarray, ss: np.ndarray) -> np.ndarray:
    """Where both endpoints' states (arrays by connection) pass the query's state terms."""
    mask = np.ones(len(cs), dtype=bool)
    for states in q.either_states:
        table = _table(states)
        mask &= table[cs] | table[ss]
    for states in q.client_states:
        mask &= _table(states)[cs]
    for states in q.server_states:
        mask &= _table(states)[ss]
    return mask


def zeek_mask(q: ConnQuery, codes: np.ndarray, history: list[str]) -> np.ndarray:
    """Where Zeek's conn_state codes and histories (arrays by connection) pass the query's
    zeek: and history: terms (each distinct history tried once)."""
    mask = np.ones(len(codes), dtype=bool)
    for code in q.zeek:
        mask &= codes == code
    if q.history and len(codes):
        distinct, which = np.unique(np.array(history, dtype=object), return_inverse=True)
        ok = np.array([all(p.search(h) for p in q.history) for h in distinct.tolist()], dtype=bool)
        mask &= ok[which.ravel()]
    return mask


def _table(states: frozenset[int]) -> np.ndarray:
    t = np.zeros(256, dtype=bool)
    t[list(states)] = True
    return t


SORT_KEYS: tuple[str, ...] = ("id", "client", "server", "cstate", "sstate", "pkts", "bytes", "rtt", "retr", "zeek",
                               "idle", "age", "notes")


@dataclass
class Facts:
    """Every connection's values as of one cursor time, in arrays by connection id (what the
    table shows and sorts on): both states, segments, payload bytes and the time of the
    latest segment (its first time when it has none)."""

    t: float | None
    n: int
    states: np.ndarray
    packets: np.ndarray
    nbytes: np.ndarray
    last_ts: np.ndarray
    view: View
    """The view they were read from (rows are its rows)."""


class ConnRows:
    """The filtered, sorted list of connection ids for the table, and the values it shows.

    ``compute`` is called on the UI tick; it returns a ``range`` when no filter or sort
    applies, else an array of ids; values come from the timeline's columns in bulk, once per
    cursor time (:meth:`facts`), so 100k connections filter and sort in a few numpy passes.
    """

    def __init__(self) -> None:
        self.query = ConnQuery()
        # (generation, segments seen, analysis bits per connection, retransmissions per connection)
        self._ana: tuple[int, int, np.ndarray, np.ndarray] | None = None
        self.sort = "id"
        self.reverse = False
        self._texts: list[tuple[str, str, str, str]] = []
        self._static: np.ndarray = np.zeros(0, dtype=bool)
        self._static_text: str | None = None
        self._facts: tuple[tuple, Facts] | None = None
        self._generation = 0

    def set_query(self, text: str) -> ConnQuery:
        """Use a new filter query; returns it parsed (see ``errors``)."""
        self.query = ConnQuery.parse(text)
        return self.query

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
        f = Facts(t, n, states[:n], pk[:n], nb[:n], last_ts, v)
        self._facts = (key, f)
        return f

    def _static_mask(self, tl: Timeline, v: View, n: int) -> np.ndarray:
        """Where the first n connections of ``v`` pass the terms that do not depend on the
        cursor: ports, ids, addresses and notes in numpy passes over the columns (notes as
        they are now: a connection reset later shows up then); words against each
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
                parsed = _ip_parts(ip)
                if parsed is None:
                    return np.zeros(n, dtype=bool)
                fam, hi, lo = parsed
                mask &= (C.fam == fam) & (((chi == hi) & (clo == lo)) | ((shi == hi) & (slo == lo)))
        if q.analysis:
            flagged = self.analysis_bits(v, n)
            for bit in q.analysis:
                mask &= (flagged & bit) != 0
        for bit in q.anomalies:
            mask &= (C.anom & bit) != 0
        for note in q.notes:
            fl = C.fl.astype(np.int64)
            bit = {"partial": F_PARTIAL, "refused": F_REFUSED}.get(note)
            if bit is not None:
                mask &= (fl & bit) != 0
            elif note == "reset":
                mask &= ((fl & F_RESET) != 0) & ((fl & F_REFUSED) == 0)
            else:  # anomaly
                mask &= C.anom != 0
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

    def analysis_bits(self, v: View, n: int) -> np.ndarray:
        """Each of the first n connections' analysis flags over all its segments (as now), kept
        and extended as segments come."""
        return self._analysis(v)[0][:n]

    def retransmissions(self, v: View, n: int) -> np.ndarray:
        """Each of the first n connections' retransmitted segments (as now)."""
        return self._analysis(v)[1][:n]

    def _analysis(self, v: View) -> tuple[np.ndarray, np.ndarray]:
        got = self._ana
        if got is None or got[0] != v.generation:
            got = (v.generation, 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        _gen, done, acc, retr = got
        if len(acc) < v.n_conn:
            more = np.zeros(v.n_conn - len(acc), dtype=np.int64)
            acc, retr = np.concatenate((acc, more)), np.concatenate((retr, more))
        if done < v.n_seg:
            part = v.segs[done: v.n_seg]
            bits = (part.fl.astype(np.int64) >> SEG_ANA_SHIFT) & 0xFFFF
            hit = np.flatnonzero(bits)
            conn = part.conn[hit].astype(np.int64)
            np.bitwise_or.at(acc, conn, bits[hit])
            np.add.at(retr, conn, (bits[hit] & Analysis.RETRANSMISSION) != 0)
        self._ana = (v.generation, v.n_seg, acc, retr)
        return acc, retr

    def compute(self, tl: Timeline, t: float | None) -> Sequence[int]:
        """Connection ids to list as of time t (None: now)."""
        rows, v = self.compute_rows(tl, t)
        return rows if not v.evicted_conns else v.ids(rows)

    def compute_rows(self, tl: Timeline, t: float | None) -> tuple[Sequence[int], View]:
        """The rows of the connections to list as of time t, and the view they are rows of."""
        f = self.facts(tl, t)
        v = f.view
        n = f.n
        q = self.query
        if q.empty:
            ids: np.ndarray | range = range(n)
        else:
            mask = np.ones(n, dtype=bool)
            if q.ports or q.ips or q.words or q.notes or q.ids or q.analysis or q.anomalies:
                mask &= self._static_mask(tl, v, n)
            if q.uses_state:
                mask &= state_mask(q, f.states[:, 0], f.states[:, 1])
            if q.uses_zeek:
                mask &= zeek_mask(q, *zeek_all(tl, t, v))
            ids = np.flatnonzero(mask)
        if self.sort == "id":
            return (ids[::-1] if self.reverse else ids), v
        ids = np.arange(n)[ids] if isinstance(ids, range) else ids
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
            return np.array([",".join(notes_of(int(fl), int(an))) for fl, an in zip(C.fl, C.anom, strict=True)])
        if s == "pkts":
            return f.packets[:n]
        if s == "bytes":
            return f.nbytes[:n]
        if s == "idle":
            return -f.last_ts[:n]  # least idle first: the newest last segment first
        if s == "rtt":
            return v.initial_rtts(n)
        if s == "retr":
            return self.retransmissions(v, n)
        if s == "zeek":
            codes, _hist = zeek_all(tl, t, v)
            return codes[:n]
        return np.arange(n)
