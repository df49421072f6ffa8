"""The headless command line, run as a user runs it (``python -m tcpview ...``): the JSON
names, the exit statuses, and one clean line on stderr for every kind of bad input."""

from __future__ import annotations

import json

import pytest
from helpers import Flow, eth, many_connections, pcap_bytes, pcapng_bytes, write_frames_pcap
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP

SUMMARY_KEYS = {"source", "packets", "tcp_packets", "skipped", "first_ts", "last_ts", "counters", "connections"}
CONN_KEYS = {"id", "client", "server", "first_ts", "last_ts", "packets", "bytes", "partial"}
SEG_KEYS = {"frame", "ts", "conn", "dir", "flags", "seq", "ack", "seq_raw", "ack_raw", "len", "win",
            "client_state", "server_state"}
STATES = {"LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT",
          "CLOSING", "LAST_ACK", "TIME_WAIT"}


@pytest.fixture
def two_conns(tmp_path):
    """Frame 1 ARP, conn 0 closed by the client (TIME_WAIT), a UDP frame, conn 1 left in CLOSE_WAIT."""
    frames: list = []
    frames.append((100.0, 1, bytes(eth() / ARP())))
    a = Flow(cport=40000, t0=100.0, dt=0.01, frames=frames, cisn=11, sisn=22)
    a.handshake()
    a.c("PA", b"hello")
    a.s("PA", b"world!!")
    a.c("FA"), a.s("A"), a.s("FA"), a.c("A")
    frames.append((101.0, 1, bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.9") / UDP(sport=5353, dport=53))))
    b = Flow(cport=40001, t0=102.0, dt=0.01, frames=frames)
    b.handshake()
    b.c("FA"), b.s("A")
    return write_frames_pcap(tmp_path / "two.pcap", frames)


def one_line_error(rc: int, out: str, err: str) -> str:
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].strip()
    return lines[0]


def test_summary_json(run_cli, two_conns):
    rc, out, err = run_cli("summary", str(two_conns), "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert SUMMARY_KEYS <= set(s)
    assert s["source"] == str(two_conns)
    assert (s["packets"], s["tcp_packets"]) == (16, 14)
    assert s["skipped"] == {"not ip": 1, "not tcp": 1}
    assert s["first_ts"] == pytest.approx(100.0)
    assert s["last_ts"] == pytest.approx(102.05)
    assert set(s["counters"]) >= STATES
    nz = {k: v for k, v in s["counters"].items() if v}
    assert nz == {"TIME_WAIT": 1, "FIN_WAIT_2": 1, "CLOSE_WAIT": 1}
    c0, c1 = s["connections"]
    for c in (c0, c1):
        assert CONN_KEYS <= set(c)
        assert set(c["client"]) >= {"ip", "port", "state"}
    assert [c["id"] for c in (c0, c1)] == [0, 1]
    assert c0["client"] == {"ip": "10.0.0.1", "port": 40000, "state": "TIME_WAIT"}
    assert c0["server"] == {"ip": "10.0.0.2", "port": 80, "state": "CLOSED"}
    assert (c0["packets"], c0["bytes"], c0["partial"]) == (9, 12, False)
    assert (c1["client"]["state"], c1["server"]["state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")
    assert c1["first_ts"] == pytest.approx(102.01)


def test_summary_at_a_cursor_time(run_cli, two_conns):
    # 0.065 s after the first packet: conn 0 has sent FIN (frame 7) and got its ACK (frame 8)
    rc, out, err = run_cli("summary", str(two_conns), "--json", "--at", "0.075")
    assert rc == 0, err
    s = json.loads(out)
    assert len(s["connections"]) == 1
    c0 = s["connections"][0]
    assert (c0["client"]["state"], c0["server"]["state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")
    assert c0["packets"] == 7
    assert {k: v for k, v in s["counters"].items() if v} == {"FIN_WAIT_2": 1, "CLOSE_WAIT": 1}


def test_summary_text(run_cli, two_conns):
    rc, out, err = run_cli("summary", str(two_conns))
    assert rc == 0, err
    assert "TIME_WAIT 1" in out and "CLOSE_WAIT 1" in out
    assert "10.0.0.1:40001" in out


def test_summary_text_agrees_in_number_and_counts_on_one_line(run_cli, tmp_path):
    """One connection is "1 connection"; the counts are one line: the states that have any, and
    always TIME_WAIT and CLOSE_WAIT (no second line repeating them)."""
    f = Flow(t0=0.0, dt=0.01)
    f.handshake()
    p = write_frames_pcap(tmp_path / "one.pcap", f.frames)
    rc, out, err = run_cli("summary", str(p))
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{p}: 3 packets, 3 TCP, 1 connection, 0.020000 s"
    assert lines[1] == "endpoints: ESTABLISHED 2, CLOSE_WAIT 0, TIME_WAIT 0"
    assert lines[2] == "" and lines[3].startswith("id  client")
    g = Flow(t0=0.0)
    g.c("S")
    p = write_frames_pcap(tmp_path / "syn.pcap", g.frames)
    assert run_cli("summary", str(p))[1].startswith(f"{p}: 1 packet, 1 TCP, 1 connection, ")


def test_capture_options_are_spelled_alike_in_every_command():
    """``-i IFACE -f BPF`` in the help of every command that captures (live, summary -i)."""
    from tcpview.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    seen = {}
    for name, p in sub.choices.items():
        opts = {o: a for a in p._actions for o in a.option_strings}
        if "-i" in opts:
            seen[name] = (opts["-i"].metavar, opts["-f"].metavar)
            assert "-f" in p.format_help() and "-i IFACE" in p.format_help() and "-f BPF" in p.format_help()
    assert seen == {"live": ("IFACE", "BPF"), "summary": ("IFACE", "BPF"), "diagnose": ("IFACE", "BPF")}


def test_msl2_option_ends_time_wait(run_cli, tmp_path):
    f = Flow(t0=0.0, dt=0.01)
    f.handshake()
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    g = Flow(cport=40009, t0=10.0, frames=f.frames)  # a later packet, 10 s on
    g.c("S")
    p = write_frames_pcap(tmp_path / "tw.pcap", f.frames)
    s = json.loads(run_cli("summary", str(p), "--json")[1])
    assert s["counters"]["TIME_WAIT"] == 1
    rc, out, err = run_cli("summary", str(p), "--json", "--msl2", "5")
    assert rc == 0, err
    s = json.loads(out)
    assert s["counters"]["TIME_WAIT"] == 0
    assert s["connections"][0]["client"]["state"] == "CLOSED"


def test_fin_timeout_option_ends_orphan_fin_wait_2(run_cli, tmp_path):
    f = Flow(t0=0.0, dt=0.01)
    f.handshake()
    f.c("FA"), f.s("A")
    g = Flow(cport=40009, t0=30.0, frames=f.frames)
    g.c("S")
    p = write_frames_pcap(tmp_path / "fw2.pcap", f.frames)
    s = json.loads(run_cli("summary", str(p), "--json")[1])
    assert s["connections"][0]["client"]["state"] == "FIN_WAIT_2"
    s = json.loads(run_cli("summary", str(p), "--json", "--fin-timeout", "20")[1])
    assert s["connections"][0]["client"]["state"] == "CLOSED"
    assert s["connections"][0]["server"]["state"] == "CLOSE_WAIT"


def test_ladder_text(run_cli, two_conns):
    rc, out, err = run_cli("ladder", str(two_conns), "--conn", "0")
    assert rc == 0, err
    lines = out.splitlines()
    assert "10.0.0.1:40000" in lines[0] and "10.0.0.2:80" in lines[0]
    body = "\n".join(lines[2:])
    assert "SYN seq=0" in body and "SYN,ACK seq=0 ack=1" in body
    assert "TIME_WAIT" in body and "CLOSE_WAIT" in body and "LAST_ACK" in body
    assert out.count("▶") == 5 and out.count("◀") == 4


def test_ladder_json_and_absolute(run_cli, two_conns):
    rc, out, err = run_cli("ladder", str(two_conns), "--conn", "0", "--format", "json")
    assert rc == 0, err
    d = json.loads(out)
    segs = d["segments"]
    assert len(segs) == 9
    assert all(SEG_KEYS <= set(s) for s in segs)
    assert [s["frame"] for s in segs] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert [(s["seq"], s["ack"]) for s in segs[3:5]] == [(1, 1), (1, 6)]
    assert d["connection"]["id"] == 0
    assert [t["new"] for t in d["transitions"] if t["side"] == "client"] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    rc, out, err = run_cli("ladder", str(two_conns), "--conn", "0", "--format", "json", "--absolute")
    assert rc == 0, err
    segs = json.loads(out)["segments"]
    assert (segs[0]["seq"], segs[1]["seq"], segs[1]["ack"]) == (11, 22, 12)
    rc, out, _err = run_cli("ladder", str(two_conns), "--conn", "0", "--absolute")
    assert "seq=11" in out and "ack=12" in out


def test_export_jsonl(run_cli, two_conns):
    rc, out, err = run_cli("export", str(two_conns), "--format", "jsonl")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 14
    assert all(SEG_KEYS <= set(r) for r in rows)
    # frame numbers are positions in the file (the ARP is frame 1, the UDP frame 11)
    assert [r["frame"] for r in rows] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16]
    assert [r["conn"] for r in rows] == [0] * 9 + [1] * 5
    assert [r["dir"] for r in rows[:3]] == ["c2s", "s2c", "c2s"]
    assert rows[0]["flags"] == ["SYN"] and rows[1]["flags"] == ["SYN", "ACK"]
    assert (rows[1]["seq"], rows[1]["ack"], rows[1]["seq_raw"], rows[1]["ack_raw"]) == (0, 1, 22, 12)
    assert rows[3]["len"] == 5
    assert (rows[-2]["client_state"], rows[-2]["server_state"]) == ("FIN_WAIT_1", "CLOSE_WAIT")
    assert (rows[-1]["client_state"], rows[-1]["server_state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")


def test_stdin_source(run_cli, two_conns):
    data = two_conns.read_bytes()
    rc, out, err = run_cli("summary", "-", "--json", input=data)
    assert rc == 0, err
    from_stdin = json.loads(out)
    from_file = json.loads(run_cli("summary", str(two_conns), "--json")[1])
    assert from_stdin["source"] == "-"
    for k in ("packets", "tcp_packets", "skipped", "counters", "connections"):
        assert from_stdin[k] == from_file[k]


def test_pcapng_source(run_cli, tmp_path):
    f = Flow(link="sll")
    f.handshake()
    g = Flow(cport=40001, link="ether")
    g.handshake()
    pkts = [(0, t, b) for t, _lt, b in f.frames] + [(1, t + 1, b) for t, _lt, b in g.frames]
    p = tmp_path / "two.pcapng"
    p.write_bytes(pcapng_bytes([(113, 9), (1, 6)], pkts))
    rc, out, err = run_cli("summary", str(p), "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert s["counters"]["ESTABLISHED"] == 4
    assert len(s["connections"]) == 2


# -- bad input: one line, exit 2, never a traceback --------------------------------------------
def test_missing_file(run_cli, tmp_path):
    line = one_line_error(*run_cli("summary", str(tmp_path / "missing.pcap"), "--json"))
    assert "missing.pcap" in line


def test_not_a_capture(run_cli, tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is a text file\n" * 20)
    for cmd in (["summary", str(p)], ["ladder", str(p), "--conn", "0"], ["export", str(p)]):
        one_line_error(*run_cli(*cmd))


def test_empty_file_and_directory(run_cli, tmp_path):
    p = tmp_path / "empty.pcap"
    p.write_bytes(b"")
    one_line_error(*run_cli("summary", str(p)))
    one_line_error(*run_cli("summary", str(tmp_path)))


def test_truncated_capture(run_cli, two_conns, tmp_path):
    data = two_conns.read_bytes()
    p = tmp_path / "cut.pcap"
    p.write_bytes(data[:-7])
    rc, out, err = run_cli("summary", str(p), "--json")
    line = one_line_error(rc, out, err)
    assert "cut short" in line or "truncated" in line
    # what was read before the damage is still reported
    assert json.loads(out)["packets"] == 15
    p.write_bytes(data[:20])
    one_line_error(*run_cli("summary", str(p)))


def test_unknown_link_type(run_cli, tmp_path):
    p = tmp_path / "lt.pcap"
    p.write_bytes(pcap_bytes([(1.0, b"\x00" * 60)], linktype=147))
    line = one_line_error(*run_cli("summary", str(p)))
    assert "147" in line


@pytest.mark.parametrize(
    "args",
    [
        ["summary", "X", "--bogus"],
        ["summary", "X", "--at", "soon"],
        ["summary", "X", "--at", "-1"],
        ["summary", "X", "--msl2", "-5"],
        ["ladder", "X"],
        ["ladder", "X", "--conn", "zero"],
        ["ladder", "X", "--conn", "0", "--format", "svg"],
        ["export", "X", "--format", "gif"],
        ["no-such-command", "X"],
    ],
    ids=lambda a: " ".join(a[:1] + a[2:]),
)
def test_bad_options(run_cli, two_conns, args):
    args = [str(two_conns) if a == "X" else a for a in args]
    one_line_error(*run_cli(*args))


def test_ladder_unknown_connection(run_cli, two_conns):
    line = one_line_error(*run_cli("ladder", str(two_conns), "--conn", "7"))
    assert "7" in line
    one_line_error(*run_cli("ladder", str(two_conns), "--conn", "-1"))


def test_exit_zero_on_a_capture_without_tcp(run_cli, tmp_path):
    p = tmp_path / "udp.pcap"
    p.write_bytes(pcap_bytes([(1.0, bytes(eth() / IP() / UDP()))]))
    rc, out, err = run_cli("summary", str(p), "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert (s["packets"], s["tcp_packets"], s["connections"]) == (1, 0, [])
    rc, out, err = run_cli("export", str(p))
    assert (rc, out) == (0, "")
    one_line_error(*run_cli("ladder", str(p), "--conn", "0"))


def test_garbage_and_empty_stdin(run_cli):
    one_line_error(*run_cli("summary", "-", input=b"definitely not a capture\n" * 10))
    one_line_error(*run_cli("summary", "-", "--json", input=b""))
    one_line_error(*run_cli("export", "-", input=b"\xd4\xc3\xb2\xa1\x02\x00\x04"))


def test_the_command_does_not_import_scipy_for_numba(tmp_path):
    """numba looks for scipy's BLAS when it starts; where scipy is installed, that import is a
    third of a second of every start. The tcpview command skips it (no kernel uses BLAS)."""
    import importlib.util
    import os
    import subprocess
    import sys

    from tcpview.engine.warm import PYTHON_MAX_PACKETS

    if importlib.util.find_spec("scipy") is None:
        pytest.skip("scipy is not installed here: nothing to skip")
    frames = many_connections(400)
    assert len(frames) > PYTHON_MAX_PACKETS  # so it runs compiled (a small capture does not import numba)
    path = write_frames_pcap(tmp_path / "large.pcap", frames)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "tcpview", "summary", str(path), "--json"],
                       capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0, p.stderr[-500:]
    assert json.loads(p.stdout)["connections"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert "numba" in imported
    assert "scipy.linalg" not in imported
