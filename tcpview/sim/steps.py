"""The pydantic models of a scenario file: tables, steps and their value types.

See :mod:`tcpview.sim.scenario` for the step language.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from ..engine.core.tcp import TcpFlags
from ..errors import UserError

FLAG_BITS = {f.name: int(f) for f in TcpFlags if f.name}  # (every member has one: a combination would not)
MAX_BYTES = 1 << 26  # one send; more is surely a typo


class ScenarioError(UserError):
    """A scenario that cannot be loaded; the message is one line naming file, field and line."""


# -- value types ----------------------------------------------------------------------------


def _flags(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (str, list)):
        raise ValueError('flags must be a string such as "SYN" or "FIN,PSH,URG" (or a list)')
    names = v if isinstance(v, list) else [p for p in re.split(r"[\s,|+]+", v) if p]
    bits = 0
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"unknown flag {n!r}")
        if n.upper() in ("NONE", "NULL"):
            continue
        b = FLAG_BITS.get(n.upper())
        if b is None:
            raise ValueError(f"unknown flag {n!r} (flags: {', '.join(FLAG_BITS)})")
        bits |= b
    return bits


def _range(kind: type, lo_ok: float) -> Any:
    def conv(v: Any) -> tuple:
        if isinstance(v, bool):
            raise ValueError("must be a number or [low, high]")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v, v]
        if not isinstance(v, list) or len(v) != 2 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise ValueError("must be a number or [low, high]")
        if kind is int and not all(float(x).is_integer() for x in v):
            raise ValueError("must be a whole number or [low, high]")
        lo, hi = kind(v[0]), kind(v[1])
        if lo < lo_ok:
            raise ValueError(f"must not be less than {lo_ok}")
        if hi < lo:
            raise ValueError(f"[low, high] with high < low: {v}")
        if kind is int and hi > MAX_BYTES:
            raise ValueError(f"too large (at most {MAX_BYTES})")
        return (lo, hi)

    return conv


def _off(v: Any) -> Any:
    """TOML has no null: "none" / "off" / false switch an optional setting off."""
    if v is False or (isinstance(v, str) and v.lower() in ("none", "off")):
        return None
    return v


def _count(v: Any) -> int | str:
    if v == "forever":
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f'must be a whole number or "forever", not {v!r}')
    if not 0 <= v <= 10_000_000:
        raise ValueError(f"must be between 0 and 10000000, not {v}")
    return v


Flags = Annotated[int, BeforeValidator(_flags)]
IntRange = Annotated[tuple[int, int], BeforeValidator(_range(int, 0))]
SecRange = Annotated[tuple[float, float], BeforeValidator(_range(float, 0.0))]
Port = Annotated[int, Field(ge=1, le=65535)]
Side = Literal["client", "server"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


# -- hosts and network ------------------------------------------------------------------------


class Network(_M):
    """The path between the client side and the server."""

    rtt: float = Field(0.02, gt=0, le=10)
    """Round-trip time in seconds (half each way)."""
    bandwidth: float = Field(100.0, gt=0, le=1e6)
    """Link speed of each host in Mbit/s (segments queue behind each other)."""
    think: float = Field(0.001, ge=0, le=60)
    """How long an application takes to react before its next step, in seconds."""
    msl2: float = Field(60.0, gt=0)
    """TIME_WAIT duration (2*MSL) in seconds, as Linux."""
    fin_timeout: float = Field(60.0, gt=0)
    """How long an orphaned FIN_WAIT_2 lives, in seconds, as Linux."""


class Host(_M):
    """One side's TCP settings. ``ip`` may be a network (CIDR): each connection then comes
    from a random address in it (client side only)."""

    ip: str | None = None
    """Address (default 10.0.0.1 client, 10.0.0.2 server; fd00::1 / fd00::2 if the other
    side is IPv6)."""
    listen: list[Port] = Field([80], min_length=1)
    """Server: the ports with a listening socket; other ports answer SYNs with RST."""
    mss: int = Field(1460, ge=88, le=65495)
    window: int = Field(65535, ge=1, le=1 << 30)
    """Receive buffer in bytes: the most this side advertises."""
    wscale: Annotated[int | None, BeforeValidator(_off)] = Field(7, ge=0, le=14)
    """Window scale shift offered in the SYN ("none": not offered)."""
    sack: bool = True
    timestamps: bool = True
    keepalive: Annotated[float | None, BeforeValidator(_off)] = Field(None, gt=0)
    """SO_KEEPALIVE idle time in seconds ("off": no keep-alives)."""
    rto_min: float = Field(0.2, gt=0, le=60)
    syn_retries: int = Field(6, ge=0, le=20)
    synack_retries: int = Field(5, ge=0, le=20)
    ttl: int = Field(64, ge=1, le=255)

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or network: {v!r}") from None
        return v

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The address as a network (one address, or the client's range)."""
        return ipaddress.ip_network(self.ip or "0.0.0.0", strict=False)


# -- steps ------------------------------------------------------------------------------------


class Connect(_M):
    """The client opens a new connection (both ends at once with ``simultaneous``)."""

    op: Literal["connect"]
    port: Port | None = None
    simultaneous: bool = False


class Send(_M):
    """An application writes ``data`` or ``bytes`` filler bytes."""

    op: Literal["send"]
    by: Side
    size: IntRange | None = Field(None, alias="bytes")
    data: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Send:
        if (self.size is None) == (self.data is None):
            raise ValueError("give exactly one of 'bytes' and 'data'")
        return self


class Close(_M):
    """close() or shutdown(SHUT_WR): a FIN after the queued data."""

    op: Literal["close", "shutdown"]
    by: Literal["client", "server", "both"]


class Abort(_M):
    """Abort with SO_LINGER 0: a RST."""

    op: Literal["rst", "abort"]
    by: Side


class Lose(_M):
    """The next segments ``by`` sends (``which``, counted from 1) are lost."""

    op: Literal["lose"]
    by: Side
    which: list[Annotated[int, Field(ge=1, le=10000)]] = Field([1], min_length=1)


class Wait(_M):
    """Simulated time passes."""

    op: Literal["wait"]
    seconds: SecRange


class StopReading(_M):
    """The application stops reading: its window closes as data arrives."""

    op: Literal["stop_reading"]
    by: Side


class Read(_M):
    """The application reads what is buffered and goes on reading."""

    op: Literal["read"]
    by: Side


class RawSegment(_M):
    """A crafted segment from the client host, sent without a connection."""

    op: Literal["segment"]
    flags: Flags
    port: Port | None = None
    sport: Port | None = None
    seq: int | None = Field(None, ge=0, le=0xFFFFFFFF)
    ack: int = Field(0, ge=0, le=0xFFFFFFFF)
    window: int = Field(1024, ge=0, le=65535)
    size: IntRange | None = Field(None, alias="bytes")
    data: str | None = None
    src: str | None = None
    """Spoof: a random source address in this network; replies go nowhere."""

    @field_validator("src")
    @classmethod
    def _src(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {v!r}") from None
        return v


class Scan(_M):
    """One probe with ``flags`` to each of ``ports``."""

    op: Literal["scan"]
    flags: Flags
    ports: list[Port] = Field(min_length=1, max_length=65535)
    every: float = Field(0.001, ge=0, le=3600)
    sport: Port | None = None


class Repeat(_M):
    """Run ``steps`` (or a script picked by weight) ``count`` times, in turn or overlapping."""

    op: Literal["repeat"]
    count: Annotated[int | str, PlainValidator(_count)]
    """How many runs, or "forever"."""
    every: float | None = Field(None, ge=0, le=86400)
    poisson: bool = False
    steps: list[Step] | None = None
    pick: dict[str, Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _one(self) -> Repeat:
        if (self.steps is None) == (self.pick is None):
            raise ValueError("give exactly one of 'steps' and 'pick'")
        if self.steps is not None and not self.steps:
            raise ValueError("'steps' is empty")
        if self.pick is not None and not self.pick:
            raise ValueError("'pick' is empty")
        if self.poisson and self.every is None:
            raise ValueError("'poisson' needs 'every' (the mean gap)")
        return self


class Run(_M):
    """Run a named script from ``[scripts]`` in place."""

    op: Literal["run"]
    script: str


Step = Annotated[
    Connect | Send | Close | Abort | Lose | Wait | StopReading | Read | RawSegment | Scan | Repeat | Run,
    Field(discriminator="op"),
]
Repeat.model_rebuild()

STEP_MODELS: dict[str, type[_M]] = {}
for _m in (Connect, Send, Close, Abort, Lose, Wait, StopReading, Read, RawSegment, Scan, Repeat, Run):
    for _tag in get_args(_m.model_fields["op"].annotation):
        STEP_MODELS[_tag] = _m


class ScenarioModel(_M):
    """A whole scenario file."""

    description: str = ""
    seed: int = Field(1, ge=0)
    """The seed used when none is given on the command line."""
    network: Network = Field(default_factory=Network)
    client: Host = Field(default_factory=Host)
    server: Host = Field(default_factory=Host)
    steps: list[Step] = Field(min_length=1)
    scripts: dict[str, list[Step]] = {}

    @model_validator(mode="after")
    def _default_ips(self) -> ScenarioModel:
        c, s = self.client, self.server
        if c.ip is None or s.ip is None:
            v6 = ":" in (c.ip or "") or ":" in (s.ip or "")
            if c.ip is None:
                c.ip = "fd00::1" if v6 else "10.0.0.1"
            if s.ip is None:
                s.ip = "fd00::2" if v6 else "10.0.0.2"
        return self
