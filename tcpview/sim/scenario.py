"""Scenario files: a small step language in TOML, validated by pydantic.

A scenario describes two kinds of hosts (``[client]``, ``[server]``), the path between them
(``[network]``) and a list of ``steps`` that the applications on those hosts perform. The TCP
endpoints do the rest, as RFC 9293 says: handshakes, ACKs, windows, retransmissions, FINs.

Example (``handshake.toml``, shipped)::

    description = "Three-way handshake, one request and response, four-way close"

    steps = [
      { op = "connect" },
      { op = "send", by = "client", data = "GET / HTTP/1.1\\r\\nHost: example.test\\r\\n\\r\\n" },
      { op = "send", by = "server", bytes = 3000 },
      { op = "close", by = "client" },
      { op = "close", by = "server" },
    ]

Steps (``by`` is ``"client"`` or ``"server"``; each step starts when the previous one has
settled: every segment delivered and all data, SYNs and FINs acknowledged -- or the sender is
blocked by a zero window):

``connect`` (``port``, ``simultaneous``)
    The client opens a new connection (a fresh ephemeral port) to the server's ``port`` (the
    first of ``server.listen`` by default). A port the server does not listen on is refused
    with a RST. ``simultaneous = true``: both hosts open actively at the same instant and the
    SYNs cross. Later steps of the same script act on this connection.
``send`` (``by``, ``bytes`` or ``data``)
    The application writes ``data`` (a string) or ``bytes`` filler bytes (a number, or
    ``[low, high]`` for a random size); TCP cuts it into MSS-sized segments.
``close`` / ``shutdown`` (``by`` = client, server or both)
    The application closes its sending side: a FIN follows the queued data. ``both``: the two
    applications close at the same instant and the FINs cross (simultaneous close).
``rst`` / ``abort`` (``by``)
    The application aborts (close with SO_LINGER 0): a RST is sent and the connection is gone.
``lose`` (``by``, ``which``)
    The next segments ``by`` sends are lost on the way (``which`` counts them from 1;
    default ``[1]``). The capture point is beside the client and losses happen beyond it, so
    a lost segment is captured once and its retransmission again.
``stop_reading`` / ``read`` (``by``)
    The application stops reading (its receive buffer fills, the window shrinks to zero) /
    reads everything buffered and keeps reading (the window opens again).
``wait`` (``seconds``: a number or ``[low, high]``)
    Time passes (keep-alive, persist and retransmission timers run meanwhile).
``segment`` (``flags``, ``port``, ``sport``, ``seq``, ``ack``, ``window``, ``bytes``/``data``, ``src``)
    A crafted segment from the client host, sent without a connection (like a raw-socket
    tool). Replies come from the hosts' TCP as RFC 9293 prescribes. ``src = "CIDR"`` spoofs a
    random source address in that network: nobody receives the replies.
``scan`` (``flags``, ``ports``, ``every``, ``sport``)
    One probe with ``flags`` (``"SYN"``, ``"FIN"``, ``"FIN,PSH,URG"``, ``""`` for NULL) to
    each port, ``every`` seconds apart, from one source port.
``repeat`` (``count``, ``every``, ``poisson``, ``steps`` or ``pick``)
    Runs ``steps`` ``count`` times (``"forever"`` for a scenario that runs until stopped),
    each run on its own connection. Without ``every`` the runs follow one another; with it a
    run starts every ``every`` seconds, overlapping (``poisson = true``: random gaps of that
    mean). ``pick = { script = weight, ... }`` runs a randomly chosen named script instead.
``run`` (``script``)
    Runs the named script from the ``[scripts]`` table in place.

The capture ends when the last step of ``steps`` has finished. Randomness (ISNs, ports,
sizes, picks) comes from one ``random.Random(seed)``: the same seed gives the same frames.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    PlainValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import tomlpos

FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
             "ECE": 0x40, "CWR": 0x80}
MAX_BYTES = 1 << 26  # one send; more is surely a typo


class ScenarioError(Exception):
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
    Union[Connect, Send, Close, Abort, Lose, Wait, StopReading, Read, RawSegment, Scan, Repeat, Run],
    Field(discriminator="op"),
]
Repeat.model_rebuild()

STEP_MODELS: dict[str, type[_M]] = {}
for _m in (Connect, Send, Close, Abort, Lose, Wait, StopReading, Read, RawSegment, Scan, Repeat, Run):
    for _tag in _m.model_fields["op"].annotation.__args__:  # type: ignore[union-attr]
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


# -- loading --------------------------------------------------------------------------------


class Scenario:
    """A validated scenario: the model plus its name and where it came from."""

    def __init__(self, model: ScenarioModel, name: str, origin: str) -> None:
        self.model = model
        self.name = name
        self.origin = origin
        self.finite = not _has_forever(model.steps, model.scripts, set())

    @property
    def description(self) -> str:
        """The one-line description from the file."""
        return self.model.description

    def __repr__(self) -> str:
        return f"Scenario({self.name!r})"


def _has_forever(steps: list, scripts: dict, seen: set) -> bool:
    for s in steps:
        if isinstance(s, Repeat):
            if s.count == "forever":
                return True
            if s.steps and _has_forever(s.steps, scripts, seen):
                return True
            for name in s.pick or ():
                if name not in seen:
                    seen.add(name)
                    if _has_forever(scripts.get(name, []), scripts, seen):
                        return True
        elif isinstance(s, Run) and s.script not in seen:
            seen.add(s.script)
            if _has_forever(scripts.get(s.script, []), scripts, seen):
                return True
    return False


def builtin_dir():  # type: ignore[no-untyped-def]
    """The package directory holding the built-in scenario files."""
    return resources.files("tcpview.sim") / "scenarios"


def builtin_names() -> list[str]:
    """Names of the built-in scenarios, sorted (``busy`` first: it is the default demo)."""
    names = sorted(p.name[:-5] for p in builtin_dir().iterdir() if p.name.endswith(".toml"))
    if "busy" in names:
        names.remove("busy")
        names.insert(0, "busy")
    return names


def load_builtin(name: str) -> Scenario:
    """Load a built-in scenario by name."""
    f = builtin_dir() / f"{name}.toml"
    if not f.is_file():
        raise ScenarioError(f"{name}: no such built-in scenario (see: tcpview demo --list)")
    return parse(f.read_text(encoding="utf-8"), f"{name}.toml", name)


def load(spec: str) -> Scenario:
    """Load a scenario given as a built-in name or a path to a ``.toml`` file."""
    p = Path(spec)
    looks_like_file = spec.endswith(".toml") or "/" in spec or "\\" in spec or p.exists()
    if not looks_like_file:
        if spec in builtin_names():
            return load_builtin(spec)
        raise ScenarioError(f"{spec}: no such scenario; built-in: {', '.join(builtin_names())} "
                            "(or give a .toml file)")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{spec}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{spec}: is a directory, not a scenario file") from None
    except PermissionError:
        raise ScenarioError(f"{spec}: permission denied") from None
    except OSError as e:
        raise ScenarioError(f"{spec}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{spec}: not a UTF-8 text file (a scenario is TOML)") from None
    return parse(text, spec, p.stem)


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def parse(text: str, filename: str, name: str) -> Scenario:
    """Parse and validate scenario ``text``; errors name ``filename``, field path and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_AT.search(msg)
        if m:
            raise ScenarioError(f"{filename}:{m.group(1)}: bad TOML: {msg[:m.start()]}") from None
        msg = _TOML_END.sub(" (at the end of the file)", msg)
        raise ScenarioError(f"{filename}: bad TOML: {msg}") from None
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(_format(e, filename, text)) from None
    problem = _check_refs(model)
    if problem:
        path, msg = problem
        raise ScenarioError(_where(filename, text, path) + msg)
    return Scenario(model, name, filename)


def _where(filename: str, text: str, path: tuple) -> str:
    lines = tomlpos.locate(text)
    line = None
    for k in range(len(path), 0, -1):
        line = lines.get(tuple(path[:k]))
        if line is not None:
            break
    loc = f"{filename}:{line}" if line is not None else filename
    return f"{loc}: {_path_text(path)}: " if path else f"{loc}: "


def _path_text(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _clean_loc(loc: tuple) -> tuple[tuple, str | None]:
    """Drop the union tags pydantic inserts after a step index; return the last step op too."""
    out: list = []
    op = None
    prev_int = False
    for p in loc:
        if prev_int and isinstance(p, str) and p in STEP_MODELS:
            op = p
            prev_int = False
            continue
        if isinstance(p, str) and p.startswith(("function-", "tuple[", "int", "float", "literal[")):
            continue
        out.append(p)
        prev_int = isinstance(p, int)
    return tuple(out), op


_TABLE_MODELS = {"network": Network, "client": Host, "server": Host}


def _allowed(path: tuple, op: str | None) -> list[str]:
    model: type[BaseModel] | None
    if len(path) == 1:
        model = ScenarioModel
    elif op is not None and isinstance(path[-2], int):
        model = STEP_MODELS[op]
    elif len(path) == 2:
        model = _TABLE_MODELS.get(path[0])
    else:
        model = None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _format(e: ValidationError, filename: str, text: str) -> str:
    errs = e.errors(include_url=False)
    err = errs[0]
    path, op = _clean_loc(tuple(err["loc"]))
    typ = err["type"]
    msg = err["msg"]
    inp = err.get("input")
    if typ == "extra_forbidden":
        allowed = _allowed(path, op)
        msg = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        if len(path) == 2 and path[0] in _TABLE_MODELS and path[1] in ScenarioModel.model_fields:
            msg = (f"unknown field; top-level keys such as {path[1]!r} must come before the first "
                   f"[table] header (or write {path[0]} = {{ ... }} on one line)")
    elif typ == "missing":
        msg = "missing (required)"
    elif typ == "union_tag_invalid":
        path = (*path, "op")
        msg = f"unknown op {err['ctx']['tag']!r} (ops: {', '.join(STEP_MODELS)})"
    elif typ == "union_tag_not_found":
        msg = f"a step needs 'op' (one of: {', '.join(STEP_MODELS)})"
    elif typ in ("value_error", "assertion_error"):
        msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
    elif typ in ("model_type", "dict_type"):
        msg = "must be a table"
    else:
        msg = re.sub(r"^Input should be ", "must be ", msg)
        msg = msg[:1].lower() + msg[1:]
        if inp is not None and not isinstance(inp, (dict, list)):
            msg += f" (got {inp!r})"
    more = len(errs) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return _where(filename, text, path) + msg + tail


def _check_refs(model: ScenarioModel) -> tuple[tuple, str] | None:
    """Addresses must fit together; names used by ``run`` and ``pick`` must exist; scripts
    must not call themselves."""
    if model.client.network().version != model.server.network().version:
        return ("server", "ip"), "the client and the server must both be IPv4 or both IPv6"
    if model.server.network().num_addresses != 1:
        return ("server", "ip"), "must be one address, not a network"
    names = set(model.scripts)

    def walk(steps: list, path: tuple, stack: tuple) -> tuple[tuple, str] | None:
        for i, s in enumerate(steps):
            here = (*path, i)
            refs: list[tuple[str, tuple]] = []
            if isinstance(s, Run):
                refs.append((s.script, (*here, "script")))
            elif isinstance(s, Repeat):
                if s.steps:
                    r = walk(s.steps, (*here, "steps"), stack)
                    if r:
                        return r
                for n in s.pick or ():
                    refs.append((n, (*here, "pick", n)))
            for n, p in refs:
                if n not in names:
                    known = ", ".join(sorted(names)) or "none defined"
                    return p, f"no script named {n!r} in [scripts] ({known})"
                if n in stack:
                    return p, f"script {n!r} runs itself (a loop)"
                r = walk(model.scripts[n], ("scripts", n), (*stack, n))
                if r:
                    return r
        return None

    return walk(model.steps, ("steps",), ())
