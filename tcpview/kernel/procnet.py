"""One socket of this host (:class:`KernelSocket`), read from sock_diag
(:func:`from_dump`, :mod:`tcpview.kernel.sockdiag`) or, where netlink cannot be asked, from
``/proc/net/tcp`` and ``tcp6`` (:func:`read_sockets`).

A socket is ONE endpoint held by this host's kernel; pairing them into connections is
:mod:`tcpview.kernel.snapshot`'s job. Also here: the other facts about this host that pairing
needs, read from ``/proc``: its own addresses (:func:`local_addresses`, :func:`is_local`) and
the ephemeral port range.

No privileges are needed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..engine.core.tcp import STATE_NAMES, TcpState
from .owners import Owner, Process, user_name
from .sockdiag import RawSocket, address
from .tcpinfo import TcpInfo

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

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")

Addr = tuple[str, int]

TIMER_NAMES = ("off", "on", "keepalive", "timewait", "persist")
"""The ``tr`` field's timer kinds, named as ``ss -o`` names them (include/net/inet_connection_sock.h:
1 retransmission, loss probe or reordering timer; 2 keepalive (``sk_timer``); 3 a TIME_WAIT
socket's; 4 zero window probe)."""


def _user_hz() -> int:
    """Clock ticks per second of /proc's times (USER_HZ; ss reads it the same way)."""
    try:
        return int(os.sysconf("SC_CLK_TCK")) or 100
    except (ValueError, OSError):
        return 100


USER_HZ = _user_hz()


@dataclass(frozen=True, slots=True)
class KernelSocket:
    """One endpoint held by this host's kernel: a sock_diag message, or a line of
    /proc/net/tcp{,6}."""

    family: int
    """4 or 6 (the socket's family; an IPv6 socket may talk IPv4 through mapped addresses)."""
    local: Addr
    remote: Addr
    state: int
    """TcpState value."""
    tx_queue: int = 0
    """Bytes sent and not yet acknowledged (0 for a listener: see :attr:`send_q`)."""
    rx_queue: int = 0
    """Recv-Q: bytes received and not yet read by the application; for a listener the
    connections waiting in its accept queue."""
    uid: int = 0
    inode: int = 0
    """0 for sockets no process holds (TIME_WAIT, a request socket of a half-open connection)."""
    timer: int = 0
    """The pending timer, an index in :data:`TIMER_NAMES` (0: none)."""
    timer_left: float = 0.0
    """Seconds until that timer fires."""
    retransmits: int = 0
    """Unrecovered retransmissions (the ``retrnsmt`` field)."""
    probes: int = 0
    """Probes sent: zero window or keepalive probes, the ``timeout`` field."""
    refcnt: int | None = None
    """References to the socket (only /proc gives it)."""
    rto: float | None = None
    """The retransmission timeout in seconds (None where /proc does not give it)."""
    ato: float | None = None
    """The delayed-ACK timeout in seconds."""
    cwnd: int | None = None
    """The congestion window in segments."""
    ssthresh: int | None = None
    """The slow-start threshold in segments (None while still in the first slow start)."""
    backlog: int | None = None
    """A listener's backlog, which /proc does not give (None: not known, or not a listener)."""
    info: TcpInfo | None = None
    """The socket's tcp_info (sock_diag gives it for full sockets, not for TIME_WAIT or request
    sockets; None when read from /proc)."""
    owners: tuple[Owner, ...] = ()
    """The processes holding it (:func:`tcpview.kernel.owners.socket_owners`)."""

    @property
    def process(self) -> Process | None:
        """Who holds it: the first of its owners (lowest pid), with the socket's user; pid and
        command None when no process could be seen holding it; None for a socket no process
        holds (no inode: TIME_WAIT, a half-open connection's request socket)."""
        if not self.inode:
            return None
        user = user_name(self.uid)
        if not self.owners:
            return Process(None, None, user)
        o = self.owners[0]
        return Process(o.pid, o.command, user)

    @property
    def send_q(self) -> int | None:
        """Send-Q as ``ss`` shows it: bytes not yet acknowledged; a listener's backlog (None
        when it is not known)."""
        return self.backlog if self.state == TcpState.LISTEN else self.tx_queue

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def timer_name(self) -> str:
        """The pending timer as ``ss -o`` names it: on, keepalive, timewait, persist (off: none)."""
        return TIMER_NAMES[self.timer] if 0 <= self.timer < len(TIMER_NAMES) else "unknown"

    def timer_text(self) -> str:
        """The pending timer as ``ss -o`` shows it, without its parentheses: ``keepalive 119min``,
        ``on 200ms``, ``timewait 58sec`` (empty: no timer)."""
        return f"{self.timer_name} {timer_left_text(self.timer_left)}" if self.timer else ""

    @property
    def timer_count(self) -> int:
        """The count ``ss -o`` shows third in ``timer:(on,200ms,N)``: retransmissions for the
        retransmission timer, probes for the others."""
        return self.retransmits if self.timer == 1 else self.probes


def timer_left_text(seconds: float) -> str:
    """A timer's time left in ``ss -o``'s units: ``119min``, ``1min59sec``, ``58sec``,
    ``1.196sec``, ``196ms`` (ss itself writes 1.196 s as ``1.196ms``; this says ``sec``)."""
    ms = max(0, round(seconds * 1000))
    minutes, rest = divmod(ms, 60_000)
    secs, msecs = divmod(rest, 1000)
    if minutes:
        return f"{minutes}min" if minutes > 9 or not secs else f"{minutes}min{secs}sec"
    if secs:
        return f"{secs}sec" if secs > 9 or not msecs else f"{secs}.{msecs:03d}sec"
    return f"{msecs}ms"


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


def norm_addr(a: Addr) -> Addr:
    """``(ip, port)`` with the ip normalized by :func:`norm_ip`."""
    return norm_ip(a[0]), a[1]


def _clock(ticks: int) -> float:
    """/proc's clock ticks as seconds."""
    return ticks / USER_HZ


def from_dump(r: RawSocket, owners: dict[int, list[Owner]]) -> KernelSocket:
    """A socket of a sock_diag dump (:func:`tcpview.kernel.sockdiag.dump`), with its owners from
    ``owners`` (inode -> processes)."""
    fam, st, timer, count, sport, dport, src, dst, expires, rq, wq, uid, inode, info = r
    listen = st == 10
    rto = ato = cwnd = ssthresh = None
    retransmits = count if timer == 1 else 0
    probes = count if timer in (2, 4) else 0
    if info is not None:
        retransmits, probes, r_us, a_us, cwnd, ssthresh = info.basics()
        if listen:
            cwnd = ssthresh = None
        else:
            rto = r_us / 1e6 if r_us and r_us != 3_000_000 else None
            ato = a_us / 1e6
    left = expires / 1000 if expires < 1 << 31 else 0.0
    return KernelSocket(
        fam, (address(src), sport), (address(dst), dport), int(KERNEL_STATES.get(st, TcpState.CLOSED)),
        0 if listen else wq, rq, uid, inode, timer=timer, timer_left=left if timer else 0.0,
        retransmits=retransmits, probes=probes, rto=rto, ato=ato, cwnd=cwnd, ssthresh=ssthresh,
        backlog=wq if listen else None, info=info,
        owners=tuple(sorted(owners.get(inode, ()), key=lambda o: o.pid)) if inode else (),
    )


def parse_proc_tcp(text: str, family: int) -> list[KernelSocket]:
    """Parse the text of /proc/net/tcp (``family`` 4) or /proc/net/tcp6 (6).

    The fields are those ``tcp4_seq_show`` writes (net/ipv4/tcp_ipv4.c): addresses, state,
    ``tx_queue:rx_queue``, ``tr:tm->when`` (timer and clock ticks left), ``retrnsmt``, uid,
    ``timeout`` (probes), inode, refcount, and for full sockets rto, ato, quick-ack, cwnd and
    ssthresh (TIME_WAIT and request sockets stop after the refcount). As ``ss`` does when it
    reads /proc, an rto of 3 s (the initial one) counts as unknown.
    """
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
            tr, when = f[5].split(":")
            timer, left = int(tr, 16), _clock(max(0, _signed32(int(when, 16))))
            full = len(f) >= 17  # a full socket, with its congestion state
            rto = int(f[12]) if full else None
            sock = KernelSocket(
                family, (conv(lip), int(lport, 16)), (conv(rip), int(rport, 16)),
                int(KERNEL_STATES.get(st, TcpState.CLOSED)), txq, rxq, int(f[7]), int(f[9]),
                timer=timer, timer_left=left if timer else 0.0, retransmits=int(f[6], 16), probes=int(f[8]),
                refcnt=int(f[10]) if len(f) > 10 else 0,
                rto=_clock(rto) if rto is not None and rto != 3 * USER_HZ else None,
                ato=_clock(int(f[13])) if full else None,
                cwnd=int(f[15]) if full else None,
                # a listener's last field is its fast open queue's length, not a threshold
                ssthresh=int(f[16]) if full and int(f[16]) >= 0 and st != 10 else None,
            )
        except (ValueError, OSError, struct.error, IndexError):
            continue  # a line we do not understand is skipped, never fatal
        out.append(sock)
    return out


def _signed32(v: int) -> int:
    """A ``%08lX`` field that holds a negative number (a timer already due) as negative."""
    return v - (1 << 32) if v >= 1 << 31 else v


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
