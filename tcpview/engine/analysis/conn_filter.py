"""The filter language of every connection table (no Textual): parsing, checking, matching.

The filter is a small query: whitespace-separated terms, all of which must match (AND):

``state:CLOSE_WAIT``  either endpoint is in that state (names, ``close-wait``, prefixes such as
``state:fin_wait`` and the ``ss`` short forms ``tw``, ``cw``, ``est``, ``syn-recv`` work);
``client:STATE`` / ``server:STATE`` one endpoint only; ``port:443`` either port;
``is:partial`` / ``is:refused`` / ``is:reset`` / ``is:anomaly`` notes as of the cursor; ``id:12``;
``ip:10.0.0.5`` either address;
``analysis:retransmission`` a segment of it up to the cursor has that analysis flag (Wireshark's
names, or the ladder's tags: ``analysis:dup-ack``, ``an:zero-win``), or that anomaly
(``an:rst-out-of-win``, ``an:xmas``; the JSON's names ``rst_out_of_window`` too);
``zeek:REJ`` Zeek's conn_state as of the cursor; ``history:^S$`` a regular expression found in
Zeek's history letters (``history:r`` the responder reset); ``slow:receive_window`` the
verdict of ``tcpview diagnose`` as of the cursor (``slow:receive-window`` too);
``proc:nginx`` a process holding either endpoint's socket on this host has that command (or
one that starts with it); ``pid:1234`` is that process; ``user:www-data`` (or a uid) owns it;
an IP address matches either endpoint's address exactly; any other word matches part of the
client or server text (``10.0.0.`` , ``:443``).

Processes come from the kernel's view of this host, which the engine knows nothing of: a table
hands them in as :data:`ProcessInfo` tuples (:meth:`ConnQuery.process_match`,
:func:`process_mask`); a connection with none known passes no process term.

A term that names no such thing (``state:bogus``, ``bogus:xyz``, ``port:x``) is an error that
says what is valid: :meth:`ConnQuery.parse` collects them and :func:`check` says them in one
line, so a table never filters with a term it cannot read (the viewer refuses it as it is
typed, ``tcpview export --filter`` with exit status 2). Every table that filters connections
uses this one language (the capture's connection table, the kernel's socket table). A table
that has nothing to match a kind of term against (the socket table has no notes) parses with
that kind in ``without``: such a term is an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..core.columns import NOTE_ANOMALY, NOTE_PARTIAL, NOTE_REFUSED, NOTE_RESET
from ..core.tcp import STATE_NAMES, Analysis, Anomaly
from ..core.zeek_analyzer import CONN_STATES
from .diagnosis import SHORT, VERDICTS

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
_KINDS = {"state": "state", "st": "state", "client": "state", "cs": "state", "server": "state",
          "ss": "state", "port": "port", "is": "note", "note": "note", "id": "id", "ip": "ip", "host": "ip",
          "addr": "ip", "analysis": "analysis", "an": "analysis", "zeek": "zeek", "conn_state": "zeek",
          "history": "history", "hist": "history", "proc": "process", "process": "process", "comm": "process",
          "pid": "process", "user": "process", "uid": "process",
          "slow": "slow", "verdict": "slow"}
"""``key:`` -> the kind of term it starts (what ``ConnQuery.parse``'s ``without`` names)."""

KEYS = ("state", "client", "server", "port", "is", "id", "ip", "analysis", "zeek", "history", "proc", "pid",
        "user", "slow")
"""The keys a term can start with, as the error for an unknown one lists them (each kind's
main name; ``st an hist conn_state host addr note cs ss process comm uid`` are other
spellings)."""

ProcessInfo = tuple[int | None, str | None, str | None]
"""A process holding a socket, as the process terms match it: (pid, command, user name); None
where it is not known (another user's process, without privileges)."""

# the ladder's tags for analysis flags, as filter words too
_ANALYSIS_ALIASES = {
    "retrans": "retransmission", "fast-retrans": "fast_retransmission",
    "spurious-retrans": "spurious_retransmission",
    "ooo": "out_of_order", "lost": "lost_segment", "ack-lost": "ack_lost_segment", "zero-win": "zero_window",
    "win-probe": "window_probe", "win-probe-ack": "window_probe_ack", "win-full": "window_full",
    "win-update": "window_update", "keepalive": "keep_alive", "keepalive-ack": "keep_alive_ack",
    "dupack": "dup_ack",
}

# the ladder's tags for anomalies (JSON's names, with _ for -, work as well)
_ANOMALY_ALIASES = {"rst-out-of-win": "rst_out_of_window"}

_HEX = frozenset("0123456789abcdef")
_STATES_TEXT = ", ".join(STATE_NAMES) + "; tw, cw, est, syn-recv, or a prefix"
_TAGS = ("retrans", "fast-retrans", "spurious-retrans", "ooo", "dup-ack", "lost", "ack-lost", "zero-win",
         "win-probe", "win-probe-ack", "win-full", "win-update", "keepalive", "keepalive-ack", "reused-ports")
_ANOMALY_TAGS = tuple({"rst_out_of_window": "rst-out-of-win"}.get(n, n.replace("_", "-"))
                      for n in (a.name.lower() for a in Anomaly if a.name))
_ANALYSIS_TEXT = (f"the ladder's tags {', '.join(_TAGS)}; anomalies {', '.join(_ANOMALY_TAGS)}; "
                  "or Wireshark's names (retransmission, dup_ack...)")


def parse_analysis(word: str) -> int:
    """The analysis bit an ``analysis:`` word names (0 when it names none)."""
    w = word.lower()
    w = _ANALYSIS_ALIASES.get(w, w).replace("-", "_")
    for a in Analysis:
        if a.name is not None and a.name.lower() == w:
            return int(a)
    return 0


def parse_anomaly(word: str) -> int:
    """The anomaly bit an ``analysis:`` word names (0 when it names none)."""
    w = word.lower()
    w = _ANOMALY_ALIASES.get(w, w).replace("-", "_")
    return next((int(a) for a in Anomaly if a.name is not None and a.name.lower() == w), 0)


def parse_states(word: str) -> frozenset[int]:
    """State values a ``state:`` word names (empty when it names none)."""
    w = word.upper().replace("-", "_")
    w = _ALIASES.get(w, w)
    if w in STATE_NAMES:
        return frozenset((STATE_NAMES.index(w),))
    return frozenset(i for i, name in enumerate(STATE_NAMES) if name.startswith(w)) if w else frozenset()


def _looks_like_key(key: str) -> bool:
    """Whether the text before a term's ``:`` is meant as a key: letters (or ``_``), and not
    something an IPv6 address starts with (``fe80:``, ``cafe:`` are words)."""
    return bool(key) and key.replace("_", "a").isalpha() and not (len(key) <= 4 and set(key) <= _HEX)


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
    procs: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    slow: list[int] = field(default_factory=list)  # verdict codes (index VERDICTS)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, without: Collection[str] = ()) -> ConnQuery:
        """Parse a filter query (see the module docstring).

        Args:
            text: the query.
            without: kinds of ``key:value`` term the table cannot filter on (``"state"``,
                ``"port"``, ``"note"``, ``"id"``, ``"ip"``, ``"analysis"``, ``"zeek"``,
                ``"history"``, ``"process"``); each such term is an error.
        """
        q = cls(text=text.strip())
        for term in q.text.split():
            q._term(term, without)
        return q

    def _term(self, term: str, without: Collection[str]) -> None:
        key, sep, value = term.partition(":")
        key = key.lower()
        kind = _KINDS.get(key) if sep else None
        if kind is None and sep and _norm_ip(term) is None and _looks_like_key(key):
            keys = " ".join(f"{k}:" for k in KEYS if _KINDS[k] not in without)
            self.errors.append(f"unknown key {key + ':'!r}: {keys}, an address, or a word")
        elif kind in without:
            self.errors.append(f"not in this table {term!r}")
        elif kind == "state":
            states = parse_states(value)
            if not states:
                self.errors.append(f"unknown state {value!r}: {_STATES_TEXT}")
                return
            target = {"client": self.client_states, "cs": self.client_states,
                      "server": self.server_states, "ss": self.server_states}.get(key, self.either_states)
            target.append(states)
        elif kind == "port":
            if value.isdigit() and int(value) < 65536:
                self.ports.append(int(value))
            else:
                self.errors.append(f"bad port {value!r}: a number, 0 to 65535")
        elif kind == "note":
            if value.lower() in NOTES:
                self.notes.append(value.lower())
            else:
                self.errors.append(f"unknown note {value!r}: {', '.join(NOTES)}")
        elif kind == "analysis":
            bit, anomaly = parse_analysis(value), parse_anomaly(value)
            if bit:
                self.analysis.append(bit)
            elif anomaly:
                self.anomalies.append(anomaly)
            else:
                self.errors.append(f"unknown analysis {value!r}: {_ANALYSIS_TEXT}")
        elif kind == "zeek":
            if value.upper() in CONN_STATES:
                self.zeek.append(CONN_STATES.index(value.upper()))
            else:
                self.errors.append(f"unknown conn_state {value!r}: {', '.join(CONN_STATES)}")
        elif kind == "slow":
            name = {short: long for long, short in SHORT.items()}.get(value.lower(), value.lower().replace("-", "_"))
            if name in VERDICTS:
                self.slow.append(VERDICTS.index(name))
            else:
                self.errors.append(f"unknown verdict {value!r}: {', '.join(VERDICTS)}")
        elif kind == "history":
            try:
                self.history.append(re.compile(value))
            except re.error as e:
                self.errors.append(f"bad history pattern {value!r}: {e} (a regular expression on Zeek's "
                                   "letters)")
        elif kind == "process":
            self._process_term(key, value)
        elif kind == "id":
            if value.isdigit():
                self.ids.append(int(value))
            else:
                self.errors.append(f"bad id {value!r}: a connection's number")
        elif kind == "ip":
            ip = _norm_ip(value)
            if ip is None:
                self.errors.append(f"bad address {value!r}: an IPv4 or IPv6 address (a word matches part "
                                   "of one)")
            else:
                self.ips.append(ip)
        else:
            ip = _norm_ip(term)
            if ip is not None:
                self.ips.append(ip)
            else:
                self.words.append(term.lower())

    def _process_term(self, key: str, value: str) -> None:
        if key == "pid":
            if value.isdigit():
                self.pids.append(int(value))
            else:
                self.errors.append(f"bad pid {value!r}: a process id")
        elif not value:
            self.errors.append(f"{key}: needs a {'user name or uid' if key in ('user', 'uid') else 'command'}")
        elif key in ("user", "uid"):
            self.users.append(value)
        else:
            self.procs.append(value.lower())

    @property
    def empty(self) -> bool:
        """True when the query lets every connection through."""
        return not (self.either_states or self.client_states or self.server_states or self.ports or self.ips
                    or self.words or self.notes or self.ids or self.analysis or self.anomalies or self.zeek
                    or self.history or self.uses_process or self.slow)

    @property
    def uses_process(self) -> bool:
        """True when it asks which process holds a socket (``proc:``, ``pid:``, ``user:``)."""
        return bool(self.procs or self.pids or self.users)

    def process_match(self, procs: Iterable[ProcessInfo]) -> bool:
        """The process terms, given the processes holding the connection's sockets here (each
        term may match a different one of them, as ``state:`` does either end)."""
        procs = list(procs)
        for name in self.procs:
            if not any(c is not None and c.lower().startswith(name) for _p, c, _u in procs):
                return False
        for pid in self.pids:
            if not any(p == pid for p, _c, _u in procs):
                return False
        for user in self.users:
            if not any(u is not None and (u == user or (user.isdigit() and u == _uid_name(int(user))))
                       for _p, _c, u in procs):
                return False
        return True

    @property
    def uses_state(self) -> bool:
        """True when the result depends on the cursor time (state terms)."""
        return bool(self.either_states or self.client_states or self.server_states)

    @property
    def uses_zeek(self) -> bool:
        """True when it asks for Zeek's view (conn_state or history, as of the cursor)."""
        return bool(self.zeek or self.history)

    @property
    def uses_slow(self) -> bool:
        """True when it asks for the diagnosis's verdict (as of the cursor)."""
        return bool(self.slow)

    @property
    def uses_progress(self) -> bool:
        """True when it asks what the segments up to the cursor said (notes, analysis flags,
        anomalies)."""
        return bool(self.notes or self.analysis or self.anomalies)

    def fields_match(self, cid: int, cport: int, sport: int, texts: tuple[str, str, str, str],
                     notes: Callable[[], list[str]] | None = None,
                     analysis: Callable[[], int] | None = None,
                     anomalies: Callable[[], int] | None = None) -> bool:
        """The terms that are not about states, for any table's connection.

        Args:
            cid: the connection's id.
            cport: the client's port.
            sport: the server's port.
            texts: :func:`endpoint_texts` of the client's and server's text.
            notes: returns the connection's notes; called only if a term asks for one.
            analysis: returns the analysis flags of its segments; likewise.
            anomalies: returns the anomaly bits of its segments; likewise.
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


def check(text: str, without: Collection[str] = ()) -> str | None:
    """What is wrong with a filter, in one line (None: nothing), for a box that refuses a bad
    term as it is typed."""
    errors = ConnQuery.parse(text, without).errors
    return "; ".join(errors) if errors else None


def endpoint_texts(client: str, server: str) -> tuple[str, str, str, str]:
    """What the address and word terms match against, from the client's and server's text
    (``10.0.0.5:443``, ``[2001:db8::1]:443``): (client text, server text, client ip, server
    ip), lower case."""
    return client.lower(), server.lower(), _ep_ip(client), _ep_ip(server)


def ip_parts(text: str) -> tuple[int, int, int] | None:
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


def progress_mask(q: ConnQuery, notes: np.ndarray, analysis: np.ndarray, anomalies: np.ndarray) -> np.ndarray:
    """Where the connections' ``NOTE_*`` bits, analysis bits and anomaly bits (arrays by
    connection, as of the cursor) pass the query's ``is:`` and ``analysis:`` terms."""
    notes = notes.astype(np.int64)
    mask = np.ones(len(notes), dtype=bool)
    for note in q.notes:
        if note == "reset":  # a refused connection is called refused, not reset
            mask &= ((notes & NOTE_RESET) != 0) & ((notes & NOTE_REFUSED) == 0)
        else:
            bit = {"partial": NOTE_PARTIAL, "refused": NOTE_REFUSED, "anomaly": NOTE_ANOMALY}[note]
            mask &= (notes & bit) != 0
    for bit in q.analysis:
        mask &= (analysis & bit) != 0
    for bit in q.anomalies:
        mask &= (anomalies & bit) != 0
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


def process_mask(q: ConnQuery, cids: np.ndarray, processes: Mapping[int, Iterable[ProcessInfo]]) -> np.ndarray:
    """Where the connections ``cids`` pass the query's process terms, given the processes
    known to hold their sockets (connection id -> :data:`ProcessInfo`s; a connection not in
    it has none known and passes no process term)."""
    mask = np.zeros(len(cids), dtype=bool)
    if not processes:
        return mask
    for i, cid in enumerate(cids.tolist()):
        procs = processes.get(cid)
        if procs:
            mask[i] = q.process_match(procs)
    return mask


def _uid_name(uid: int) -> str:
    """User ``uid``'s name (its number when it has none), so ``user:33`` finds www-data."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def slow_mask(q: ConnQuery, verdicts: np.ndarray) -> np.ndarray:
    """Where the verdicts (codes by connection) pass the query's slow: terms."""
    mask = np.ones(len(verdicts), dtype=bool)
    for code in q.slow:
        mask &= verdicts == code
    return mask


def _table(states: frozenset[int]) -> np.ndarray:
    t = np.zeros(256, dtype=bool)
    t[list(states)] = True
    return t
