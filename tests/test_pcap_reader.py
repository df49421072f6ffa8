"""The capture reader: pcap (micro/nanosecond, both byte orders), pcapng with several
interfaces of different link types, damaged files, and a stream on stdin read as it arrives."""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys

import pytest
from helpers import (
    DLT_EN10MB,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    DLT_RAW,
    REPO,
    Flow,
    eth,
    many_connections,
    pcap_bytes,
    pcapng_bytes,
    seg_states,
    wrap,
    write_frames_pcap,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP

from tcpview.engine.pump import load
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources.pcap import CaptureError, CaptureReader

TS = [1000.000001, 1000.123456, 1001.5, 1002.999999]
TS_NS = [1000.000000001, 1000.123456789, 1001.5, 1002.999999999]


def frames4(n: int = 4) -> list[bytes]:
    out = []
    for i in range(n):
        out.append(bytes(eth() / IP(src="10.1.1.1", dst="10.1.1.2") / TCP(sport=5000 + i, dport=80, flags="S")))
    return out


def read_all(path) -> list[tuple]:
    with CaptureReader(str(path)) as r:
        return [(f, ts, lt, bytes(buf[off:off + caplen]), caplen, orig) for f, ts, lt, buf, off, caplen, orig in r.records()]


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_pcap_resolutions_and_byte_orders(tmp_path, endian, nano):
    data = frames4()
    ts = TS_NS if nano else TS
    p = tmp_path / "x.pcap"
    p.write_bytes(pcap_bytes(list(zip(ts, data)), nano=nano, endian=endian))
    recs = read_all(p)
    assert [r[0] for r in recs] == [1, 2, 3, 4]
    assert [r[3] for r in recs] == data
    assert all(r[2] == DLT_EN10MB for r in recs)
    for r, t in zip(recs, ts):
        assert r[1] == pytest.approx(t, abs=2e-10 if nano else 2e-7)
    if nano:
        # nanoseconds survive: the two first frames are 123456788 ns apart
        assert (recs[1][1] - recs[0][1]) == pytest.approx(0.123456788, abs=1e-10)


def test_pcap_snaplen_cut_records_keep_original_length(tmp_path):
    full = bytes(eth() / IP(src="10.1.1.1", dst="10.1.1.2") / TCP(sport=1, dport=2, flags="PA") / (b"z" * 400))
    p = tmp_path / "cut.pcap"
    p.write_bytes(pcap_bytes([(1.0, full[:68], len(full))], snaplen=68))
    (rec,) = read_all(p)
    assert rec[4] == 68 and rec[5] == len(full)
    res = load(str(p))
    assert res.error is None
    assert res.timeline.connection(0).bytes == 400


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little", "big"])
def test_pcapng_interfaces_with_different_link_types(tmp_path, endian):
    # one conversation seen on three interfaces: Ethernet (usec), SLL (nsec), SLL2 and raw IP
    f = Flow(cip="10.9.0.1", sip="10.9.0.2", cport=41000, sport=8080, t0=50.0)
    ifaces = [(DLT_EN10MB, 6), (DLT_LINUX_SLL, 9), (DLT_LINUX_SLL2, 9), (DLT_RAW, 6)]
    links = ["ether", "sll", "sll2", "raw", "ether", "sll"]
    pkts = []
    plan = [("c", "S"), ("s", "SA"), ("c", "A"), ("c", "FA"), ("s", "FA"), ("c", "A")]
    for i, ((side, flags), link) in enumerate(zip(plan, links)):
        f.link = link
        getattr(f, side)(flags)
        ts, lt, raw = f.frames[-1]
        iid = [x[0] for x in ifaces].index(lt)
        pkts.append((iid, ts, raw))
    # a non-IP frame on the Ethernet interface in the middle
    pkts.insert(3, (0, 50.0035, bytes(eth() / ARP())))
    p = tmp_path / "multi.pcapng"
    p.write_bytes(pcapng_bytes(ifaces, pkts, endian=endian))
    recs = read_all(p)
    assert [r[0] for r in recs] == list(range(1, 8))
    assert [r[2] for r in recs] == [ifaces[i][0] for i, _t, _b in pkts]
    for r, (_i, ts, raw) in zip(recs, pkts):
        assert r[3] == raw
        assert r[1] == pytest.approx(ts, abs=1e-6)
    res = load(str(p))
    tl = res.timeline
    assert res.error is None
    assert (tl.packets, tl.tcp_packets, tl.skipped) == (7, 6, {"not ip": 1})
    assert len(tl.conns) == 1
    segs = list(tl.segments(0))
    assert [s.frame for s in segs] == [1, 2, 3, 5, 6, 7]
    assert (segs[-1].client_state, segs[-1].server_state) == ("TIME_WAIT", "CLOSED")


def test_pcapng_power_of_two_resolution(tmp_path):
    raw = frames4(1)[0]
    body = struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 1) + bytes([0x80 | 10]) + b"\0\0\0" + b"\0" * 4
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)

    def blk(t, b):
        b += b"\0" * (-len(b) % 4)
        return struct.pack("<II", t, len(b) + 12) + b + struct.pack("<I", len(b) + 12)

    ticks = 3 * 1024 + 512  # 3.5 s in 1/1024 s units
    epb = struct.pack("<IIIII", 0, 0, ticks, len(raw), len(raw)) + raw
    p = tmp_path / "pow2.pcapng"
    p.write_bytes(blk(0x0A0D0D0A, shb) + blk(1, body) + blk(6, epb))
    (rec,) = read_all(p)
    assert rec[1] == pytest.approx(3.5)


def test_pcapng_interface_with_unknown_link_type_is_counted_not_fatal(tmp_path):
    raw = frames4(1)[0]
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(pcapng_bytes([(DLT_EN10MB, 6), (147, 6)], [(0, 1.0, raw), (1, 1.1, b"\x01\x02\x03")]))
    res = load(str(p))
    assert res.error is None
    assert res.timeline.tcp_packets == 1
    assert sum(res.timeline.skipped.values()) == 1


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"", "empty"),
        (b"hello, this is not a capture at all\n" * 3, "not a pcap"),
        (b"\xd4\xc3", "not a pcap"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
    ids=["empty", "text", "two-bytes", "cut-header"],
)
def test_not_a_capture(tmp_path, content, fragment):
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError) as e, CaptureReader(str(p)) as r:
        list(r.records())
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_link_type(tmp_path):
    p = tmp_path / "lt.pcap"
    p.write_bytes(pcap_bytes([(1.0, b"\0" * 40)], linktype=147))
    with pytest.raises(CaptureError, match="link type 147"), CaptureReader(str(p)) as r:
        list(r.records())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        CaptureReader(str(tmp_path / "nope.pcap"))
    with pytest.raises(CaptureError, match="directory"):
        CaptureReader(str(tmp_path))


def test_cut_short_file_yields_good_records_then_raises(tmp_path):
    data = frames4()
    whole = pcap_bytes(list(zip(TS, data)))
    p = tmp_path / "cut.pcap"
    p.write_bytes(whole[:-10])
    got = []
    with pytest.raises(CaptureError, match="cut short"), CaptureReader(str(p)) as r:
        for rec in r.records():
            got.append(rec[0])
    assert got == [1, 2, 3]
    res = load(str(p))
    assert res.error and res.timeline.packets == 3


def test_corrupt_record_length(tmp_path):
    data = frames4(2)
    whole = bytearray(pcap_bytes(list(zip(TS, data))))
    second = 24 + 16 + len(data[0])
    struct.pack_into("<I", whole, second + 8, 0x7FFFFFF0)  # incl_len absurd
    p = tmp_path / "corrupt.pcap"
    p.write_bytes(bytes(whole))
    got = []
    with pytest.raises(CaptureError, match="corrupt"), CaptureReader(str(p)) as r:
        for rec in r.records():
            got.append(rec[0])
    assert got == [1]


def test_cut_short_pcapng(tmp_path):
    raw = frames4(3)
    p = tmp_path / "cut.pcapng"
    whole = pcapng_bytes([(DLT_EN10MB, 6)], [(0, 1.0 + i, b) for i, b in enumerate(raw)])
    p.write_bytes(whole[:-20])
    got = []
    with pytest.raises(CaptureError), CaptureReader(str(p)) as r:
        for rec in r.records():
            got.append(rec[0])
    assert got == [1, 2]


def test_ipv6_capture_end_to_end(tmp_path):
    f = Flow(cip="fd00::1", sip="fd00::2", link="ipv6")
    f.handshake()
    f.c("PA", b"six")
    p = tmp_path / "v6.pcap"
    p.write_bytes(pcap_bytes([(t, b) for t, _lt, b in f.frames], linktype=229))
    tl = load(str(p)).timeline
    assert tl.connection(0).client.ip == "fd00::1"
    assert tl.connection(0).bytes == 3


def test_feed_records_matches_feed_frame(tmp_path):
    # the reader's hot loop (feed_records) and frame-at-a-time feeding give the same timeline
    frames: list = []
    a = Flow(cport=40001, t0=1.0, frames=frames)
    b = Flow(cport=40002, t0=1.0005, sisn=2**32 - 5, frames=frames, link="ether")
    a.handshake()
    b.handshake()
    for i in range(20):
        a.c("PA", b"x" * (i + 1))
        a.s("A")
        b.s("PA", b"y" * 100)
        b.c("A", win=0 if i == 5 else 512)
    a.c("PA", b"x" * 3, seq=1001)  # retransmission
    a.c("FA")
    a.s("FA")
    a.c("A")
    b.c("RA")
    frames.sort(key=lambda x: x[0])
    p = tmp_path / "two.pcap"
    p.write_bytes(pcap_bytes([(t, raw) for t, _lt, raw in frames]))
    fast = load(str(p)).timeline
    slow = Tracker()
    with CaptureReader(str(p)) as r:
        for frame, ts, lt, buf, off, caplen, _orig in r.records():
            slow.feed_frame(frame, ts, lt, bytes(buf[off:off + caplen]))
    assert [c.n for c in fast.conns] == [c.n for c in slow.tl.conns]
    for cid in range(len(fast.conns)):
        assert [s.model_dump() for s in fast.segments(cid)] == [s.model_dump() for s in slow.tl.segments(cid)]
        assert fast.transitions(cid) == slow.tl.transitions(cid)
    assert fast.counters_at() == slow.tl.counters_at()
    assert seg_states(slow)[-1] == ("TIME_WAIT", "CLOSED")


def _stream_reader_proc() -> subprocess.Popen:
    code = (
        "import sys\n"
        "from tcpview.sources.pcap import CaptureReader\n"
        "for rec in CaptureReader('-').records():\n"
        "    print(rec[0], rec[2], rec[5], flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def _readline(p: subprocess.Popen, timeout: float = 10.0) -> bytes:
    r, _w, _x = select.select([p.stdout], [], [], timeout)
    assert r, "the reader did not hand out the record while the stream was still open"
    return p.stdout.readline()


def test_stdin_stream_is_read_as_it_arrives():
    data = frames4(3)
    whole = pcap_bytes(list(zip(TS, data)))
    hdr = 24
    recs = []
    pos = hdr
    for d in data:
        recs.append(whole[pos:pos + 16 + len(d)])
        pos += 16 + len(d)
    p = _stream_reader_proc()
    try:
        # header and the first record, split in the middle of the record header
        p.stdin.write(whole[:hdr] + recs[0][:7])
        p.stdin.flush()
        p.stdin.write(recs[0][7:])
        p.stdin.flush()
        assert _readline(p).split() == [b"1", b"1", str(len(data[0])).encode()]
        p.stdin.write(recs[1])
        p.stdin.flush()
        assert _readline(p).split()[0] == b"2"
        p.stdin.write(recs[2])
        p.stdin.close()
        assert p.stdout.readline().split()[0] == b"3"
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_stdin_pcapng_stream():
    raw = frames4(2)
    whole = pcapng_bytes([(DLT_EN10MB, 6)], [(0, 1.0, raw[0]), (0, 2.0, raw[1])])
    p = _stream_reader_proc()
    out, err = p.communicate(whole, timeout=20)
    assert p.returncode == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [b"1", b"2"]


def test_ipv6_over_sll2_in_pcap(tmp_path):
    lt, raw = wrap(IPv6(src="fd00::a", dst="fd00::b") / TCP(sport=33333, dport=22, flags="S"), "sll2")
    p = tmp_path / "sll2.pcap"
    p.write_bytes(pcap_bytes([(5.0, raw)], linktype=lt))
    tl = load(str(p)).timeline
    assert (tl.tcp_packets, tl.connection(0).client.state) == (1, "SYN_SENT")


def test_feed_records_matches_feed_frame_on_mixed_traffic(tmp_path):
    # the hot loop's shortcuts (one unpack for Ethernet+IPv4+TCP, established fast path) must
    # give what frame-at-a-time feeding gives, on everything that is not the plain case too
    from scapy.layers.inet import UDP, IPOption_RR

    frames = many_connections(40, seed=5)
    t_end = frames[-1][0]
    f = Flow(cport=45000, t0=t_end + 1, frames=frames)
    f.handshake()
    f.c("PA", b"k" * 10)
    f.s("A", win=0)  # zero window
    f.s("A", win=0)
    f.c("A", seq=1010)  # keep-alive (seq one below next)
    f.s("A")
    f.s("A")  # duplicate ACK
    opt = IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR()]) / TCP(
        sport=45000, dport=80, flags="PA", seq=1011, ack=5001) / b"with ip options"
    frames.append((f.t + 0.001, 1, bytes(eth() / opt)))
    frames.append((f.t + 0.002, 1, bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2", proto=6, frag=5) / (b"x" * 8))))
    frames.append((f.t + 0.003, 1, bytes(eth() / IP() / UDP())))
    frames.append((f.t + 0.004, 1, bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2))[:40]))
    g = Flow(cport=45001, t0=f.t + 0.01, link="vlan", frames=frames)
    g.handshake()
    g.c("PA", b"v" * 5)
    h = Flow(cport=45002, t0=f.t + 0.02, cip="fd00::1", sip="fd00::2", frames=frames)
    h.handshake()
    h.s("PA", b"6" * 6)
    frames.sort(key=lambda x: x[0])
    p = tmp_path / "mixed.pcap"
    p.write_bytes(pcap_bytes([(t, raw) for t, _lt, raw in frames]))
    fast = load(str(p)).timeline
    slow = Tracker()
    with CaptureReader(str(p)) as r:
        for frame, ts, lt, buf, off, caplen, orig in r.records():
            slow.feed(frame, ts, lt, bytes(buf[off:off + caplen]), 0, caplen, orig)
    assert (fast.packets, fast.tcp_packets, fast.skipped) == (slow.tl.packets, slow.tl.tcp_packets, slow.tl.skipped)
    assert fast.skipped == {"ip fragment (its datagram not complete yet)": 1, "not tcp": 1, "truncated tcp header": 1}
    assert len(fast.conns) == len(slow.tl.conns)
    for cid in range(len(fast.conns)):
        assert [s.model_dump() for s in fast.segments(cid)] == [s.model_dump() for s in slow.tl.segments(cid)]
        assert fast.transitions(cid) == slow.tl.transitions(cid)
    assert fast.counters_at() == slow.tl.counters_at()
    assert (fast.first_ts, fast.last_ts) == (slow.tl.first_ts, slow.tl.last_ts)
    opts_seg = [s for s in fast.segments(len(fast.conns) - 3) if s.len == len(b"with ip options")]
    assert len(opts_seg) == 1


def test_open_source_checks_a_path_before_handing_it_over(tmp_path):
    """The factory fails in one line for what is not a readable capture, before any reading."""
    from tcpview.sources.base import FileSource, open_source

    good = tmp_path / "good.pcap"
    good.write_bytes(pcap_bytes(list(zip(TS, frames4()))))
    src = open_source(str(good))
    assert isinstance(src, FileSource) and src.name == f"replay {good}" and not src.live
    with pytest.raises(CaptureError, match="no such file"):
        open_source(str(tmp_path / "nope.pcap"))
    with pytest.raises(CaptureError, match="is a directory, not a capture file"):
        open_source(str(tmp_path))
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a capture\n")
    for follow in (False, True):
        with pytest.raises(CaptureError, match="not a pcap or pcapng capture"):
            open_source(str(garbage), follow=follow)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert open_source(str(empty), follow=True).live  # being written: nothing to check yet


def test_open_source_reads_a_stream_from_the_descriptor_it_is_given(tmp_path):
    """``-`` with ``fd``: the pipe moved off descriptor 0 (as replay does for the keyboard)."""
    import threading

    from tcpview.sources.base import open_source

    r, w = os.pipe()
    os.write(w, pcap_bytes(list(zip(TS, frames4()))))
    os.close(w)
    try:
        src = open_source("-", fd=r)
        got = [rec[0] for rec in src.frames(threading.Event()) if rec is not None]
    finally:
        os.close(r)
    assert src.name == "replay stdin" and src.live and got == [1, 2, 3, 4] and src.error is None


def test_the_pump_reads_a_file_in_the_readers_batches_so_any_frame_comes_back(tmp_path):
    """A file reaches the tracker in the reader's own batches, which say where each frame is
    in the file: the viewer can show any frame's bytes, not only the most recent ones that a
    copy of every frame would keep (and the frames are not copied on the way)."""
    import threading

    from tcpview.engine.pump import Pump
    from tcpview.sources.base import FileSource

    frames = many_connections(20)
    path = write_frames_pcap(tmp_path / "many.pcap", frames)
    pump = Pump(FileSource(str(path)), pause_seconds=0.0)
    pump.frames.budget = 0  # no copies kept: each frame must come back from the file
    pump.run(threading.Event())
    assert pump.error is None and pump.frames_read == len(frames)
    for i, (_ts, lt, raw) in enumerate(frames, 1):
        assert pump.frames.get(i) == (lt, raw), i


@pytest.mark.parametrize("chunk", [5, 13, 30, 4096])
def test_a_section_in_the_other_byte_order_is_read_whatever_the_chunks(tmp_path, monkeypatch, chunk):
    """A pcapng section header gives its length in its own byte order: a big-endian section
    (or file) read in pieces that cut its header is read whole once the rest arrives, not
    reported cut short (a pipe delivers such pieces; the fuzzer found it)."""
    import tcpview.sources.pcap as pcap_module

    f = frames4()
    s1 = pcapng_bytes([(DLT_EN10MB, 6)], [(0, TS[0], f[0]), (0, TS[1], f[1])])
    s2 = pcapng_bytes([(DLT_EN10MB, 6)], [(0, TS[2], f[2]), (0, TS[3], f[3])], endian=">")
    monkeypatch.setattr(pcap_module, "CHUNK", chunk)
    for data, want in ((s1 + s2, [1, 2, 3, 4]), (s2, [1, 2])):
        p = tmp_path / "sections.pcapng"
        p.write_bytes(data)
        assert [r[0] for r in read_all(p)] == want


def test_packet_blocks_too_short_for_their_fields_are_corrupt(tmp_path):
    """A simple packet block shorter than 16 bytes, or an enhanced one shorter than 32, is
    damage: not a frame of negative length, and no field is read past the block."""
    head = pcapng_bytes([(DLT_EN10MB, 6)], [(0, TS[0], frames4()[0])])
    spb = struct.pack("<III", 3, 12, 12)
    epb = struct.pack("<IIII", 6, 16, 0, 16)
    for block in (spb, epb):
        p = tmp_path / "short-block.pcapng"
        p.write_bytes(head + block)
        got = []
        with pytest.raises(CaptureError, match="corrupt pcapng packet block after frame 1"), \
                CaptureReader(str(p)) as r:
            for batch in r.batches():
                got += batch.frames.caplen.tolist()
        assert got == [len(frames4()[0])]


def test_an_original_length_beyond_int32_does_not_hide_the_payload(tmp_path):
    """A record claiming an original length of 4 GB (damage) keeps a frame length no shorter
    than what was captured, so the IP header's length still gives the payload."""
    frame = bytes(eth() / IP(src="10.1.1.1", dst="10.1.1.2") / TCP(sport=5000, dport=80, flags="PA")
                  / (b"x" * 100))
    p = tmp_path / "huge-orig.pcap"
    p.write_bytes(pcap_bytes([(TS[0], frame, 0xFFFFFFFF)]))
    (rec,) = read_all(p)
    assert rec[5] >= rec[4] == len(frame)
    tl = load(str(p)).timeline
    assert tl.conns[0].records(0, 1)[0][4] == 100
