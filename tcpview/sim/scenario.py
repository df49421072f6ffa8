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

import re
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import (
    BaseModel,
    ValidationError,
)

from ..errors import read_text
from . import tomlpos
from .steps import (
    STEP_MODELS,
    Host,
    Network,
    Repeat,
    Run,
    ScenarioError,
    ScenarioModel,
)

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


def builtin_dir():
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
    return parse(read_text(spec, ScenarioError, "a scenario file"), spec, p.stem)


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


_TABLE_MODELS: dict[str, type[BaseModel]] = {"network": Network, "client": Host, "server": Host}


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
