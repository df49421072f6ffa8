"""TCP segments, sequence-number arithmetic and the constants shared by the simulated endpoints."""

from __future__ import annotations

from typing import Any, Protocol

from ..engine.core.tcp import FIN, HALF, SYN, M
from .loop import SECOND

RTO_INITIAL = SECOND
RTO_MAX = 120 * SECOND
PERSIST_MAX = 60 * SECOND
DATA_RETRIES = 15


def lt(a: int, b: int) -> bool:
    """a < b in 32-bit sequence space."""
    return a != b and ((a - b) & M) >= HALF


def le(a: int, b: int) -> bool:
    """a <= b in 32-bit sequence space."""
    return a == b or ((a - b) & M) >= HALF


def sdiff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space."""
    d = (a - b) & M
    return d - (1 << 32) if d >= HALF else d


class Conn(Protocol):
    """The simulator's record of the connection a segment belongs to, as the wire and the
    endpoints use it (:class:`tcpview.sim.engine.SimConn` is the one kind there is)."""

    id: int
    cip: str
    cport: int
    inflight: int
    """Segments on the wire, not yet delivered."""
    tx: list[int]
    """Segments sent so far, per direction (0: from the client side)."""
    lose: list[set[int]]
    """Per direction, the numbers (counted as in ``tx``) of the segments to lose."""

    def attach(self, tcb: Any) -> None:
        """Make ``tcb`` (a :class:`tcpview.sim.tcb.Tcb`) one of the connection's endpoints."""

    def changed(self) -> None:
        """Something happened to the connection: scripts waiting on it look again."""


class Seg:
    """One segment on the simulated wire (what a frame carries, plus what the simulator knows).

    ``kind`` says why it was sent when that is interesting: ``"rto"`` (retransmission after a
    timeout), ``"fast"`` (fast retransmit), ``"probe"`` (zero-window probe), ``"keepalive"``,
    ``"window_update"``. ``conn`` is the simulator's connection it belongs to.
    """

    __slots__ = ("src", "sport", "dst", "dport", "seq", "ack", "flags", "win", "opts", "payload",
                 "kind", "conn", "ttl")

    def __init__(self, src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int,
                 win: int, opts: list, payload: bytes, kind: str, conn: Conn | None, ttl: int = 64) -> None:
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.seq, self.ack, self.flags, self.win = seq & M, ack & M, flags, win
        self.opts, self.payload, self.kind, self.conn, self.ttl = opts, payload, kind, conn, ttl

    @property
    def seg_len(self) -> int:
        """Sequence space used: payload, plus one each for SYN and FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


def _opts_dict(opts: list) -> dict:
    out = {}
    for o in opts:
        if isinstance(o, tuple) and len(o) == 2:
            out[o[0]] = o[1]
    return out
