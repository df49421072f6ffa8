"""The kernel's own events of this host's sockets, kept per endpoint.

A :class:`KernelLog` takes the decoded tracepoint events
(:data:`tcpview.sources.tracefs.decode.KEVENT` rows, in time order) and groups them by socket
life: one kernel socket (its address, ``sk``) from its first state change to its end. A
socket's address is reused after it is freed, so a life starts at the state change that
starts a socket (``CLOSE -> SYN_SENT``, ``CLOSE -> LISTEN``, ``LISTEN -> SYN_RECV`` for a
listener's child) and ends at ``CLOSE`` (or its destruction). Each life learns its endpoint
(local and remote address and port) from its first event that names both ports (a
connecting socket has no local port at ``CLOSE -> SYN_SENT`` yet).

States are tcpview's (:class:`~tcpview.engine.core.tcp.TcpState`). One is not a tracepoint's:
TIME_WAIT. The kernel leaves a closing socket for a small "timewait" socket of its own (what
``ss`` lists as TIME-WAIT, or FIN-WAIT-2 while an orphan waits for its peer's FIN) and the
full socket's last state change is then to CLOSE; a change to CLOSE from FIN_WAIT_1,
FIN_WAIT_2 or CLOSING without a reset before it is that handover, kept as TIME_WAIT. An
orphan handed over in FIN_WAIT_2 stays there until its peer's FIN: when the peer is a socket
of this host, its change to LAST_ACK is when (before it, ``ss`` shows FIN-WAIT-2); for a
remote peer that moment has no tracepoint, and the handover is kept as TIME_WAIT. The end of
a timewait socket has no tracepoint either: it ends ``msl2`` after it began, or when a new
connection takes its 4-tuple (the kernel reuses a timewait socket's tuple for a SYN it
accepts, and for a connect with ``tcp_tw_reuse``).

Threads: one thread adds (:meth:`KernelLog.add`); readers take the lists as they are (each
life's lists only grow; a new life is appended whole).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ...sources.tracefs import formats as fm
from ..core.tcp import STATE_NAMES, TcpState

KSTATE = {1: TcpState.ESTABLISHED, 2: TcpState.SYN_SENT, 3: TcpState.SYN_RECEIVED, 4: TcpState.FIN_WAIT_1,
          5: TcpState.FIN_WAIT_2, 6: TcpState.TIME_WAIT, 7: TcpState.CLOSED, 8: TcpState.CLOSE_WAIT,
          9: TcpState.LAST_ACK, 10: TcpState.LISTEN, 11: TcpState.CLOSING, 12: TcpState.SYN_RECEIVED}
"""The kernel's TCP state numbers (``include/net/tcp_states.h``) as tcpview's states."""

_K_CLOSE, _K_LISTEN, _K_SYN_RECV, _K_FIN_WAIT2, _K_CLOSE_WAIT, _K_LAST_ACK = 7, 10, 3, 5, 8, 9
_TO_TIMEWAIT = {4, 5, 11}  # FIN_WAIT1, FIN_WAIT2, CLOSING: a change to CLOSE from these is the timewait handover

CONG_NAMES = ("Open", "Disorder", "CWR", "Recovery", "Loss")
"""The congestion states of ``tcp:tcp_cong_state_set`` (``enum tcp_ca_state``)."""

FORGET_EVERY = 10.0
"""Seconds of events between two :meth:`KernelLog.forget` calls of the adding thread: lives
over for two TIME_WAITs' time leave, so a long run keeps only what it may still show."""

Endpoint = tuple[str, int, str, int]
"""(local address, local port, remote address, remote port), addresses as text."""


def _ip(fam: int, raw: np.ndarray) -> str:
    if fam == 6:
        return socket.inet_ntop(socket.AF_INET6, bytes(raw))
    return socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))


@dataclass
class SockLife:
    """One kernel socket from its first state change to its end.

    Attributes:
        states: (time, TcpState) of each state the kernel set (for a socket older than the
            log, the state it was in first, at the time of its first event).
        probes: rows of the log's probe table (tcp_probe: cwnd, ssthresh, srtt per ACK).
        cong: (time, congestion state) changes.
    """

    sk: int
    start: float
    key: Endpoint | None = None
    states: list[tuple[float, int]] = field(default_factory=list)
    end: float | None = None
    retrans: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    cong: list[tuple[float, int]] = field(default_factory=list)
    probes: list[int] = field(default_factory=list)
    pid: int = 0

    def state_at(self, t: float | None = None, msl2: float | None = None) -> int | None:
        """The kernel's state of this socket at ``t`` (its last when None); None before it
        began. With ``msl2`` (and ``t``), a TIME_WAIT that long ago is over: CLOSED."""
        out, since = None, 0.0
        for ts, st in self.states:
            if t is not None and ts > t:
                break
            out, since = st, ts
        if out == TcpState.TIME_WAIT and msl2 is not None and t is not None and t - since >= msl2:
            return int(TcpState.CLOSED)
        return out

    def transitions(self) -> list[dict]:
        """The states as ``[{"ts", "state"}]``, as summary JSON gives them."""
        return [{"ts": ts, "state": STATE_NAMES[st]} for ts, st in self.states]


class _Cols(NamedTuple):
    """A batch's columns as lists (the fields the adding loop reads)."""

    kind: list
    sk: list
    ts: list
    old: list
    new: list
    pid: list
    fam: list
    sport: list
    dport: list


class KernelLog:
    """Every socket life seen in the kernel's events, found by endpoint.

    Args:
        msl2: how long a socket stays in TIME_WAIT (the kernel's is 60 s), for counting.
    """

    def __init__(self, msl2: float = 60.0) -> None:
        self.msl2 = msl2
        self.lives: list[SockLife] = []
        self.by_key: dict[Endpoint, list[SockLife]] = {}
        self._open: dict[int, SockLife] = {}
        self._ended: dict[int, SockLife] = {}  # sockets closed, not yet destroyed
        self._destroyed: dict[int, SockLife] = {}  # sockets destroyed in the batch being added
        self._awaiting_fin: dict[int, SockLife] = {}  # a local peer's sk -> an orphan in FIN_WAIT_2 waiting for its FIN
        self._lock = threading.Lock()
        self.probe_rows = np.zeros(0, dtype=[("ts", "f8"), ("cwnd", "u4"), ("ssthresh", "u4"), ("srtt", "u4"),
                                             ("snd_wnd", "u4")])
        self.nprobes = 0
        self.events = 0
        self.lost = 0
        self.last_ts: float | None = None
        self.version = 0
        self._forgot = 0.0
        self._batch: np.ndarray | None = None  # the batch being added (its addresses are read as needed)
        self._born: dict[int, list[SockLife]] = {}  # sk -> the lives it began in the batch being added
        self._before: dict[int, SockLife | None] = {}  # sk -> its life before them

    # -- adding ----------------------------------------------------------------------------
    def add(self, ev: np.ndarray) -> None:
        """Take a batch of events (time order)."""
        if not len(ev):
            return
        self.events += len(ev)
        self.last_ts = float(ev["ts"][-1])
        probe = ev["kind"] == fm.K_PROBE
        rest = ev[~probe]
        # plain lists: reading a numpy record's fields one by one costs a microsecond each
        self._batch = rest
        cols = _Cols(*(rest[name].tolist() for name in _Cols._fields))
        one = self._one
        for i in range(len(rest)):
            one(cols, i)
        self._batch = None
        if probe.any():  # after the state changes: a socket's probes go to the life it has by then
            self._add_probes(ev[probe])
        self._destroyed.clear()
        self._born.clear()
        self._before.clear()
        self.version += 1
        if self.last_ts - self._forgot > FORGET_EVERY:
            self._forgot = self.last_ts
            self.forget(self.last_ts - 2 * self.msl2)

    def _add_probes(self, p: np.ndarray) -> None:
        need = self.nprobes + len(p)
        if need > len(self.probe_rows):
            grown = np.zeros(max(need, 2 * len(self.probe_rows), 1024), dtype=self.probe_rows.dtype)
            grown[: self.nprobes] = self.probe_rows[: self.nprobes]
            self.probe_rows = grown
        rows = self.probe_rows[self.nprobes: need]
        for name in ("ts", "cwnd", "ssthresh", "srtt", "snd_wnd"):
            rows[name] = p[name]
        first = self.nprobes
        self.nprobes = need
        order = np.argsort(p["sk"], kind="stable")
        sks = p["sk"][order]
        cuts = np.flatnonzero(np.diff(sks)) + 1
        self._batch = p
        cols = None
        for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(sks)].tolist(), strict=True):
            sk = int(sks[lo])
            rows = order[lo:hi]
            if sk in self._born:  # its address began new lives in this batch: each probe to its own by time
                lives = [lf for lf in (self._before.get(sk), *self._born[sk]) if lf is not None]
                which = np.searchsorted([lf.start for lf in lives], p["ts"][rows], side="right") - 1
                for k, lf in enumerate(lives):
                    lf.probes.extend((rows[np.maximum(which, 0) == k] + first).tolist())
                continue
            life = self._open.get(sk) or self._ended.get(sk) or self._destroyed.get(sk)
            if life is None:  # a socket whose start was before the log: its life starts here
                if cols is None:
                    cols = _Cols(*(p[name].tolist() for name in _Cols._fields))
                life = self._life_of(cols, int(order[lo]), new_tuple=False)
            life.probes.extend((rows + first).tolist())
        self._batch = None

    def _life_of(self, c: _Cols, i: int, new_tuple: bool = True) -> SockLife:
        life = SockLife(c.sk[i], c.ts[i])
        if life.sk not in self._born:  # a socket's address is reused: its probes are told apart by time
            self._before[life.sk] = self._open.get(life.sk) or self._ended.get(life.sk) or \
                self._destroyed.get(life.sk)
        self._born.setdefault(life.sk, []).append(life)
        with self._lock:
            self.lives.append(life)
        self._open[life.sk] = life
        self._ended.pop(life.sk, None)  # the address is a new socket's now
        self._learn(life, c, i, new_tuple)
        return life

    def _learn(self, life: SockLife, c: _Cols, i: int, new_tuple: bool = True) -> None:
        listener = c.kind[i] == fm.K_STATE and c.new[i] == _K_LISTEN  # no peer: 0.0.0.0:0 (or ::)
        if life.key is not None or not (c.sport[i] and (c.dport[i] or listener) and c.fam[i]):
            return
        b = self._batch
        assert b is not None  # set while a batch is added
        life.key = lip, lport, rip, rport = (_ip(c.fam[i], b["saddr"][i]), c.sport[i], _ip(c.fam[i], b["daddr"][i]),
                                             c.dport[i])
        # a new connection on the 4-tuple of a timewait socket ended that socket (the
        # kernel reuses it: a SYN in TIME_WAIT, tcp_tw_reuse), without a tracepoint; a socket
        # first seen by its probes is no new connection
        for key in ((life.key, (rip, rport, lip, lport)) if new_tuple else ()):
            for old in self.by_key.get(key, ()):
                if old.states and old.states[-1][1] == TcpState.TIME_WAIT:
                    old.states.append((c.ts[i], int(TcpState.CLOSED)))
        self.by_key.setdefault(life.key, []).append(life)

    def _one(self, c: _Cols, i: int) -> None:
        kind, sk, ts = c.kind[i], c.sk[i], c.ts[i]
        life = self._open.get(sk)
        if kind == fm.K_STATE:
            old, new = c.old[i], c.new[i]
            starts = old == _K_CLOSE or (old == _K_LISTEN and new == _K_SYN_RECV)
            if life is None or starts:
                if life is not None:
                    self._close(life, ts)
                life = self._life_of(c, i)
                life.pid = c.pid[i]
                if not starts:  # a socket older than the log: the state it was in
                    life.states.append((ts, int(KSTATE.get(old, TcpState.CLOSED))))
            self._learn(life, c, i)
            st = KSTATE.get(new, TcpState.CLOSED)
            if new == _K_CLOSE and old in _TO_TIMEWAIT and not life.resets_received and not life.resets_sent:
                st = TcpState.TIME_WAIT
                peer = self._peer(life)
                if old == _K_FIN_WAIT2 and peer is not None and peer.state_at() == TcpState.CLOSE_WAIT:
                    # an orphan handed over before its peer's FIN: FIN_WAIT_2 (in a timewait
                    # socket) until the peer, a socket of this host, sends its FIN
                    self._awaiting_fin[peer.sk] = life
                    st = TcpState.FIN_WAIT_2
            if old == _K_CLOSE_WAIT and new == _K_LAST_ACK:
                waiting = self._awaiting_fin.pop(sk, None)
                # the same socket, not a later one at the same address whose FIN this is not
                if waiting is not None and self._peer(waiting) is life and waiting.states[-1][1] == TcpState.FIN_WAIT_2:
                    waiting.states.append((ts, int(TcpState.TIME_WAIT)))
                    self._superseded(waiting, ts)
            if not life.states or life.states[-1][1] != st:
                life.states.append((ts, int(st)))
                if st == TcpState.TIME_WAIT:
                    self._superseded(life, ts)
            if new == _K_CLOSE:
                self._close(life, ts)
            return
        if life is None:
            life = self._ended.get(sk)  # its state is CLOSE already: a reset sent as it closed, its destruction
            if kind == fm.K_DESTROY:
                gone = self._ended.pop(sk, None)
                if gone is not None:  # this batch's probes of it may come after (they are added last)
                    self._destroyed[sk] = gone
                return
            if life is None:
                if not sk:
                    if kind == fm.K_SEND_RST:
                        self._reset_to_timewait(c, i)
                    return
                life = self._life_of(c, i)
        self._learn(life, c, i)
        if kind == fm.K_RETRANS:
            life.retrans += 1
        elif kind == fm.K_SEND_RST:
            life.resets_sent += 1
        elif kind == fm.K_RECV_RST:
            life.resets_received += 1
        elif kind == fm.K_CONG:
            life.cong.append((ts, c.new[i]))
        elif kind == fm.K_DESTROY:
            self._close(life, ts)

    def _superseded(self, life: SockLife, ts: float) -> None:
        """A socket that went to TIME_WAIT after a new connection on its 4-tuple began (its
        events came in later than the new one's) is over already: CLOSED when that began."""
        if life.key is None:
            return
        lip, lport, rip, rport = life.key
        for key in (life.key, (rip, rport, lip, lport)):
            for other in self.by_key.get(key, ()):
                if other is not life and other.states and other.start >= ts:
                    life.states.append((other.start, int(TcpState.CLOSED)))
                    return

    def _reset_to_timewait(self, c: _Cols, i: int) -> None:
        """A reset sent with no socket (to a segment for none) reaches the peer; when the peer
        is a timewait socket of this host, the reset ends it (Linux does, unless
        ``tcp_rfc1337``), with no tracepoint of its own."""
        if not (c.sport[i] and c.dport[i] and c.fam[i]):
            return
        b = self._batch
        assert b is not None
        to = (_ip(c.fam[i], b["daddr"][i]), c.dport[i], _ip(c.fam[i], b["saddr"][i]), c.sport[i])
        for life in self.by_key.get(to, ()):
            if life.states and life.states[-1][1] in (TcpState.TIME_WAIT, TcpState.FIN_WAIT_2) and life.end is not None:
                life.states.append((c.ts[i], int(TcpState.CLOSED)))

    def _peer(self, life: SockLife) -> SockLife | None:
        """The newest life of the socket at the other end, when it is on this host."""
        if life.key is None:
            return None
        lip, lport, rip, rport = life.key
        lives = self.by_key.get((rip, rport, lip, lport))
        return lives[-1] if lives else None

    def _close(self, life: SockLife, ts: float) -> None:
        if life.end is None:
            life.end = ts
        if self._open.get(life.sk) is life:
            del self._open[life.sk]
            self._ended[life.sk] = life

    # -- questions -------------------------------------------------------------------------
    def endpoint(self, key: Endpoint, around: float | None = None) -> SockLife | None:
        """The life of the socket at ``key`` (local, remote), the one whose start is nearest
        before ``around`` (a connection's first packet; the latest when None)."""
        lives = self.by_key.get(key)
        if not lives:
            return None
        if around is None:
            return lives[-1]
        before = [lf for lf in lives if lf.start <= around + 1.0 and lf.states]
        return (before or lives)[-1]

    def for_connection(self, client: tuple[str, int], server: tuple[str, int], first_ts: float | None) -> dict:
        """``{"client": [...], "server": [...]}``: the kernel's states of a connection's
        endpoints that live on this host (an endpoint with no socket here is left out)."""
        out = {}
        for side, life in zip(("client", "server"), self.lives_for(client, server, first_ts), strict=True):
            if life is not None:
                out[side] = life.transitions()
        return out

    def lives_for(self, client: tuple[str, int], server: tuple[str, int],
                  first_ts: float | None) -> tuple[SockLife | None, SockLife | None]:
        """The socket lives of a connection's client and server on this host (None: not here)."""
        return (self.endpoint((client[0], client[1], server[0], server[1]), first_ts),
                self.endpoint((server[0], server[1], client[0], client[1]), first_ts))

    def rows_for(self, client: tuple[str, int], server: tuple[str, int],
                 first_ts: float | None) -> list[tuple[float, int, int]]:
        """The kernel's state changes of a connection's endpoints here, as (time, side, state),
        in time order (what the ladder shows as rows of their own)."""
        rows = []
        for side, life in enumerate(self.lives_for(client, server, first_ts)):
            if life is not None:
                rows += [(ts, side, st) for ts, st in life.states]
        return sorted(rows)

    def forget(self, before: float) -> int:
        """Drop the lives that ended before ``before`` (and are not in TIME_WAIT then); how many.
        Only the adding thread calls it (:meth:`add` does, every :data:`FORGET_EVERY` s)."""
        with self._lock:
            keep = [lf for lf in self.lives if lf.end is None or lf.end >= before
                    or (lf.states and lf.states[-1][1] == TcpState.TIME_WAIT and lf.states[-1][0] + self.msl2 >= before)]
            gone = len(self.lives) - len(keep)
            if not gone:
                return 0
            self.lives = keep
        alive = {id(lf) for lf in keep}
        self.by_key = {k: v for k, v in ((k, [lf for lf in v if id(lf) in alive]) for k, v in self.by_key.items()) if v}
        self._ended = {sk: lf for sk, lf in self._ended.items() if id(lf) in alive}
        return gone

    def snapshot(self) -> list[SockLife]:
        """Every life so far (a copy of the list: lives added later are not in it)."""
        with self._lock:
            return list(self.lives)

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Sockets per state at ``t`` (the newest event when None), as ``ss -tan`` counts
        them: CLOSED not counted, a TIME_WAIT ended ``msl2`` after it began."""
        t = self.last_ts if t is None else t
        counts = dict.fromkeys(STATE_NAMES[1:], 0)
        if t is None:
            return counts
        for life in self.snapshot():
            if life.start > t:
                continue
            st, since = None, 0.0
            for ts, s in life.states:
                if ts > t:
                    break
                st, since = s, ts
            if st is None or st == TcpState.CLOSED:
                continue
            if st == TcpState.TIME_WAIT and t - since >= self.msl2:
                continue
            counts[STATE_NAMES[st]] += 1
        return counts
