"""Text the views and the command line share: network text made safe to show, endpoints."""

from __future__ import annotations

import re

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Replace control characters (escape sequences included) with visible ``\\xNN`` escapes."""
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def endpoint(ip: str, port: int | None) -> str:
    """``10.0.0.5:443``, ``[2001:db8::1]:443``; ``*:*`` for a wildcard address (``*``)."""
    if ip == "*":
        return "*:*"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
