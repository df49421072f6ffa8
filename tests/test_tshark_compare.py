"""tcpview against Wireshark's own numbers: per frame, the relative seq, ack and payload
length from ``tcpview export`` equal ``tshark -T fields -e tcp.seq -e tcp.ack -e tcp.len``,
and the number of connections equals the number of tshark ``tcp.stream`` values."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import Flow, cli, many_connections, write_frames_pcap

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

M32 = 1 << 32


def tshark_fields(path: Path) -> dict[int, tuple[int, int, int, int]]:
    """frame -> (seq, ack, len, stream) as tshark numbers them (relative seq is its default)."""
    p = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e", "tcp.seq",
         "-e", "tcp.ack", "-e", "tcp.len", "-e", "tcp.stream"],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        f = line.split("\t")
        out[int(f[0])] = tuple(int(x) if x else 0 for x in f[1:5])
    return out


def tcpview_fields(path: Path) -> dict[int, tuple[int, int, int, int]]:
    rc, out, err = cli("export", str(path), "--format", "jsonl")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    return {r["frame"]: (r["seq"], r["ack"], r["len"], r["conn"]) for r in rows}


def compare(path: Path) -> None:
    ws = tshark_fields(path)
    tv = tcpview_fields(path)
    assert ws, "tshark saw no TCP"
    assert set(tv) == set(ws)
    bad = [(f, tv[f][:3], ws[f][:3]) for f in sorted(ws) if tv[f][:3] != ws[f][:3]]
    assert not bad, f"(frame, tcpview seq/ack/len, tshark seq/ack/len): {bad[:10]}"
    assert len({v[3] for v in tv.values()}) == len({v[3] for v in ws.values()})
    # and the same frames belong together
    pairs = {(tv[f][3], ws[f][3]) for f in ws}
    assert len(pairs) == len({v[3] for v in ws.values()})


def test_real_loopback_capture(loopback_capture):
    compare(loopback_capture.pcap)


def test_wraparound(tmp_path):
    f = Flow(cisn=M32 - 3, sisn=M32 - 1)
    f.handshake()
    f.c("PA", b"a" * 10)
    f.s("A")
    f.s("PA", b"b" * 4)
    f.c("A")
    f.c("PA", b"c" * 10, seq=M32 - 2)  # retransmission across the wrap
    f.c("FA")
    f.s("FA")
    f.c("A")
    compare(write_frames_pcap(tmp_path / "wrap.pcap", f.frames))


def test_midstream(tmp_path):
    frames: list = []
    a = Flow(cport=51000, sport=443, cisn=3_000_000_000, sisn=12345, frames=frames)
    a.s("PA", b"r" * 300)  # the capture starts with the server talking
    a.c("A")
    a.c("PA", b"q" * 20)
    a.s("A")
    b = Flow(cport=51001, sport=22, cisn=M32 - 10, sisn=77, t0=a.t, frames=frames)
    b.c("PA", b"z" * 40)  # crosses the wrap
    b.s("PA", b"y" * 8)
    b.c("FA")
    b.s("FA")
    b.c("A")
    compare(write_frames_pcap(tmp_path / "mid.pcap", frames))


def test_port_reuse_and_refusal(tmp_path):
    f = Flow(cisn=1000, sisn=2000)
    f.handshake()
    f.c("PA", b"one")
    f.c("FA"), f.s("FA"), f.c("A")
    g = Flow(cisn=500_000, sisn=9_000, t0=f.t + 1, frames=f.frames)  # same 4-tuple, new ISNs
    g.handshake()
    g.c("PA", b"two")
    g.s("RA")
    h = Flow(sport=9, t0=g.t + 1, frames=f.frames)
    h.c("S")
    h.s("RA", seq=0)
    compare(write_frames_pcap(tmp_path / "reuse.pcap", f.frames))


def test_simultaneous_open_and_close(tmp_path):
    f = Flow()
    f.c("S")
    f.s("S")
    f.c("SA", seq=1000)
    f.s("SA", seq=5000)
    f.c("PA", b"hi")
    f.s("A")
    f.c("FA")
    f.s("FA", ack=1003)
    f.c("A")
    f.s("A")
    compare(write_frames_pcap(tmp_path / "simul.pcap", f.frames))


@pytest.mark.parametrize("link", ["vlan", "sll2", "null"])
def test_other_link_types_and_ipv6(tmp_path, link):
    f = Flow(cip="2001:db8::1", sip="2001:db8::2", link=link, cisn=4_000_000_000)
    f.handshake()
    f.c("PA", b"v6" * 10)
    f.s("PA", b"ok")
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    compare(write_frames_pcap(tmp_path / f"{link}.pcap", f.frames))


def test_many_interleaved_connections(tmp_path):
    compare(write_frames_pcap(tmp_path / "many.pcap", many_connections(80, seed=11)))


def test_odd_flags_and_raw_ack_fields(tmp_path):
    f = Flow()
    f.handshake()
    f.c("PA", b"abc")
    f.c("", ack=777)  # no flags at all
    f.c("FPU", ack=5)  # xmas, no ACK
    # (a SYN-flagged segment with a new seq on an open connection is left out on purpose:
    # Wireshark starts a new tcp.stream for it, tcpview keeps the connection, as the hosts do)
    f.s("R", ack=123)  # RST without ACK, ack field set
    compare(write_frames_pcap(tmp_path / "odd.pcap", f.frames))


def test_synack_without_syn_and_duplicates(tmp_path):
    f = Flow(cisn=70_000, sisn=90_000)
    f.nxt[0] += 1
    f.s("SA")
    f.c("A")
    f.c("PA", b"q" * 30)
    f.s("PA", b"r" * 40)
    dup = []
    for t, lt, raw in f.frames:
        dup += [(t, lt, raw), (t + 1e-5, lt, raw)]
    compare(write_frames_pcap(tmp_path / "dup.pcap", dup))
