"""This host's TCP sockets as the kernel sees them (``/proc/net/tcp`` and ``tcp6``, what ``ss``
reads), shown in tcpview's terms: connections with a client and a server endpoint.

No privileges are needed. A kernel socket is ONE endpoint; tcpview shows connections, so the
table is paired up:

- Both ends on this host (e.g. 127.0.0.1 to 127.0.0.1): the two sockets become one
  connection and both states are the kernel's. When one of them is gone (a TIME_WAIT
  client whose server has closed) the missing end is ``CLOSED``: a local peer with no
  socket is closed, as far as the kernel is concerned.
- The peer is on another host: its state cannot be known here and is shown as
  :data:`UNKNOWN`.
- A listening socket is a connection with only a server end; the client is ``*:0`` in
  state :data:`NONE`.

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

:func:`compare` puts the kernel's states beside the states a live capture inferred, for each
connection whose endpoints are on this host, and flags the ones that disagree.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ..engine.model import STATE_NAMES, Connection, Endpoint, Summary, TcpState

UNKNOWN = "UNKNOWN"
"""State shown for an endpoint on another host: the kernel here cannot see it."""
NONE = "NONE"
"""State shown for the missing client of a listening socket."""

# include/net/tcp_states.h -> TcpState
KERNEL_STATES: dict[int, TcpState] = {
    1: TcpState.ESTABLISHED,
    2: TcpState.SYN_SENT,
    3: TcpState.SYN_RECEIVED,
    4: TcpState.FIN_WAIT_1,
    5: TcpState.FIN_WAIT_2,
    6: TcpState.TIME_WAIT,
    7: TcpState.CLOSED,
    8: TcpState.CLOSE_WAIT,
    9: TcpState.LAST_ACK,
    10: TcpState.LISTEN,
    11: TcpState.CLOSING,
    12: TcpState.SYN_RECEIVED,  # TCP_NEW_SYN_RECV: a request socket; ss shows SYN-RECV
}

SS_NAMES: dict[str, TcpState] = {
    "ESTAB": TcpState.ESTABLISHED,
    "SYN-SENT": TcpState.SYN_SENT,
    "SYN-RECV": TcpState.SYN_RECEIVED,
    "FIN-WAIT-1": TcpState.FIN_WAIT_1,
    "FIN-WAIT-2": TcpState.FIN_WAIT_2,
    "TIME-WAIT": TcpState.TIME_WAIT,
    "UNCONN": TcpState.CLOSED,
    "CLOSE": TcpState.CLOSED,
    "CLOSE-WAIT": TcpState.CLOSE_WAIT,
    "LAST-ACK": TcpState.LAST_ACK,
    "LISTEN": TcpState.LISTEN,
    "CLOSING": TcpState.CLOSING,
}
"""``ss`` state names -> TcpState (for reading ``ss -tan`` output, e.g. in tests)."""

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")

Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class KernelSocket:
    """One line of /proc/net/tcp{,6}: one endpoint held by this host's kernel."""

    family: int
    """4 or 6 (the socket's family; an IPv6 socket may talk IPv4 through mapped addresses)."""
    local: Addr
    remote: Addr
    state: int
    """TcpState value."""
    tx_queue: int = 0
    rx_queue: int = 0
    uid: int = 0
    inode: int = 0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]


def _hex_ip4(h: str) -> str:
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(h, 16)))


def _hex_ip6(h: str) -> str:
    # four 32-bit words, each printed in host (little-endian) byte order
    raw = b"".join(struct.pack("<I", int(h[i : i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def norm_ip(ip: str) -> str:
    """An address in the form used to pair sockets: IPv4-mapped IPv6 becomes plain IPv4."""
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


def parse_proc_tcp(text: str, family: int) -> list[KernelSocket]:
    """Parse the text of /proc/net/tcp (``family`` 4) or /proc/net/tcp6 (6)."""
    conv = _hex_ip4 if family == 4 else _hex_ip6
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            lip, lport = f[1].split(":")
            rip, rport = f[2].split(":")
            st = int(f[3], 16)
            txq, rxq = (int(x, 16) for x in f[4].split(":"))
            sock = KernelSocket(
                family, (conv(lip), int(lport, 16)), (conv(rip), int(rport, 16)),
                int(KERNEL_STATES.get(st, TcpState.CLOSED)), txq, rxq, int(f[7]), int(f[9]),
            )
        except (ValueError, OSError, struct.error):
            continue  # a line we do not understand is skipped, never fatal
        out.append(sock)
    return out


def read_sockets(files: Iterable[str] = PROC_FILES) -> list[KernelSocket]:
    """Every TCP socket of this network namespace (missing files, e.g. no IPv6, are skipped)."""
    out: list[KernelSocket] = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        out.extend(parse_proc_tcp(text, 6 if path.endswith("6") else 4))
    return out


def local_addresses() -> frozenset[str]:
    """The addresses of this host (IPv4 from /proc/net/fib_trie, IPv6 from if_inet6)."""
    addrs = {"127.0.0.1", "::1"}
    try:
        with open("/proc/net/fib_trie") as f:
            prev = ""
            for line in f:
                s = line.strip()
                if s.startswith("/32 host LOCAL") and prev.startswith("|-- "):
                    addrs.add(prev[4:])
                prev = s
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                h = line.split()[0] if line.strip() else ""
                if len(h) == 32:
                    addrs.add(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(h)))
    except OSError:
        pass
    return frozenset(addrs)


def is_local(ip: str, local: frozenset[str]) -> bool:
    """True if ``ip`` belongs to this host (any 127/8 address is local on Linux)."""
    ip = norm_ip(ip)
    if ip in local:
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def ephemeral_range() -> tuple[int, int]:
    """``net.ipv4.ip_local_port_range`` (Linux default 32768-60999)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


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

    def state_text(self, side: int) -> str:
        """The state of side 0 (client) or 1 (server) as text: a state name, UNKNOWN or NONE."""
        if self.listening and side == 0:
            return NONE
        st = self.client_state if side == 0 else self.server_state
        return UNKNOWN if st is None else STATE_NAMES[st]


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
    def _index(self) -> tuple[dict[tuple[Addr, Addr], KernelSocket], set[Addr], set[int]]:
        """(local, remote) -> socket for connected sockets; listening (ip, port); wildcard ports."""
        by_pair: dict[tuple[Addr, Addr], KernelSocket] = {}
        listen: set[Addr] = set()
        listen_any: set[int] = set()
        for s in self.sockets:
            if s.state == TcpState.LISTEN:
                ip = norm_ip(s.local[0])
                if ip in ("0.0.0.0", "::"):
                    listen_any.add(s.local[1])
                listen.add((ip, s.local[1]))
                continue
            k = ((norm_ip(s.local[0]), s.local[1]), (norm_ip(s.remote[0]), s.remote[1]))
            # a 4-tuple can appear twice only briefly (a new socket reusing a TIME_WAIT
            # tuple); keep the live one
            old = by_pair.get(k)
            if old is None or old.state == TcpState.TIME_WAIT:
                by_pair[k] = s
        return by_pair, listen, listen_any

    def lookup(self, local: Addr, remote: Addr) -> KernelSocket | None:
        """The socket with this local and remote endpoint (addresses compared normalized)."""
        by_pair, _l, _a = self._index
        return by_pair.get(((norm_ip(local[0]), local[1]), (norm_ip(remote[0]), remote[1])))

    def connections(self) -> list[KernelConn]:
        """The table paired into connections (see the module docstring), sorted by server
        then client."""
        by_pair, listen, listen_any = self._index
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
                c = KernelConn(key, s.family, s.local, s.remote, s.state, peer_state)
            else:
                key = (ra, la)
                c = KernelConn(key, s.family, s.remote, s.local, peer_state, s.state)
            out[key] = c
        for s in self.sockets:
            if s.state == TcpState.LISTEN:
                key = (("*", 0), (norm_ip(s.local[0]), s.local[1]))
                out.setdefault(key, KernelConn(key, s.family, ("*", 0), s.local, None, s.state, listening=True))
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
    """Read the kernel's TCP table now."""
    return KernelSnapshot(time.time(), read_sockets(files), local_addresses(), ephemeral_range())


def parse_ss(text: str) -> list[tuple[int, Addr, Addr]]:
    """Parse ``ss -tan state all`` output into ``(TcpState value, local, peer)`` rows."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or f[0] not in SS_NAMES:
            continue
        rows.append((int(SS_NAMES[f[0]]), _ss_addr(f[3]), _ss_addr(f[4])))
    return rows


def _ss_addr(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if "%" in host:
        host = host.split("%", 1)[0]
    return host, (0 if port == "*" else int(port))


# -- beside a live capture -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Comparison:
    """The kernel's view of one captured connection."""

    conn: int
    sniffed: tuple[int, int]
    """(client, server) TcpState values the tracker inferred."""
    kernel: tuple[int | None, int | None]
    """(client, server) kernel states; None for an endpoint that is not on this host."""
    disagree: bool
    """True if an endpoint on this host has a kernel state different from the inferred one."""


def kernel_state(snap: KernelSnapshot, local: Addr, remote: Addr, sniffed: int | None = None) -> int | None:
    """The kernel's state of the endpoint ``local`` talking to ``remote``.

    None if ``local`` is not an address of this host. A local endpoint without a socket is
    CLOSED, except that a server the capture shows in LISTEN (a SYN seen, no SYN+ACK yet) is
    LISTEN if the kernel has a listening socket on that port.
    """
    if not is_local(local[0], snap.local):
        return None
    by_pair, listen, listen_any = snap._index
    s = by_pair.get(((norm_ip(local[0]), local[1]), (norm_ip(remote[0]), remote[1])))
    if s is not None:
        return s.state
    if sniffed == TcpState.LISTEN and ((norm_ip(local[0]), local[1]) in listen or local[1] in listen_any):
        return int(TcpState.LISTEN)
    return int(TcpState.CLOSED)


def compare(tl, snap: KernelSnapshot, t: float | None = None) -> dict[int, Comparison]:  # type: ignore[no-untyped-def]
    """For each connection of a timeline, the kernel's states beside the sniffed ones.

    Args:
        tl: a :class:`tcpview.engine.store.Timeline` (normally from a live capture on this host).
        snap: a kernel snapshot taken at about the same time.
        t: the cursor time of the sniffed states (None: now).

    Returns:
        conn id -> :class:`Comparison`, for every connection that exists at ``t``.
    """
    from ..engine.decode import ip_text

    out: dict[int, Comparison] = {}
    for cid in range(tl.conn_count_at(t)):
        c = tl.conns[cid]
        ca = (ip_text(c.family, c.cip), c.cport)
        sa = (ip_text(c.family, c.sip), c.sport)
        sniffed = c.states_at(t)
        ks = (kernel_state(snap, ca, sa, sniffed[0]), kernel_state(snap, sa, ca, sniffed[1]))
        disagree = any(k is not None and k != s for k, s in zip(ks, sniffed, strict=True))
        out[cid] = Comparison(cid, sniffed, ks, disagree)
    return out


# -- refreshed every second --------------------------------------------------------------------
class KernelTable:
    """The kernel table refreshed on demand, with the counters' history for sparklines.

    Connection ids stay the same for as long as a connection is in the table, so a view can
    keep its selection across refreshes; ``first_seen`` says since when (this session) each
    connection has been there, so an old CLOSE_WAIT stands out.

    For the counters bar it answers the same questions as a Timeline (``first_ts``,
    ``last_ts``, ``version``, :meth:`counters_at`), from the history of refreshes.

    Threads: :meth:`refresh` may run on a worker thread while the UI thread reads; it builds
    new lists and swaps them in, and the history is guarded by a lock.

    Args:
        history: how many refreshes of counter history to keep (an hour at one a second).
        files: the /proc files to read (tests may point elsewhere).
    """

    name = "sockets"
    live = True

    def __init__(self, history: int = 3600, files: Iterable[str] = PROC_FILES) -> None:
        self.files = tuple(files)
        self.max_history = history
        self._lock = threading.Lock()
        self._hist_ts: list[float] = []
        self._hist: list[dict[str, int]] = []
        self.ids: dict[tuple[Addr, Addr], int] = {}
        self.first_seen: dict[tuple[Addr, Addr], float] = {}
        self._next_id = 0
        self.snap: KernelSnapshot | None = None
        self.conns: list[tuple[int, KernelConn]] = []
        self.version = 0
        self.interval = 1.0

    def refresh(self) -> KernelSnapshot:
        """Read the table now; update the connections (with stable ids) and the history."""
        snap = snapshot(self.files)
        rows = []
        ids, seen = self.ids, self.first_seen
        for c in snap.connections():
            cid = ids.get(c.key)
            if cid is None:
                cid = ids[c.key] = self._next_id
                self._next_id += 1
                seen[c.key] = snap.ts
            rows.append((cid, c))
        if len(ids) > 2 * len(rows) + 1024:
            # forget connections that have gone (a key coming back later gets a new id)
            live = {c.key for _i, c in rows}
            self.ids = {k: v for k, v in ids.items() if k in live}
            self.first_seen = {k: v for k, v in seen.items() if k in live}
        counts = snap.counters()
        with self._lock:
            self._hist_ts.append(snap.ts)
            self._hist.append(counts)
            if len(self._hist) > self.max_history:
                del self._hist_ts[0], self._hist[0]
        self.snap = snap
        self.conns = rows
        self.version += 1
        return snap

    # -- the Timeline-like questions the counters bar asks -----------------------------------
    @property
    def first_ts(self) -> float | None:
        with self._lock:
            return self._hist_ts[0] if self._hist_ts else None

    @property
    def last_ts(self) -> float | None:
        with self._lock:
            return self._hist_ts[-1] if self._hist_ts else None

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Sockets per state at the last refresh at or before ``t`` (now when None)."""
        with self._lock:
            if not self._hist:
                return {STATE_NAMES[i]: 0 for i in range(1, len(TcpState))}
            if t is None:
                return dict(self._hist[-1])
            k = bisect.bisect_right(self._hist_ts, t) - 1
            return dict(self._hist[max(k, 0)])

    def series(self, state: str, n: int | None = None) -> list[int]:
        """The count of ``state`` at each refresh (the last ``n``)."""
        with self._lock:
            vals = [counts.get(state, 0) for counts in self._hist]
        return vals[-n:] if n else vals

    def status(self) -> dict[str, int]:
        """Figures for a status line: sockets and connections in the table."""
        if self.snap is None:
            return {}
        return {"sockets": len(self.snap.sockets), "connections": len(self.conns)}
