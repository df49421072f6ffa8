"""Choosing and describing network interfaces for live capture."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from .ring import LiveError


# -- choosing and describing interfaces ------------------------------------------------------
def default_interface(route_file: str = "/proc/net/route") -> str:
    """The interface holding the IPv4 default route (``lo`` when there is none)."""
    try:
        with open(route_file) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return "lo"
    best: tuple[int, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 8:
            continue
        iface, dest, flags, metric, mask = parts[0], parts[1], parts[3], parts[6], parts[7]
        try:
            up = int(flags, 16) & 0x1  # RTF_UP
            if dest == "00000000" and mask == "00000000" and up:
                m = int(metric)
                if best is None or m < best[0]:
                    best = (m, iface)
        except ValueError:
            continue
    return best[1] if best else "lo"


def interface_type(name: str) -> int | None:
    """The ARPHRD type of interface ``name`` (None if it does not exist or is unreadable)."""
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class InterfaceInfo:
    """One network interface as a capture chooser lists it.

    Attributes:
        name: the interface name (what ``-i`` takes).
        index: the kernel's interface index.
        state: ``up``, ``down`` (administratively) or ``no carrier`` (up, link down).
        addresses: IPv4 then IPv6 addresses with their prefix length (``127.0.0.1/8``).
    """

    name: str
    index: int
    state: str
    addresses: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        """The interface is up with a link (packets can flow)."""
        return self.state == "up"


def _state_of(flags: set[str] | frozenset[str]) -> str:
    if "UP" not in flags:
        return "down"
    return "up" if "LOWER_UP" in flags else "no carrier"


def parse_ip_addr_json(text: str) -> list[InterfaceInfo]:
    """Interfaces from the output of ``ip -j addr`` (iproute2's JSON)."""
    import json

    out = []
    for item in json.loads(text):
        if not isinstance(item, dict) or "ifname" not in item:
            continue
        v4: list[str] = []
        v6: list[str] = []
        for a in item.get("addr_info") or ():
            local, family = a.get("local"), a.get("family")
            if not local or family not in ("inet", "inet6"):
                continue
            (v4 if family == "inet" else v6).append(f"{local}/{a.get('prefixlen', 0)}")
        out.append(InterfaceInfo(str(item["ifname"]), int(item.get("ifindex", 0)),
                                 _state_of(set(item.get("flags") or ())), tuple(v4 + v6)))
    return sorted(out, key=lambda i: i.index)


SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
IFF_UP = 0x1


def interfaces_from_kernel(proc_inet6: str = "/proc/net/if_inet6") -> list[InterfaceInfo]:
    """Interfaces without ``ip``: names from ``if_nameindex``, state from /sys/class/net,
    the IPv4 address from the ``SIOCGIFADDR`` ioctl (the primary one only) and IPv6
    addresses from /proc/net/if_inet6. Needs no privileges."""
    import fcntl
    import ipaddress

    v6: dict[str, list[str]] = {}
    try:
        with open(proc_inet6) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 6:
                    addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
                    v6.setdefault(parts[5], []).append(f"{addr}/{int(parts[2], 16)}")
    except (OSError, ValueError):
        pass
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for index, name in socket.if_nameindex():
            addrs = []
            req = struct.pack("16s16x", name.encode()[:15])
            try:
                ip = socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
                mask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, req)[20:24]
                addrs.append(f"{ip}/{int.from_bytes(mask, 'big').bit_count()}")
            except OSError:
                pass  # no IPv4 address
            flags = set()
            try:
                with open(f"/sys/class/net/{name}/flags") as f:
                    if int(f.read().strip(), 16) & IFF_UP:
                        flags.add("UP")
                with open(f"/sys/class/net/{name}/carrier") as f:
                    if f.read().strip() == "1":
                        flags.add("LOWER_UP")
            except (OSError, ValueError):
                pass  # carrier is unreadable while the interface is down
            out.append(InterfaceInfo(name, index, _state_of(flags), tuple(addrs + sorted(v6.get(name, ())))))
    return out


def list_interfaces() -> list[InterfaceInfo]:
    """This host's interfaces with their addresses and state, in index order.

    Reads ``ip -j addr`` when iproute2 is installed (every address), else asks the kernel
    directly (:func:`interfaces_from_kernel`). Neither needs privileges.
    """
    import shutil
    import subprocess

    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if ip:
        try:
            done = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=3, check=False)
            if done.returncode == 0 and done.stdout.strip():
                return parse_ip_addr_json(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError, TypeError):
            pass  # an old ip without -j, or odd output: ask the kernel instead
    try:
        return interfaces_from_kernel()
    except OSError:
        return []


def check_interface(name: str) -> int:
    """Return the ifindex of ``name`` or raise LiveError naming the interfaces there are."""
    if not name or "/" in name or name in (".", ".."):
        raise LiveError(f"no such interface: {name!r}")
    try:
        return socket.if_nametoindex(name)
    except OSError:
        try:
            names = sorted(n for _i, n in socket.if_nameindex())
        except OSError:
            names = []
        hint = f" (interfaces: {', '.join(names + ['any'])})" if names else ""
        raise LiveError(f"no such interface: {name!r}{hint}") from None
