"""Text the views and the command line share: network text made safe to show, addresses and
endpoints."""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Replace control characters (escape sequences included) with visible ``\\xNN`` escapes."""
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def endpoint(ip: str, port: int | None) -> str:
    """``10.0.0.5:443``, ``[2001:db8::1]:443``; ``*:*`` for a wildcard address (``*``)."""
    if ip == "*":
        return "*:*"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def addr_value(family: int, hi: int, lo: int) -> int | bytes:
    """An address from its two 64-bit halves: an int for IPv4, 16 bytes for IPv6."""
    if family == 4:
        return lo & 0xFFFFFFFF
    return struct.pack("!QQ", hi & 0xFFFFFFFFFFFFFFFF, lo & 0xFFFFFFFFFFFFFFFF)


def addr_text(family: int, hi: int, lo: int) -> str:
    """The text of an address given as two 64-bit halves."""
    return ip_text(family, addr_value(family, hi, lo))


def ip_text(family: int, addr: Any) -> str:
    """Format an address from :func:`decode` (int for IPv4, 16 bytes for IPv6)."""
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("!I", addr))
    return socket.inet_ntop(socket.AF_INET6, bytes(addr))


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 connection``, ``2 connections``, ``0 connections`` (``many``: an irregular plural)."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
