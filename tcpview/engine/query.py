"""Which connections the table lists, in which order, as of a cursor time (no Textual).

The filter is a small query: whitespace-separated terms, all of which must match (AND):

``state:CLOSE_WAIT``  either endpoint is in that state (names, ``close-wait``, prefixes such as
``state:fin_wait`` and the ``ss`` short forms ``tw``, ``cw``, ``est``, ``syn-recv`` work);
``client:STATE`` / ``server:STATE`` one endpoint only; ``port:443`` either port;
``is:partial`` / ``is:refused`` / ``is:reset`` / ``is:anomaly`` notes; ``id:12``;
an IP address matches either endpoint's address exactly; any other word matches part of the
client or server text (``10.0.0.`` , ``:443``).

Every table that filters connections uses this one language (the capture's connection table,
the kernel's socket table). A table that has nothing to match a kind of term against (the
socket table has no notes) parses with that kind in ``without``: such a term is an error.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from itertools import islice

from .model import STATE_NAMES
from .store import REC, REC_SIZE, Conn, Timeline

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
          "port": "port", "is": "note", "note": "note", "id": "id", "ip": "ip", "host": "ip", "addr": "ip"}
"""``key:`` -> the kind of term it starts (what ``ConnQuery.parse``'s ``without`` names)."""


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
                    or self.words or self.notes or self.ids)

    @property
    def uses_state(self) -> bool:
        """True when the result depends on the cursor time (state terms)."""
        return bool(self.either_states or self.client_states or self.server_states)

    def static_match(self, c: Conn, texts: tuple[str, str, str, str]) -> bool:
        """The terms that do not depend on time (ports, addresses, words, notes, ids)."""
        return self.fields_match(c.id, c.cport, c.sport, texts, c.notes)

    def fields_match(self, cid: int, cport: int, sport: int, texts: tuple[str, str, str, str],
                     notes: Callable[[], list[str]] | None = None) -> bool:
        """The terms that do not depend on time, for any table's connection.

        Args:
            cid: the connection's id.
            cport: the client's port.
            sport: the server's port.
            texts: :func:`endpoint_texts` of the client's and server's text.
            notes: returns the connection's notes; called only if a term asks for one.
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


def _norm_ip(text: str) -> str | None:
    t = text.strip("[]")
    try:
        return str(ipaddress.ip_address(t))
    except ValueError:
        return None


class ConnFacts:
    """Per-connection values as of a cursor time, with caches for the expensive ones.

    ``bytes`` at a past time needs a sum over segments; the cache keeps, per connection,
    the last (segment count, bytes) it computed and moves from there, so playing forward
    costs only the new segments.
    """

    def __init__(self) -> None:
        self._texts: list[tuple[str, str, str, str]] = []
        self._bytes: dict[int, tuple[int, int]] = {}

    def texts(self, tl: Timeline, cid: int) -> tuple[str, str, str, str]:
        """(client text, server text, client ip, server ip), lower case, cached."""
        texts = self._texts
        while len(texts) <= cid:
            c = tl.conns[len(texts)]
            texts.append(endpoint_texts(c.client_text(), c.server_text()))
        return texts[cid]

    def bytes_at(self, c: Conn, k: int) -> int:
        """Payload bytes in connection c's first k segments."""
        if k >= c.n:
            return c.bytes
        hit = self._bytes.get(c.id)
        if hit is not None and hit[0] == k:
            return hit[1]
        if hit is not None and abs(hit[0] - k) < k:
            k0, total = hit
            lo, hi = (k0, k) if k > k0 else (k, k0)
            part = sum(r[4] for r in REC.iter_unpack(bytes(c.rec[lo * REC_SIZE:hi * REC_SIZE])))
            total = total + part if k > k0 else total - part
        else:
            total = sum(r[4] for r in REC.iter_unpack(bytes(c.rec[:k * REC_SIZE])))
        self._bytes[c.id] = (k, total)
        return total


_TS = struct.Struct("<d")  # a segment record starts with its capture time


def counts_at(conns: Sequence[Conn], n: int, t: float | None) -> list[int]:
    """Segments of each of the first ``n`` connections up to time t (None: all), by id.

    The same as ``[c.count_at(t) for c in conns[:n]]``, without a call per connection
    where the connection's last segment is already before t (most of them, at any cursor).
    """
    size = REC_SIZE
    if t is None:
        return [len(c.rec) // size for c in islice(conns, n)]
    unpack = _TS.unpack_from
    out: list[int] = []
    append = out.append
    for c in islice(conns, n):
        rec = c.rec
        m = len(rec) // size
        append(m if not m or unpack(rec, (m - 1) * size)[0] <= t else c.count_at(t))
    return out


def _ep_ip(text: str) -> str:
    host = text.rsplit(":", 1)[0]
    return host.strip("[]").lower()


def last_ts_at(c: Conn, k: int) -> float:
    """Time of connection c's k-th segment (its first time when k is 0)."""
    if k <= 0:
        return c.first_ts
    return REC.unpack_from(c.rec, (k - 1) * REC_SIZE)[0]


class StateCache:
    """Both endpoints' states of every connection at one time, moved incrementally.

    Two ``bytearray`` (client, server) indexed by connection id, kept as of ``k`` entries of
    the timeline's global transition log. Moving to another time replays (or undoes) only the
    transitions in between, so a playing cursor costs a few entries per tick, and a filter
    on state over 100k connections is a few C-level byte operations. A long jump starts over
    from whichever is nearer: the empty world (replaying forward) or the connections' current
    states (undoing backward).
    """

    def __init__(self) -> None:
        self.cs = bytearray()
        self.ss = bytearray()
        self.k = 0

    def at(self, tl: Timeline, t: float | None) -> tuple[bytearray, bytearray]:
        """(client states, server states) by connection id, as of time t (None: now)."""
        import bisect

        log = tl.t_log
        n_log = len(log)
        target = n_log if t is None else bisect.bisect_right(tl.t_ts, t, 0, n_log)
        n = len(tl.conns)
        if len(self.cs) < n:
            grow = n - len(self.cs)
            self.cs.extend(bytes(grow))
            self.ss.extend(bytes(grow))
        # entries to replay from here, from the empty world, or (plus a pass over the
        # connections) to undo from the current states
        here, empty, now = abs(target - self.k), target, n + n_log - target
        if now < min(here, empty):
            conns = tl.conns
            self.cs = bytearray(c.state[0] for c in conns)
            self.ss = bytearray(c.state[1] for c in conns)
            self.k = n_log
        elif empty < here:
            self.cs = bytearray(len(self.cs))
            self.ss = bytearray(len(self.ss))
            self.k = 0
        arrs = (self.cs, self.ss)
        if target > self.k:
            for cid, side, _old, new in log[self.k:target]:
                arrs[side][cid] = new
        elif target < self.k:
            for cid, side, old, _new in reversed(log[target:self.k]):
                arrs[side][cid] = old
        self.k = target
        return self.cs, self.ss


def _table(states: frozenset[int]) -> bytes:
    return bytes(1 if i in states else 0 for i in range(256))


def _or(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _and(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") & int.from_bytes(b, "little")).to_bytes(len(a), "little")


def state_mask(q: ConnQuery, cs: bytes, ss: bytes) -> bytes:
    """One byte per connection: 1 where both endpoints' states pass the query's state terms."""
    mask: bytes | None = None
    for states in q.either_states:
        t = _table(states)
        m = _or(cs.translate(t), ss.translate(t))
        mask = m if mask is None else _and(mask, m)
    for states in q.client_states:
        m = cs.translate(_table(states))
        mask = m if mask is None else _and(mask, m)
    for states in q.server_states:
        m = ss.translate(_table(states))
        mask = m if mask is None else _and(mask, m)
    return mask if mask is not None else b"\x01" * len(cs)


SORT_KEYS: tuple[str, ...] = ("id", "client", "server", "cstate", "sstate", "pkts", "bytes", "idle", "age", "notes")


class ConnRows:
    """The filtered, sorted list of connection ids for the table.

    ``compute`` is called on the UI tick; it returns ``range`` objects when no filter or sort
    applies, so 100k connections cost nothing until the user asks for a filter or sort.
    """

    def __init__(self) -> None:
        self.query = ConnQuery()
        self.sort = "id"
        self.reverse = False
        self.facts = ConnFacts()
        self._static: list[int] = []  # ids passing the time-independent terms
        self._static_n = 0
        self._static_text: str | None = None
        self.states = StateCache()
        self._values_key: tuple | None = None
        self._values: Sequence = ()

    def set_query(self, text: str) -> ConnQuery:
        """Use a new filter query; returns it parsed (see ``errors``)."""
        self.query = ConnQuery.parse(text)
        return self.query

    def _static_ids(self, tl: Timeline, n: int) -> list[int]:
        q = self.query
        if self._static_text != q.text:
            self._static, self._static_n, self._static_text = [], 0, q.text
        if self._static_n < n:
            conns, texts, match = tl.conns, self.facts.texts, q.static_match
            self._static.extend(i for i in range(self._static_n, n) if match(conns[i], texts(tl, i)))
            self._static_n = n
        static = self._static
        if static and static[-1] >= n:
            import bisect

            return static[: bisect.bisect_left(static, n)]
        return static

    def compute(self, tl: Timeline, t: float | None) -> Sequence[int]:
        """Connection ids to list as of time t (None: now)."""
        n = tl.conn_count_at(t)
        q = self.query
        if q.empty:
            ids: Sequence[int] = range(n)
        else:
            static_terms = q.ports or q.ips or q.words or q.notes or q.ids
            if q.uses_state:
                import re

                cs, ss = self.states.at(tl, t)
                mask = state_mask(q, bytes(cs[:n]), bytes(ss[:n]))
                if static_terms:
                    ids = [i for i in self._static_ids(tl, n) if mask[i]]
                else:
                    ids = [m.start() for m in re.finditer(b"\x01", mask)]
            else:
                ids = self._static_ids(tl, n)
        if self.sort == "id":
            if self.reverse:
                return ids[::-1]
            return ids
        return sorted(ids, key=self.sort_values(tl, t, n).__getitem__, reverse=self.reverse)

    def sort_values(self, tl: Timeline, t: float | None, n: int) -> Sequence:
        """The current sort column's value for each of the first ``n`` connections, by id,
        as of time t.

        Kept until the column, the time or the timeline changes, so re-sorting or filtering
        at the same cursor does not compute them again; columns that do not depend on the
        time (addresses, age, notes) are kept across cursor moves. The states come from the
        incremental :class:`StateCache` (one byte per connection) instead.
        """
        s = self.sort
        if s in ("cstate", "sstate"):
            return self.states.at(tl, t)[0 if s == "cstate" else 1]
        key = (s, t if s in ("pkts", "bytes", "idle") else None, tl.version, n)
        if key == self._values_key:
            return self._values
        conns = tl.conns
        values: Sequence
        if s == "client":
            values = [(c.family, c.cip, c.cport) for c in islice(conns, n)]
        elif s == "server":
            values = [(c.family, c.sip, c.sport) for c in islice(conns, n)]
        elif s == "age":
            values = [-c.first_ts for c in islice(conns, n)]
        elif s == "notes":
            values = [c.notes() for c in islice(conns, n)]
        elif s == "pkts":
            values = counts_at(conns, n, t)
        elif s == "bytes" and t is None:
            values = [c.bytes for c in islice(conns, n)]
        elif s == "bytes":
            bytes_at, size = self.facts.bytes_at, REC_SIZE
            values = [c.bytes if k * size >= len(c.rec) else bytes_at(c, k)
                      for c, k in zip(conns, counts_at(conns, n, t))]
        elif s == "idle":
            # least idle first = newest last segment first
            unpack, size = _TS.unpack_from, REC_SIZE
            values = [-(unpack(c.rec, (k - 1) * size)[0] if k else c.first_ts)
                      for c, k in zip(conns, counts_at(conns, n, t))]
        else:
            values = range(n)
        self._values_key, self._values = key, values
        return values
