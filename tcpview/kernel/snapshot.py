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

from pydantic import BaseModel, Field

from ..engine.core.model import Connection, Endpoint, Summary
from ..engine.core.tcp import STATE_NAMES, TcpState
from ..textutil import endpoint
from .owners import Process, socket_owners
from .procnet import (
    PROC_FILES,
    Addr,
    KernelSocket,
    ephemeral_range,
    from_dump,
    is_local,
    local_addresses,
    norm_addr,
    norm_ip,
    read_sockets,
)
from .sockdiag import dump

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

    def processes(self) -> list[Process]:
        """The processes holding its sockets here, client's first (sockets no process holds
        left out)."""
        return [p for s in self.sockets_here() if (p := s.process) is not None]

    def process_infos(self) -> list[tuple[int | None, str | None, str]]:
        """Every process holding its sockets here, as the filter's ``proc:``/``pid:``/``user:``
        terms match them (each owner of a shared socket, not only the first)."""
        out: list[tuple[int | None, str | None, str]] = []
        for s in self.sockets_here():
            p = s.process
            if p is None:
                continue
            out += [(o.pid, o.command, p.user) for o in s.owners] or [p.as_tuple()]
        return out

    def process_text(self) -> str:
        """The ``proc`` column: ``nginx 1234``; ``curl 55/nginx 12`` when both ends are here and
        held by different processes; ``? (www-data)`` for a process not known; empty when
        none holds them."""
        texts = list(dict.fromkeys(p.text() for p in self.processes()))
        return "/".join(texts)

    def info(self, side: int | None = None):
        """The tcp_info of side 0 (client) or 1 (server), or (None) of the first of its sockets
        here that has one."""
        socks = self.sockets_here() if side is None else [s for s in (self.socket(side),) if s is not None]
        return next((s.info for s in socks if s.info is not None), None)

    def client_text(self) -> str:
        """The client endpoint as text, IPv4-mapped addresses as plain IPv4 (``*:*`` for a
        listener's missing client)."""
        return endpoint(norm_ip(self.client[0]), self.client[1])

    def server_text(self) -> str:
        """The server endpoint as text, IPv4-mapped addresses as plain IPv4."""
        return endpoint(norm_ip(self.server[0]), self.server[1])


class ProcessModel(BaseModel):
    """The process holding a socket, in ``tcpview sockets --json``."""

    pid: int | None = Field(description="None: not known (another user's process, without privileges)")
    comm: str | None = Field(description="the process's name (/proc/PID/comm)")
    user: str = Field(description="the socket's owner (its uid's name)")


class SocketEndpoint(Endpoint):
    """One end of a connection of the kernel table, with its socket's process and tcp_info."""

    process: ProcessModel | None = Field(None, description="None: no socket here, or no process holds it")
    info: dict[str, int | None] | None = Field(
        None, description="the socket's tcp_info (tcpview.kernel.tcpinfo.JSON_FIELDS: times in µs, rates in "
        "bytes a second); None: no socket here, no tcp_info (TIME_WAIT, a request socket) or read from /proc")


class SocketConnection(Connection):
    """A connection of the kernel table, its ends with their sockets' process and tcp_info."""

    client: SocketEndpoint
    server: SocketEndpoint


class SocketSummary(Summary):
    """``tcpview sockets --once --json``: the kernel table in the shape of ``tcpview summary``."""

    connections: list[SocketConnection]  # type: ignore[assignment]
    table_source: str = Field("sock_diag", description="sock_diag (netlink), or /proc/net/tcp without netlink")
    processes_hidden: int = Field(0, description="processes that could not be looked into (other users', "
                                  "without privileges): their sockets' pid and comm are null")


def _endpoint(ip: str, port: int, state: str, s: KernelSocket | None) -> SocketEndpoint:
    proc = s.process if s is not None else None
    return SocketEndpoint(ip=ip, port=port, state=state,
                          process=ProcessModel(**proc.as_json()) if proc is not None else None,
                          info=s.info.as_json() if s is not None and s.info is not None else None)


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
    source: str = "sock_diag"
    """Where the table was read: ``sock_diag`` (netlink), or ``/proc/net/tcp`` where netlink
    could not be asked (no tcp_info then)."""
    hidden: int = 0
    """Processes whose open files could not be looked into (other users', without
    privileges): the sockets they hold show no process."""

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

    def summary(self, source: str = "kernel") -> SocketSummary:
        """The snapshot in the shape of ``tcpview summary`` (ids in table order), each end
        with its socket's process and tcp_info."""
        conns = []
        for i, c in enumerate(self.connections()):
            notes = ["listening"] if c.listening else []
            if (c.client_state is None and not c.listening) or c.server_state is None:
                notes.append("peer on another host")
            conns.append(SocketConnection(
                id=i,
                client=_endpoint(c.client[0], c.client[1], c.state_text(0), c.client_socket),
                server=_endpoint(c.server[0], c.server[1], c.state_text(1), c.server_socket),
                first_ts=self.ts, last_ts=self.ts, packets=0, bytes=0, partial=False, notes=notes,
            ))
        return SocketSummary(source=source, packets=0, tcp_packets=0, skipped={}, first_ts=self.ts,
                             last_ts=self.ts, counters=self.counters(), connections=conns,
                             table_source=self.source, processes_hidden=self.hidden)


def _ip_order(ip: str) -> tuple[int, bytes]:
    try:
        a = ipaddress.ip_address(norm_ip(ip))
        return a.version, a.packed
    except ValueError:
        return 0, b""


def _conn_order(c: KernelConn) -> tuple:
    return (_ip_order(c.server[0]), c.server[1], not c.listening, _ip_order(c.client[0]), c.client[1])


def snapshot(files: Iterable[str] = PROC_FILES, owners: bool = True) -> KernelSnapshot:
    """Read the kernel's TCP table now: from sock_diag, with each socket's tcp_info, or from
    ``files`` (the /proc tables) where netlink cannot be asked or other files are named.

    Args:
        files: the /proc files to read when netlink is not used (tests may point elsewhere:
            then those files are read, not netlink).
        owners: look for the processes holding the sockets (``ss -p``'s walk through every
            process's open files).
    """
    files = tuple(files)
    raw = None
    source = "/proc/net/tcp"
    if files == PROC_FILES:
        try:
            raw = dump()
            source = "sock_diag"
        except OSError:
            raw = None
    found: dict = {}
    hidden = 0
    if raw is not None:
        if owners:
            found, hidden = socket_owners([r[12] for r in raw if r[12]])
        sockets = [from_dump(r, found) for r in raw]
    else:
        sockets = read_sockets(files)
        if owners:
            found, hidden = socket_owners([s.inode for s in sockets if s.inode])
            sockets = [replace(s, owners=tuple(sorted(found[s.inode], key=lambda o: o.pid)))
                       if s.inode in found else s for s in sockets]
    return KernelSnapshot(time.time(), sockets, local_addresses(), ephemeral_range(), source, hidden)
