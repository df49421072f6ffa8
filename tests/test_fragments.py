"""IP fragment reassembly (``tcpview.engine.core.reassembly``): TCP segments carried in IPv4 and
IPv6 fragments come out whole, in the frame that completed their datagram, with tshark's raw
seq/ack, length and bytes in flight (which reads the SACK blocks of a fragmented segment), and
tshark's connection count; what cannot be reassembled (overlapping, duplicate, missing, timed
out, a flood past the table's bound) is counted in ``skipped`` by reason, as the kernel would
drop it.

Captures are built with scapy's ``fragment()`` / ``fragment6()``; both ways the kernels run
(compiled, and plain Python as a command runs a small capture) are checked.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from helpers import Flow, cli_here, corpus_dir, eth, running, write_frames_pcap
from scapy.layers.inet import IP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from tcpview import jit
from tcpview.engine.core import reassembly
from tcpview.engine.timeline.tracker import Tracker

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
KERNELS = ["python"] if jit.JIT_DISABLED else ["compiled", "python"]

WAITING = "ip fragment (its datagram not complete yet)"
TIMED_OUT = "ip fragment (timed out, not reassembled)"
NO_FIRST = "ip fragment (timed out without the first, not reassembled)"
OVERLAP = "ip fragment (overlapping: datagram dropped)"
DUPLICATE = "ip fragment (duplicate: dropped)"
FULL = "ip fragment (reassembly table full: dropped)"
LIMIT = "ip fragment (reassembly memory limit: dropped)"




# -- building fragmented captures -----------------------------------------------------------------
def fragments_of(raw: bytes, ident: int, size: int) -> list[bytes]:
    """The Ethernet frame ``raw`` (IPv4 or IPv6) cut into IP fragments of ``size`` bytes."""
    pkt = Ether(raw)
    if IP in pkt:
        ip = pkt[IP]
        ip.id = ident
        del ip.chksum
        parts = fragment(IP(bytes(ip)), fragsize=size)
    else:
        ip6 = pkt[IPv6]
        whole = IPv6(src=ip6.src, dst=ip6.dst) / IPv6ExtHdrFragment(id=ident) / ip6.payload
        parts = fragment6(IPv6(bytes(whole)), size + 48)  # fragment6 counts the headers too
    return [bytes(eth() / p) for p in parts]


def conversation(v6: bool) -> Flow:
    """A connection whose SYN (with its options), a data segment each way, and a data segment
    with SACK blocks (the client's segment before it was lost) are to be fragmented."""
    f = Flow(cip="fd00::1" if v6 else "10.0.0.1", sip="fd00::2" if v6 else "10.0.0.2", cport=41000)
    f.c("S", options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 7)])
    f.s("SA", options=[("MSS", 1400), ("SAckOK", b""), ("WScale", 7)])
    f.c("A")
    f.c("PA", b"a" * 700)
    f.s("PA", b"b" * 900)
    lost = f.nxt[0]
    f.nxt[0] += 500  # a segment the capture missed
    f.c("PA", b"c" * 300)
    f.s("PA", b"d" * 400, ack=lost, options=[("NOP", None), ("NOP", None), ("SAck", (lost + 500, lost + 800))])
    f.c("A", seq=lost + 800)
    return f


def fragmented(f: Flow, which: dict[int, int], order: str, seed: int = 1) -> tuple[list, int]:
    """``f``'s frames with frames ``which`` (0-based: fragment size) sent as fragments in
    ``order`` ("in order", "reversed", "shuffled"); returns the frames and how many fragments
    are held (not the last of each datagram)."""
    rnd = random.Random(seed)
    out, held = [], 0
    for k, (ts, lt, raw) in enumerate(f.frames):
        if k not in which:
            out.append((ts, lt, raw))
            continue
        parts = fragments_of(raw, 100 + k, which[k])
        assert len(parts) > 1
        if order == "reversed":
            parts.reverse()
        elif order == "shuffled":
            rnd.shuffle(parts)
        out += [(ts + i * 1e-5, lt, p) for i, p in enumerate(parts)]
        held += len(parts) - 1
    return out, held


# -- the oracles -------------------------------------------------------------------------------------
def tshark_rows(path: Path) -> dict[int, tuple]:
    """frame -> (seq_raw, ack_raw, len, bytes in flight) of every TCP frame tshark decodes."""
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e",
                        "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "tcp.analysis.bytes_in_flight"],
                       capture_output=True, text=True, timeout=120, check=True)
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    return {int(r[0]): tuple(int(x) if x else None for x in r[1:]) for r in rows}


def tshark_conversations(path: Path) -> int:
    """How many TCP conversations ``tshark -q -z conv,tcp`` lists."""
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"], capture_output=True, text=True,
                       timeout=120, check=True)
    return sum(1 for line in p.stdout.splitlines() if "<->" in line)


def tcpview_rows(path: Path) -> dict[int, tuple]:
    rc, out, err = cli_here("export", str(path), "--format", "jsonl")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    return {r["frame"]: (r["seq_raw"], r["ack_raw"], r["len"], r["bytes_in_flight"]) for r in rows}


def summary(path: Path) -> dict:
    rc, out, err = cli_here("summary", str(path), "--json")
    assert rc == 0, err
    return json.loads(out)


def tracked(frames: list, **kw) -> Tracker:
    """The frames fed one batch at a time (numbered from 1), as a pcap's are."""
    tr = Tracker(**kw)
    tr.feed_records((i, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(frames, 1))
    return tr


# -- reassembled as tshark reassembles ------------------------------------------------------------------
@needs_tshark
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled"])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragmented_segments_equal_tsharks(tmp_path, v6, order, kernels) -> None:
    f = conversation(v6)
    # the SYN's options go on in its second fragment (24 bytes of its header in the first)
    frames, held = fragmented(f, {0: 24, 3: 256, 4: 256, 6: 200}, order)
    path = write_frames_pcap(tmp_path / "frag.pcap", frames)
    theirs = tshark_rows(path)
    with running(kernels):
        ours = tcpview_rows(path)
        s = summary(path)
    assert len(theirs) == len(f.frames)  # every segment, once: in the frame that completed it
    assert ours == theirs
    assert s["connections"] and len(s["connections"]) == tshark_conversations(path) == 1
    assert (s["packets"], s["tcp_packets"], s["fragments"], s["skipped"]) == (len(frames), len(f.frames), held, {})
    # the SYN's options were read across its fragments, the SACK blocks too (bytes in flight above)
    tr = tracked(frames)
    assert tr.tl.conns[0].opts[0] == {"mss": 1400, "ws": 7, "sack_perm": True}


def test_the_frame_that_completes_a_datagram_carries_its_segment() -> None:
    f = conversation(False)
    frames, _held = fragmented(f, {3: 256}, "reversed")  # the first fragment last: it completes
    tr = tracked(frames)
    segs = list(tr.tl.segments(0))
    assert [s.frame for s in segs] == [1, 2, 3, 3 + 3, 7, 8, 9, 10]
    assert segs[3].len == 700
    frames, _held = fragmented(f, {3: 256}, "in order")  # the last fragment completes
    assert [s.frame for s in tracked(frames).tl.segments(0)][3] == 6


# -- what cannot be reassembled, counted as the kernel drops it ----------------------------------------
def two_datagrams(v6: bool = False) -> tuple[Flow, list, list]:
    """A connection with two data segments to fragment: their fragments, apart."""
    f = Flow(cip="fd00::1" if v6 else "10.0.0.1", sip="fd00::2" if v6 else "10.0.0.2", cport=42000)
    f.handshake()
    f.c("PA", b"x" * 600)
    f.c("PA", b"y" * 600)
    one = fragments_of(f.frames[3][2], 7, 256)
    two = fragments_of(f.frames[4][2], 8, 256)
    return f, one, two


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_overlapping_fragment_drops_its_datagram_a_duplicate_only_itself(v6) -> None:
    f, one, two = two_datagrams(v6)
    t = f.frames[3][0]
    pkt = Ether(one[1])
    if v6:
        pkt[IPv6ExtHdrFragment].offset -= 1  # 8 bytes earlier: into the first fragment's bytes
    else:
        pkt[IP].frag -= 1
        del pkt[IP].chksum
    overlapping = bytes(pkt)
    frames = [*f.frames[:3], (t, 1, one[0]), (t, 1, overlapping), (t, 1, one[1]), (t, 1, one[2]),
              (t, 1, two[0]), (t, 1, two[1]), (t, 1, two[1]), (t, 1, two[2])]
    tr = tracked(frames)
    tl = tr.tl
    assert [s.len for s in tl.segments(0)] == [0, 0, 0, 600]  # the second one, despite its duplicate
    assert list(tl.segments(0))[3].frame == 11
    # the first fragment and the overlapping one go; the two after start a datagram that never ends
    assert tl.skipped == {OVERLAP: 2, DUPLICATE: 1, WAITING: 2}
    assert tl.fragments == 2
    assert tl.packets == tl.tcp_packets + tl.fragments + sum(tl.skipped.values())


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize(("v6", "timeout"), [(False, 30.0), (True, 60.0)], ids=["ipv4", "ipv6"])
def test_a_datagram_times_out_as_the_kernels_do(v6, timeout, kernels) -> None:
    f, one, two = two_datagrams(v6)
    t = f.frames[3][0]
    late = t + timeout + 1
    with running(kernels):
        # missing its middle fragment: held while the capture goes on, then timed out
        frames = [*f.frames[:3], (t, 1, one[0]), (t, 1, one[2])]
        tl = tracked(frames).tl
        assert tl.skipped == {WAITING: 2}
        tl = tracked([*frames, (t + timeout - 1, 1, f.frames[4][2])]).tl
        assert tl.skipped == {WAITING: 2}  # not yet
        tl = tracked([*frames, (late, 1, f.frames[4][2])]).tl
        assert tl.skipped == {TIMED_OUT: 2}
        assert len(list(tl.segments(0))) == 4
        # the first fragment missing: timed out without it
        tl = tracked([*f.frames[:3], (t, 1, one[1]), (t, 1, one[2]), (late, 1, f.frames[4][2])]).tl
        assert tl.skipped == {NO_FIRST: 2}
        # its last fragment after the time: the datagram is gone, the late one starts another
        tl = tracked([*f.frames[:3], (t, 1, one[0]), (t, 1, one[1]), (late, 1, one[2]), (late, 1, two[0]),
                      (late, 1, two[1]), (late, 1, two[2])]).tl
        assert tl.skipped == {TIMED_OUT: 2, WAITING: 1}
        assert [s.len for s in tl.segments(0)] == [0, 0, 0, 600]


@needs_tshark
def test_the_command_line_counts_what_waits(tmp_path) -> None:
    """Through the command line: a datagram missing a fragment is counted as waiting (in the text
    summary too), the segments around it equal tshark's."""
    f, one, two = two_datagrams()
    t = f.frames[3][0]
    frames = [*f.frames[:3], (t, 1, one[0]), (t, 1, one[2]), (t + 0.1, 1, two[2]), (t + 0.1, 1, two[1]),
              (t + 0.1, 1, two[0])]
    path = write_frames_pcap(tmp_path / "loss.pcap", frames)
    ours, theirs = tcpview_rows(path), tshark_rows(path)
    assert ours == theirs and sorted(ours) == [1, 2, 3, 8]
    s = summary(path)
    assert (s["fragments"], s["skipped"]) == (2, {WAITING: 2})
    rc, out, _err = cli_here("summary", str(path))
    assert rc == 0 and "4 TCP (and 2 IP fragments reassembled into them)" in out
    assert f"{WAITING} 2" in out


@pytest.mark.parametrize("kernels", KERNELS)
def test_a_flood_of_incomplete_datagrams_stays_within_the_table(kernels) -> None:
    f = Flow(cport=43000)
    f.handshake()
    f.c("PA", b"z" * 600)
    first = fragments_of(f.frames[3][2], 1, 256)[0]
    flood_n = reassembly.SLOTS + 100
    t = f.frames[2][0] + 0.001
    flood = []
    for k in range(flood_n):  # first fragments of datagrams whose rest never comes (ids differ)
        pkt = bytearray(first)
        pkt[18:20] = (1000 + k).to_bytes(2, "big")
        flood.append((t, 1, bytes(pkt)))
    real = fragments_of(f.frames[3][2], 7, 256)
    frames = [*f.frames[:3], *flood, *((t, 1, p) for p in real)]
    with running(kernels):
        tl = tracked(frames).tl
        assert tl.skipped == {WAITING: reassembly.SLOTS, FULL: 100 + len(real)}
        assert len(list(tl.segments(0))) == 3
        # 30 s on, the table empties (timed out) and the same datagram goes through
        later = [(t + 31, 1, p) for p in real]
        tl = tracked([*frames, *later]).tl
        assert tl.skipped == {TIMED_OUT: reassembly.SLOTS, FULL: 100 + len(real)}
        assert [s.len for s in tl.segments(0)] == [0, 0, 0, 600]


def test_the_bytes_held_are_bounded() -> None:
    """Fragments whose bytes add up past the kernel's 4 MB: those past it are dropped. (Later
    fragments of 70 datagrams, 1480 bytes each; the frames are cut by a snap length: the IP
    header tells the length.)"""
    per, frames = 1480, []
    for d in range(70):
        for j in range(1, 44):
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + per, d, 0x2000 | (j * per // 8), 64, 6, 0,
                             bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            frames.append(bytes(eth(type=0x0800)) + ip + b"\0" * 8)
    tr = Tracker()
    tr.feed_records((k, 1.0, 1, raw, 0, len(raw), 14 + 20 + per) for k, raw in enumerate(frames, 1))
    kept = reassembly.MAX_BYTES // per
    assert tr.tl.skipped == {WAITING: kept, LIMIT: len(frames) - kept}


# -- the corpus ------------------------------------------------------------------------------------------
@needs_tshark
def test_the_corpus_fragmented_syn_equals_tshark() -> None:
    corpus = corpus_dir()
    path = corpus / "zeek__ipv4-fragmented-syn.pcap" if corpus else None
    if path is None or not path.exists():
        pytest.skip("corpus of public captures not found")
    assert tcpview_rows(path) == tshark_rows(path) == {2: (1000, 0, 0, None)}
    s = summary(path)
    assert (s["packets"], s["tcp_packets"], s["fragments"], s["skipped"]) == (2, 1, 1, {})
