"""The kernel's TCP table at one moment, paired into connections with a client and a server.

A kernel socket is ONE endpoint (:mod:`tcpview.kernel.procnet`); tcpview shows connections,
so the table is paired up:

- Both ends on this host (e.g. 127.0.0.1 to 127.0.0.1): the two sockets become one
  connection and both states are the kernel's. When one of them is gone (a TIME_WAIT
  client whose server has closed) the missing end is ``CLOSED``: a local peer with no
  socket is closed, as far as the kernel is concerned.
- The peer is on another host: its state cannot be known here and is shown as
  :data:`UNKNOWN`.
- A listening socket is a connection with only a server end; the client is ``*:0`` in
  state :data:`NONE` (the table and the JSON both say so).

Which end is the client and which the server (the kernel does not say):

1. a socket whose local port is the port of a listening socket on the same address (or a
   wildcard address) is the server end (it was accepted there);
2. otherwise, a socket whose peer is a listening socket of this host is the client end;
3. otherwise (the listener has gone, or the peer is remote) the end whose port is in the
   ephemeral range (``net.ipv4.ip_local_port_range``) is the client; if both or neither are,
   the higher port is the client (the rule the tracker uses for connections picked up
   mid-stream).

Counters count SOCKETS per state, exactly as ``ss -tan state all`` lists them (LISTEN
included, ``NEW_SYN_RECV`` request sockets as SYN_RECEIVED, CLOSED left out).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..engine.core.model import Connection, Endpoint, Summary
from ..engine.core.tcp import STATE_NAMES, TcpState
from ..textutil import endpoint
from .procnet import (
    PROC_FILES,
    Addr,
    KernelSocket,
    ephemeral_range,
    is_local,
    local_addresses,
    norm_addr,
    norm_ip,
    read_sockets,
)
from .sockdiag import listen_backlogs

UNKNOWN = "UNKNOWN"
"""State shown for an endpoint on another host: the kernel here cannot see it."""
NONE = "NONE"
"""State shown for the missing client of a listening socket."""


@dataclass
class KernelConn:
    """A connection made of one or two kernel sockets (or a listener)."""

    key: tuple[Addr, Addr]
    """(client, server) with normalized addresses: stable across snapshots."""
    family: int
    client: Addr
    server: Addr
    client_state: int | None
    """TcpState value; None when the client is on another host (state unknown here)."""
    server_state: int | None
    listening: bool = False
    client_socket: KernelSocket | None = None
    """The client end's socket when it is on this host (its queues, timer, inode...)."""
    server_socket: KernelSocket | None = None
    """The server end's socket when it is on this host."""

    def socket(self, side: int) -> KernelSocket | None:
        """The socket of side 0 (client) or 1 (server), None when that end has none here."""
        return self.client_socket if side == 0 else self.server_socket

    def state_text(self, side: int) -> str:
        """The state of side 0 (client) or 1 (server) as text: a state name, UNKNOWN or NONE."""
        if self.listening and side == 0:
            return NONE
        st = self.client_state if side == 0 else self.server_state
        return UNKNOWN if st is None else STATE_NAMES[st]

    def sockets_here(self) -> list[KernelSocket]:
        """The sockets of this connection on this host, client's first."""
        return [s for s in (self.client_socket, self.server_socket) if s is not None]

    def queue(self, recv: bool) -> int:
        """The largest Recv-Q (``recv``) or Send-Q of its sockets here (for sorting)."""
        return max(((s.rx_queue if recv else s.send_q) or 0 for s in self.sockets_here()), default=0)

    def queue_text(self, recv: bool) -> str:
        """Recv-Q (``recv``) or Send-Q as ``ss`` shows it: the one socket's here, or
        ``CLIENT/SERVER`` when both ends are this host's (``?``: a backlog not known)."""
        values = (s.rx_queue if recv else s.send_q for s in self.sockets_here())
        return "/".join("?" if v is None else str(v) for v in values)

    def timer_left(self) -> float | None:
        """Seconds until the soonest timer of its sockets here fires (None: no timer)."""
        return min((s.timer_left for s in self.sockets_here() if s.timer), default=None)

    def timer_text(self) -> str:
        """The sockets' pending timers as ``ss -o`` shows them (``keepalive 119min``); with both
        ends here ``CLIENT/SERVER``, ``-`` for an end without one; empty when none has one."""
        socks = self.sockets_here()
        if not any(s.timer for s in socks):
            return ""
        return "/".join(s.timer_text() or "-" for s in socks)

    def client_text(self) -> str:
        """The client endpoint as text, IPv4-mapped addresses as plain IPv4 (``*:*`` for a
        listener's missing client)."""
        return endpoint(norm_ip(self.client[0]), self.client[1])

    def server_text(self) -> str:
        """The server endpoint as text, IPv4-mapped addresses as plain IPv4."""
        return endpoint(norm_ip(self.server[0]), self.server[1])


SocketIndex = tuple[dict[tuple[Addr, Addr], KernelSocket], set[Addr], set[int]]
"""(local, remote) -> socket for connected sockets; listening (ip, port); wildcard listening
ports. Addresses normalized (:func:`~tcpview.kernel.procnet.norm_addr`)."""


@dataclass
class KernelSnapshot:
    """The kernel's TCP socket table at one moment."""

    ts: float
    sockets: list[KernelSocket]
    local: frozenset[str] = field(default_factory=frozenset)
    ephemeral: tuple[int, int] = (32768, 60999)

    def counters(self) -> dict[str, int]:
        """Sockets per state, CLOSED left out, keyed like :meth:`Timeline.counters_at`."""
        counts = [0] * len(TcpState)
        for s in self.sockets:
            counts[s.state] += 1
        return {STATE_NAMES[i]: counts[i] for i in range(1, len(TcpState))}

    @cached_property
    def index(self) -> SocketIndex:
        """The sockets indexed for pairing and look-ups (see :data:`SocketIndex`)."""
        by_pair: dict[tuple[Addr, Addr], KernelSocket] = {}
        listen: set[Addr] = set()
        listen_any: set[int] = set()
        for s in self.sockets:
            if s.state == TcpState.LISTEN:
                a = norm_addr(s.local)
                if a[0] in ("0.0.0.0", "::"):
                    listen_any.add(a[1])
                listen.add(a)
                continue
            k = (norm_addr(s.local), norm_addr(s.remote))
            # a 4-tuple can appear twice only briefly (a new socket reusing a TIME_WAIT
            # tuple); keep the live one
            old = by_pair.get(k)
            if old is None or old.state == TcpState.TIME_WAIT:
                by_pair[k] = s
        return by_pair, listen, listen_any

    def connections(self) -> list[KernelConn]:
        """The table paired into connections (see the module docstring), sorted by server
        then client."""
        by_pair, listen, listen_any = self.index
        lo, hi = self.ephemeral

        def listening(a: Addr) -> bool:
            return a in listen or a[1] in listen_any

        def client_first(a: Addr, b: Addr) -> bool:
            """True when ``a`` (a socket's local end) is the client facing ``b``."""
            if listening(a):
                return False
            if is_local(b[0], self.local) and listening(b):
                return True
            ea, eb = lo <= a[1] <= hi, lo <= b[1] <= hi
            if ea != eb:
                return ea
            return a[1] >= b[1]

        out: dict[tuple[Addr, Addr], KernelConn] = {}
        for (la, ra), s in by_pair.items():
            if (la, ra) in out or (ra, la) in out:
                continue
            peer = by_pair.get((ra, la))
            peer_local = peer is not None or is_local(ra[0], self.local)
            peer_state = peer.state if peer is not None else (int(TcpState.CLOSED) if peer_local else None)
            if client_first(la, ra):
                key = (la, ra)
                c = KernelConn(key, s.family, s.local, s.remote, s.state, peer_state,
                               client_socket=s, server_socket=peer)
            else:
                key = (ra, la)
                c = KernelConn(key, s.family, s.remote, s.local, peer_state, s.state,
                               client_socket=peer, server_socket=s)
            out[key] = c
        for s in self.sockets:
            if s.state == TcpState.LISTEN:
                key = (("*", 0), norm_addr(s.local))
                out.setdefault(key, KernelConn(key, s.family, ("*", 0), s.local, None, s.state, listening=True,
                                               server_socket=s))
        return sorted(out.values(), key=_conn_order)

    def summary(self, source: str = "kernel") -> Summary:
        """The snapshot in the shape of ``tcpview summary`` (ids in table order)."""
        conns = []
        for i, c in enumerate(self.connections()):
            notes = ["listening"] if c.listening else []
            if (c.client_state is None and not c.listening) or c.server_state is None:
                notes.append("peer on another host")
            conns.append(Connection(
                id=i,
                client=Endpoint(ip=c.client[0], port=c.client[1], state=c.state_text(0)),
                server=Endpoint(ip=c.server[0], port=c.server[1], state=c.state_text(1)),
                first_ts=self.ts, last_ts=self.ts, packets=0, bytes=0, partial=False, notes=notes,
            ))
        return Summary(source=source, packets=0, tcp_packets=0, skipped={}, first_ts=self.ts,
                       last_ts=self.ts, counters=self.counters(), connections=conns)


def _ip_order(ip: str) -> tuple[int, bytes]:
    try:
        a = ipaddress.ip_address(norm_ip(ip))
        return a.version, a.packed
    except ValueError:
        return 0, b""


def _conn_order(c: KernelConn) -> tuple:
    return (_ip_order(c.server[0]), c.server[1], not c.listening, _ip_order(c.client[0]), c.client[1])


def snapshot(files: Iterable[str] = PROC_FILES) -> KernelSnapshot:
    """Read the kernel's TCP table now (from the real tables: with the listeners' backlogs)."""
    files = tuple(files)
    sockets = read_sockets(files)
    if files == PROC_FILES and any(s.state == TcpState.LISTEN for s in sockets):
        backlogs = listen_backlogs()
        sockets = [replace(s, backlog=backlogs.get(s.inode)) if s.state == TcpState.LISTEN else s for s in sockets]
    return KernelSnapshot(time.time(), sockets, local_addresses(), ephemeral_range())
