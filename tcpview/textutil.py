"""Making text from the network safe to show."""

from __future__ import annotations

import re

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Replace control characters (escape sequences included) with visible ``\\xNN`` escapes."""
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
