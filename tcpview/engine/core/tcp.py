"""TCP as tcpview names it: states, flags, anomaly and analysis bits, why a state changed.

Plain constants and enums, no pydantic: the compiled engine, the simulator and the headless
commands import them without the model (:mod:`tcpview.engine.core.model`, built on demand).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class TcpState(IntEnum):
    """An RFC 9293 connection state, as one endpoint holds it.

    An ``IntEnum`` so the store can keep states in one byte; ``.name`` is the RFC name with
    underscores, as ``ss`` prints it (with dashes there).
    """

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


STATE_NAMES: tuple[str, ...] = tuple(s.name for s in TcpState)
SIDES: tuple[str, str] = ("client", "server")
"""The two endpoints by side number (0: the client, who sent the first SYN or was guessed)."""
"""State names indexed by their byte value (the hot paths use this, not the enum)."""


class TcpFlags(IntFlag):
    """The eight TCP header flags, with their bit values in the header's flags byte."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# The states and flags again as plain ints, for the hot loops (and numba-compiled code) that read
# them as module globals: this is their one definition, derived from the enums above.
CLOSED = int(TcpState.CLOSED)
LISTEN = int(TcpState.LISTEN)
SYN_SENT = int(TcpState.SYN_SENT)
SYN_RECEIVED = int(TcpState.SYN_RECEIVED)
ESTABLISHED = int(TcpState.ESTABLISHED)
FIN_WAIT_1 = int(TcpState.FIN_WAIT_1)
FIN_WAIT_2 = int(TcpState.FIN_WAIT_2)
CLOSE_WAIT = int(TcpState.CLOSE_WAIT)
CLOSING = int(TcpState.CLOSING)
LAST_ACK = int(TcpState.LAST_ACK)
TIME_WAIT = int(TcpState.TIME_WAIT)

FIN = int(TcpFlags.FIN)
SYN = int(TcpFlags.SYN)
RST = int(TcpFlags.RST)
PSH = int(TcpFlags.PSH)
ACK = int(TcpFlags.ACK)
URG = int(TcpFlags.URG)
ECE = int(TcpFlags.ECE)
CWR = int(TcpFlags.CWR)

M = 0xFFFFFFFF
"""Sequence numbers are 32 bits: ``(a + b) & M`` wraps them."""
HALF = 0x80000000
"""Half the sequence space: ``(a - b) & M >= HALF`` means a is before b (RFC 1982)."""

WS_UNKNOWN = -1
"""A window-scale shift not known yet (no SYN seen from that side), as Wireshark's ``-1``."""
WS_NONE = -2
"""No window scaling: a SYN without the window-scale option (Wireshark's ``-2``)."""


_FLAG_ORDER = (
    (TcpFlags.SYN, "SYN"),
    (TcpFlags.FIN, "FIN"),
    (TcpFlags.RST, "RST"),
    (TcpFlags.PSH, "PSH"),
    (TcpFlags.ACK, "ACK"),
    (TcpFlags.URG, "URG"),
    (TcpFlags.ECE, "ECE"),
    (TcpFlags.CWR, "CWR"),
)

_FLAG_NAMES_CACHE: dict[int, list[str]] = {}


def flag_names(flags: int) -> list[str]:
    """Return the names of the flags set in ``flags``, SYN/FIN/RST first as people read them."""
    names = _FLAG_NAMES_CACHE.get(flags)
    if names is None:
        names = [name for bit, name in _FLAG_ORDER if flags & bit]
        _FLAG_NAMES_CACHE[flags] = names
    return list(names)


def flags_label(flags: int) -> str:
    """Return a compact label such as ``SYN,ACK`` (``none`` when no flag is set)."""
    return ",".join(flag_names(flags)) or "none"


class Anomaly(IntFlag):
    """Things wrong with a segment that a passive observer can tell (one bit each)."""

    SYN_FIN = 0x01
    SYN_RST = 0x02
    FIN_NO_ACK = 0x04
    NO_FLAGS = 0x08
    XMAS = 0x10
    BAD_HANDSHAKE_ACK = 0x20
    RST_OUT_OF_WINDOW = 0x40


class Analysis(IntFlag):
    """Wireshark's TCP analysis flags (``tcp.analysis.*``), recorded per segment, one bit each.

    As in Wireshark, a fast or spurious retransmission is a retransmission too.
    """

    RETRANSMISSION = 0x0001
    FAST_RETRANSMISSION = 0x0002
    SPURIOUS_RETRANSMISSION = 0x0004
    OUT_OF_ORDER = 0x0008
    DUP_ACK = 0x0010
    LOST_SEGMENT = 0x0020  # "previous segment not captured"
    ACK_LOST_SEGMENT = 0x0040  # "ACKed segment that wasn't captured"
    ZERO_WINDOW = 0x0080
    WINDOW_PROBE = 0x0100  # zero-window probe
    WINDOW_PROBE_ACK = 0x0200
    WINDOW_FULL = 0x0400
    WINDOW_UPDATE = 0x0800
    KEEP_ALIVE = 0x1000
    KEEP_ALIVE_ACK = 0x2000
    REUSED_PORTS = 0x4000


def anomaly_names(bits: int) -> list[str]:
    """Return the names of the anomaly bits set in ``bits``."""
    return [a.name.lower() for a in Anomaly if bits & a and a.name]  # (every member has a name)


def analysis_names(bits: int) -> list[str]:
    """Return the names of the analysis bits set in ``bits``."""
    return [a.name.lower() for a in Analysis if bits & a and a.name]


NSTATES = len(TcpState)
(SYN_FIN, SYN_RST, FIN_NO_ACK, NO_FLAGS, XMAS, BAD_HANDSHAKE_ACK, RST_OUT_OF_WINDOW) = (int(a) for a in Anomaly)
(A_RETRANS, A_FAST_RETRANS, A_SPURIOUS, A_OUT_OF_ORDER, A_DUPACK, A_LOST, A_ACK_LOST, A_ZEROWIN, A_WINPROBE,
 A_WINPROBE_ACK, A_WINDOW_FULL, A_WINDOW_UPDATE, A_KEEPALIVE, A_KAACK, A_REUSED) = (int(a) for a in Analysis)

WHYS: tuple[str, ...] = (
    "syn", "synack", "handshake_ack", "simultaneous_open", "fin_sent", "fin_received", "fin_acked",
    "simultaneous_close", "rst", "refused", "time_wait_expired", "fin_wait_2_expired", "midstream", "reused",
)
"""Why a transition happened, by the code the store keeps (``tcpview.engine.analysis.why`` says it in
sentences)."""
(WHY_SYN, WHY_SYNACK, WHY_HANDSHAKE_ACK, WHY_SIMOPEN, WHY_FIN, WHY_GOT_FIN, WHY_FIN_ACKED, WHY_SIMCLOSE, WHY_RST,
 WHY_REFUSED, WHY_TW_EXPIRED, WHY_FW2_EXPIRED, WHY_MIDSTREAM, WHY_REUSED) = range(len(WHYS))
