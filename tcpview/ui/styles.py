"""App colour variables and the component-class names widgets use for them.

Widgets never name colours: they style component classes (``ladder--syn``,
``conn-table--state-time-wait``) with CSS variables such as ``$tcp-syn`` and
``$state-time-wait``. :func:`theme_variable_defaults` gives those variables values derived
from the current Textual theme (so every built-in theme works); a theme may override any
of them in its ``variables``.
"""

from __future__ import annotations

from ..engine.core.tcp import TcpState

# state name -> family used in class and variable names
STATE_FAMILY: dict[str, str] = {
    "CLOSED": "closed",
    "LISTEN": "syn",
    "SYN_SENT": "syn",
    "SYN_RECEIVED": "syn-received",
    "ESTABLISHED": "established",
    "FIN_WAIT_1": "closing",
    "FIN_WAIT_2": "closing",
    "CLOSING": "closing",
    "LAST_ACK": "closing",
    "CLOSE_WAIT": "close-wait",
    "TIME_WAIT": "time-wait",
}
STATE_FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(STATE_FAMILY.values()))
STATE_FAMILY_BY_VALUE: tuple[str, ...] = tuple(STATE_FAMILY[s.name] for s in TcpState)

SEGMENT_KINDS: tuple[str, ...] = ("syn", "fin", "rst", "data", "ack")

# variable -> (generated theme colour to borrow, fallback)
_DEFAULTS: dict[str, tuple[str, str]] = {
    "tcp-syn": ("text-primary", "#57A5E2"),
    "tcp-fin": ("text-accent", "#FFC473"),
    "tcp-rst": ("text-error", "#D17E92"),
    "tcp-data": ("text-success", "#8AD4A1"),
    "tcp-ack": ("foreground-muted", "#A0A0A0"),
    "tcp-anomaly": ("text-error", "#D17E92"),
    "tcp-loss": ("text-error", "#D17E92"),  # analysis tags: retransmissions, losses, duplicate ACKs
    "tcp-window": ("text-warning", "#FFC473"),  # zero windows, probes, full windows, updates
    "tcp-note": ("text-secondary", "#5684A5"),  # keep-alives, reused ports
    "state-closed": ("foreground-muted", "#A0A0A0"),
    "state-syn": ("text-primary", "#57A5E2"),
    "state-syn-received": ("text-primary", "#57A5E2"),
    "state-established": ("text-success", "#8AD4A1"),
    "state-closing": ("text-secondary", "#5684A5"),
    "state-close-wait": ("text-error", "#D17E92"),
    "state-time-wait": ("text-warning", "#FFC473"),
    "spark-future": ("foreground-muted", "#707070"),
}


def segment_kind(flags: int, length: int) -> str:
    """``syn``, ``fin``, ``rst``, ``data`` or ``ack``: how a segment is coloured."""
    if flags & 0x04:
        return "rst"
    if flags & 0x02:
        return "syn"
    if flags & 0x01:
        return "fin"
    if length:
        return "data"
    return "ack"


def theme_variable_defaults(theme) -> dict[str, str]:
    """Values for tcpview's CSS variables, borrowed from a Textual theme's colour system."""
    try:
        generated = theme.to_color_system().generate()
    except Exception:
        generated = {}
    out = {}
    for name, (borrow, fallback) in _DEFAULTS.items():
        value = generated.get(borrow) or fallback
        out[name] = value
    return out


def state_css(widget: str, prefix: str) -> str:
    """CSS giving every ``PREFIX--state-FAMILY`` component class its ``$state-FAMILY`` colour."""
    return "\n".join(f"{widget} > .{prefix}--state-{f} {{ color: $state-{f}; }}" for f in STATE_FAMILIES)
