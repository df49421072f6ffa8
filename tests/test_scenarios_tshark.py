"""Every built-in scenario, written with ``tcpview simulate -w``, read by Wireshark's tshark.

tshark must find nothing malformed and no bad checksum (it verifies both); its relative
seq/ack/len for each frame must equal ``tcpview export``'s; and its analysis must mark as
retransmissions, fast retransmissions, zero-window probes and keep-alives exactly the frames the
simulator sent as such.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import cli

from tcpview.cli import main
from tcpview.sim import Engine, builtin_names, load

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

BUSY_SECONDS = 6
PI_ERROR = 0x00800000  # Wireshark's expert severity "error"
FIELDS = ("frame.number", "tcp.seq", "tcp.ack", "tcp.len", "tcp.flags", "_ws.malformed", "_ws.expert.message",
          "_ws.expert.severity", "tcp.checksum.status", "ip.checksum.status", "tcp.analysis.retransmission",
          "tcp.analysis.fast_retransmission", "tcp.analysis.zero_window_probe", "tcp.analysis.keep_alive")


def tshark(path: Path, reassemble: bool = False) -> dict[int, dict[str, str]]:
    """frame -> field -> value, with checksum verification and sequence analysis on.

    TCP reassembly is off unless asked for: with it on, Wireshark 4 files a retransmitted
    segment whose first copy was also captured under "Malformed" ("New fragment overlaps old
    data"), as it does for a real capture taken at the sender; that is not a defect of the frame.
    """
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", "aggregator=|",
            "-o", "tcp.relative_sequence_numbers:TRUE", "-o", "tcp.analyze_sequence_numbers:TRUE",
            "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
            "-o", f"tcp.desegment_tcp_streams:{'TRUE' if reassemble else 'FALSE'}"]
    for f in FIELDS:
        args += ["-e", f]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        vals = line.split("\t")
        row = dict(zip(FIELDS, vals, strict=True))
        out[int(row["frame.number"])] = row
    return out


def simulate(name: str, path: Path, capsys) -> list:  # type: ignore[no-untyped-def]
    """Write the scenario with the real command and return the simulator's own frame records."""
    extra = ["--duration", str(BUSY_SECONDS)] if name == "busy" else []
    assert main(["simulate", name, "-w", str(path), *extra]) == 0
    capsys.readouterr()
    eng = Engine(load(name), record=False)
    return list(eng.frames(max_seconds=BUSY_SECONDS if name == "busy" else None))


def export(path: Path, capsys) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    assert main(["export", str(path), "--format", "jsonl"]) == 0
    out = capsys.readouterr().out
    return {row["frame"]: row for row in map(json.loads, out.splitlines())}


def frames_with(ts: dict[int, dict[str, str]], field: str) -> set[int]:
    return {n for n, row in ts.items() if row[field]}


@pytest.mark.parametrize("name", builtin_names())
def test_scenario_through_tshark(name: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.pcap"
    sim = simulate(name, path, capsys)
    ts = tshark(path)
    assert sorted(ts) == [f.frame for f in sim]

    # well-formed: nothing malformed, checksums verified good, no expert error
    for n, row in ts.items():
        assert not row["_ws.malformed"], (n, row)
        assert row["tcp.checksum.status"] == "1", (n, "bad TCP checksum", row)
        if row["ip.checksum.status"]:
            assert row["ip.checksum.status"] == "1", (n, "bad IP checksum", row)
        sev = [int(x) for x in row["_ws.expert.severity"].split("|") if x]
        assert all(s < PI_ERROR for s in sev), (n, row["_ws.expert.message"])
        assert "Bad checksum" not in row["_ws.expert.message"] and "Malformed" not in row["_ws.expert.message"]

    # the same relative numbers, frame by frame
    tv = export(path, capsys)
    assert sorted(tv) == sorted(ts)
    for n, row in ts.items():
        mine = (tv[n]["seq"], tv[n]["ack"], tv[n]["len"])
        theirs = tuple(int(row[f] or 0) for f in ("tcp.seq", "tcp.ack", "tcp.len"))
        assert mine == theirs, (n, "tcpview", mine, "tshark", theirs)

    # the analysis marks exactly what the simulator did
    retx = {f.frame for f in sim if f.kind in ("rto", "fast")}
    # a simultaneous open's SYN,ACK carries its SYN's sequence number again (RFC 9293 3.5):
    # a retransmission of that SYN, as Wireshark rightly says
    syn_seen = set()
    for f in sim:
        if f.flags & 0x12 == 0x02:
            syn_seen.add((f.conn, f.dir))
        elif f.flags & 0x12 == 0x12 and (f.conn, f.dir) in syn_seen and f.kind == "":
            retx.add(f.frame)
    assert frames_with(ts, "tcp.analysis.retransmission") | frames_with(ts, "tcp.analysis.fast_retransmission") \
        == retx
    assert frames_with(ts, "tcp.analysis.fast_retransmission") == {f.frame for f in sim if f.kind == "fast"}
    assert frames_with(ts, "tcp.analysis.zero_window_probe") == {f.frame for f in sim if f.kind == "probe"}
    assert frames_with(ts, "tcp.analysis.keep_alive") == {f.frame for f in sim if f.kind == "keepalive"}
    if name in ("retransmit-timeout", "fast-retransmit", "lost-fin", "syn-flood"):
        assert retx, "a loss scenario retransmits something"


@pytest.mark.parametrize("name", ["fast-retransmit", "retransmit-timeout"])
def test_retransmitted_bytes_equal_the_originals(name: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """With reassembly on, Wireshark finds overlaps only at the retransmissions, and never
    conflicting data: the second copy carries the same bytes as the first."""
    path = tmp_path / f"{name}.pcap"
    sim = simulate(name, path, capsys)
    ts = tshark(path, reassemble=True)
    retx = {f.frame for f in sim if f.kind in ("rto", "fast")}
    flagged = set()
    for n, row in ts.items():
        msgs = row["_ws.expert.message"]
        assert "conflicting data" not in msgs, (n, msgs)
        if "overlaps old data" in msgs:
            flagged.add(n)
    assert flagged <= retx


def test_simulate_writes_a_pcap_tshark_and_capinfos_accept(tmp_path: Path) -> None:
    path = tmp_path / "storm.pcap"
    rc, _, err = cli("simulate", "time-wait-storm", "-w", str(path), "--seed", "11")
    assert rc == 0, err
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0
    conv_lines = [line for line in p.stdout.splitlines() if "<->" in line]
    count = next(s.count for s in load("time-wait-storm").model.steps if s.op == "repeat")
    assert len(conv_lines) == count
    if shutil.which("capinfos"):
        p = subprocess.run(["capinfos", "-E", "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert "Ethernet" in p.stdout and p.returncode == 0
