"""The simulator: scenario files and the simulate command."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from helpers import cli
from simhelp import SCEN_DIR

from tcpview.cli import main
from tcpview.engine.core.tcp import STATE_NAMES
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sim import Engine, builtin_names, load, parse
from tcpview.sim.steps import ScenarioError
from tcpview.textutil import ip_text


# -- scenario files ------------------------------------------------------------------------------
def test_every_builtin_parses_and_lists(run_cli) -> None:  # type: ignore[no-untyped-def]
    names = sorted(p.stem for p in SCEN_DIR.glob("*.toml"))
    assert sorted(builtin_names()) == names and builtin_names()[0] == "busy"
    rc, out, err = run_cli("demo", "--list")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(builtin_names(), lines, strict=True):
        desc = tomllib.loads((SCEN_DIR / f"{name}.toml").read_text())["description"]
        assert line.split()[0] == name and desc in line
    assert "(default)" in lines[0]


def test_errors_name_file_line_field_and_problem(tmp_path: Path) -> None:
    cases = {
        'steps = [\n  { op = "connect" },\n  { op = "segment", flags = "SYN,SYNN" },\n]\n':
            "x.toml:3: steps[1].flags: unknown flag 'SYNN'",
        '[[steps]]\nop = "connect"\n\n[[steps]]\nop = "send"\nby = "client"\nbytes = "lots"\n':
            "x.toml:7: steps[1].bytes: must be a number or [low, high]",
        'steps = [\n  { op = "repeat", count = 2, steps = [\n    { op = "connect", port = 0 },\n  ] },\n]\n':
            "x.toml:3: steps[0].steps[0].port: must be greater than or equal to 1 (got 0)",
        'network = { rtt = "fast" }\nsteps = [{ op = "connect" }]\n':
            "x.toml:1: network.rtt: must be a valid number",
        'steps = [{ op = "conect" }]\n':
            "x.toml:1: steps[0].op: unknown op 'conect'",
        'steps = [{ op = "run", script = "nope" }]\n[scripts]\nweb = [{ op = "connect" }]\n':
            "x.toml:1: steps[0].script: no script named 'nope'",
        'steps = [{ op = "close", by = "everyone" }]\n':
            "x.toml:1: steps[0].by: must be 'client', 'server' or 'both' (got 'everyone')",
        'description = "a"\n':
            "x.toml: steps: missing",
        'steps = [{ op = "connect" ]\n':
            "x.toml:1: bad TOML:",
        'server = { ip = "10.0.0.2" }\nclient = { ip = "2001:db8::1" }\nsteps = [{ op = "connect" }]\n':
            "x.toml:1: server.ip: the client and the server must both be IPv4 or both IPv6",
    }
    for text, want in cases.items():
        with pytest.raises(ScenarioError) as ei:
            parse(text, "x.toml", "x")
        msg = str(ei.value)
        assert msg.startswith(want), (msg, want)
        assert "\n" not in msg


def test_scripts_and_steps_in_the_wrong_toml_place_get_a_hint() -> None:
    with pytest.raises(ScenarioError, match=r"x.toml:3: server.steps: unknown field; top-level keys"):
        parse('[server]\nlisten = [80]\nsteps = [{ op = "connect" }]\n', "x.toml", "x")


BAD_FILES = {
    "unknown-flag.toml": 'steps = [{ op = "segment", flags = "SYNN" }]\n',
    "unknown-field.toml": 'steps = [{ op = "connect", colour = "blue" }]\n',
    "bad-value.toml": 'steps = [{ op = "wait", seconds = -3 }]\n',
    "bad-toml.toml": 'steps = [{ op = "connect" }\n',
    "not-text.toml": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    "loop.toml": 'steps = [{ op = "run", script = "a" }]\n[scripts]\na = [{ op = "run", script = "a" }]\n',
}


@pytest.mark.parametrize("fname", [*BAD_FILES, "missing.toml", "no-such-scenario"])
def test_bad_scenario_one_line_exit_2(tmp_path: Path, fname: str, capsys) -> None:  # type: ignore[no-untyped-def]
    if fname in BAD_FILES:
        content = BAD_FILES[fname]
        (tmp_path / fname).write_bytes(content if isinstance(content, bytes) else content.encode())
    spec = str(tmp_path / fname) if fname.endswith(".toml") else fname
    out = tmp_path / "x.pcap"
    rc, stdout, stderr = cli("simulate", spec, "-w", str(out))
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("tcpview: error: ")
    assert "Traceback" not in stderr
    assert spec in stderr
    assert not out.exists()
    # demo loads the scenario the same way, before any UI starts
    assert main(["demo", "--scenario", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and spec in err


def test_users_can_write_their_own(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text(
        'description = "two short connections and a scan"\n'
        'client = { ip = "192.0.2.0/24" }\n'
        'server = { ip = "198.51.100.7", listen = [25] }\n'
        'steps = [\n'
        '  { op = "repeat", count = 2, steps = [ { op = "run", script = "smtp" } ] },\n'
        '  { op = "scan", flags = "SYN", ports = [24, 25, 26], every = 0 },\n'
        ']\n'
        '[scripts]\n'
        'smtp = [\n'
        '  { op = "connect", port = 25 },\n'
        '  { op = "send", by = "server", data = "220 mail.example.test ESMTP\\r\\n" },\n'
        '  { op = "send", by = "client", data = "QUIT\\r\\n" },\n'
        '  { op = "close", by = "server" },\n'
        '  { op = "close", by = "client" },\n'
        ']\n')
    scen = load(str(f))
    assert scen.name == "mine" and scen.finite
    e = Engine(scen, 1, record=True)
    t = Tracker()
    frames = list(e.frames())
    t.feed_records((x.frame, x.ts, 1, x.data, 0, len(x.data), len(x.data)) for x in frames)
    states = [(STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]) for c in t.tl.conns]
    # two SMTP sessions the server closed first (its side waits), then three probes
    assert states[:2] == [("CLOSED", "TIME_WAIT")] * 2
    assert len(states) == 5 and states[2:] == [("CLOSED", "CLOSED")] * 3
    assert all(ip_text(4, c.cip).startswith("192.0.2.") for c in t.tl.conns)


def test_repeat_runs_in_sequence_or_overlapping() -> None:
    base = 'steps = [{{ op = "repeat", count = 5{every}, steps = [{{ op = "connect" }}, {{ op = "close", by = "client" }}, {{ op = "close", by = "server" }}] }}]\n'
    seq = list(Engine(parse(base.format(every=""), "s.toml", "s")).frames())
    par = list(Engine(parse(base.format(every=", every = 0"), "p.toml", "p")).frames())
    assert len(seq) == len(par) == 5 * 7
    # in sequence each connection finishes before the next begins; overlapping they interleave
    order_seq = [f.conn for f in seq]
    assert order_seq == sorted(order_seq)
    assert [f.conn for f in par] != sorted(f.conn for f in par)
    assert par[-1].t_us < seq[-1].t_us


def test_simulate_writes_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "h.pcap"
    rc, stdout, err = cli("simulate", "handshake", "-w", str(out))
    assert rc == 0 and "wrote 15 frames" in err
    first = out.read_bytes()
    assert first[:4] == b"\xd4\xc3\xb2\xa1" and int.from_bytes(first[20:24], "little") == 1
    rc, _, err = cli("simulate", "handshake", "-w", str(out), "--seed", "9")
    assert rc == 2 and err.count("\n") == 1 and "exists" in err and "--force" in err
    assert out.read_bytes() == first
    assert main(["simulate", "handshake", "-w", str(out), "--seed", "9", "--force"]) == 0
    assert out.read_bytes() != first and len(out.read_bytes()) == len(first)
    capsys.readouterr()
    assert main(["summary", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"]["TIME_WAIT"] == 1
    assert not list(tmp_path.glob(".tcpview-*"))  # no temporary file left behind


def test_simulate_bounds_an_endless_scenario(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "b.pcap"
    assert main(["simulate", "busy", "-w", str(out), "--packets", "500"]) == 0
    assert "wrote 500 frames" in capsys.readouterr().err
    assert main(["simulate", "busy", "-w", str(out), "--force", "--duration", "2"]) == 0
    assert "runs until stopped" not in capsys.readouterr().err
    assert main(["summary", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert 1.5 < s["last_ts"] - s["first_ts"] <= 2.0
    # with no bound an endless scenario is cut at a default duration, and says so
    sparse = tmp_path / "sparse.toml"
    sparse.write_text('steps = [{ op = "repeat", count = "forever", every = 7, steps = [\n'
                      '  { op = "connect" }, { op = "close", by = "client" }, { op = "close", by = "server" }] }]\n')
    assert main(["simulate", str(sparse), "-w", str(tmp_path / "d.pcap")]) == 0
    err = capsys.readouterr().err
    assert "runs until stopped" in err and "--duration" in err
    assert main(["summary", str(tmp_path / "d.pcap"), "--json"]) == 0
    from tcpview.cli.sim import DEFAULT_BOUND_SECONDS

    s = json.loads(capsys.readouterr().out)
    assert len(s["connections"]) == math.ceil(DEFAULT_BOUND_SECONDS / 7)


def test_simulate_usage_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for args, word in (
        (["simulate", "handshake"], "-w"),
        (["simulate", "-w", str(tmp_path / "x.pcap")], "scenario"),
        (["simulate", "handshake", "-w", str(tmp_path / "no" / "dir" / "x.pcap")], "cannot write"),
        (["simulate", "handshake", "-w", str(tmp_path / "x.pcap"), "--seed", "-1"], "negative"),
        (["simulate", "handshake", "-w", str(tmp_path)], "directory"),
        (["demo", "--speed", "0"], "positive"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and word in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "x.pcap").exists()
