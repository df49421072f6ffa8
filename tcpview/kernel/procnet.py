"""Reading this host's TCP sockets from ``/proc/net/tcp`` and ``tcp6`` (what ``ss`` reads).

One line of those files is ONE endpoint held by this host's kernel (:class:`KernelSocket`);
pairing them into connections is :mod:`tcpview.kernel.snapshot`'s job. Also here: the other
facts about this host that pairing needs, read from ``/proc`` as well: its own addresses
(:func:`local_addresses`, :func:`is_local`) and the ephemeral port range.

No privileges are needed.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..engine.core.tcp import STATE_NAMES, TcpState

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


def norm_addr(a: Addr) -> Addr:
    """``(ip, port)`` with the ip normalized by :func:`norm_ip`."""
    return norm_ip(a[0]), a[1]


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
