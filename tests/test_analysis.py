"""Analysis flags (retransmission, keep-alive, zero-window probe...) agree with tshark's.

The captures come from the simulator (``tcpview simulate``); tshark reads them independently
and its expert messages are the oracle.
"""

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

# tshark expert message -> tcpview analysis name
EXPERT = {
    "TCP keep-alive segment": "keep_alive",
    "ACK to a TCP keep-alive segment": "keep_alive_ack",
    "TCP Zero Window Probe": "window_probe",
    "TCP Zero Window segment": "zero_window",
    "This frame is a (suspected) out-of-order segment": "out_of_order",
    "This frame is a (suspected) retransmission": "retransmission",
    "Duplicate ACK": "dup_ack",
}


def _tshark_flags(pcap) -> dict[int, set[str]]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.analysis.flags", "-T", "fields",
         "-e", "frame.number", "-e", "_ws.expert.message"],
        capture_output=True, text=True, check=True,
    ).stdout
    flags: dict[int, set[str]] = {}
    for line in out.splitlines():
        frame, _, msgs = line.partition("\t")
        names = set()
        for msg in msgs.split(","):
            for text, name in EXPERT.items():
                if msg.startswith(text):
                    names.add(name)
        if names:
            flags[int(frame)] = names
    return flags


def _ours(pcap) -> dict[int, set[str]]:
    out = subprocess.run([sys.executable, "-m", "tcpview", "export", str(pcap)],
                         capture_output=True, text=True, check=True).stdout
    flags = {}
    for line in out.splitlines():
        seg = json.loads(line)
        names = set(seg["analysis"]) & set(EXPERT.values())
        if names:
            flags[seg["frame"]] = names
    return flags


@pytest.mark.parametrize("scenario", ["zero-window", "keepalive", "retransmit-timeout", "lost-fin"])
def test_analysis_flags_equal_tsharks(scenario, tmp_path) -> None:
    pcap = tmp_path / f"{scenario}.pcap"
    subprocess.run([sys.executable, "-m", "tcpview", "simulate", scenario, "-w", str(pcap)],
                   capture_output=True, check=True)
    theirs = _tshark_flags(pcap)
    ours = _ours(pcap)
    assert theirs, "the scenario should make tshark flag something"
    assert ours == theirs


def test_expert_rtts_are_each_segments_ack_rtt_when_the_clock_stepped_back() -> None:
    """``expert``'s ACK RTTs are each segment's Wireshark ack_rtt from the times as captured:
    where the clock stepped back (the table keeps the clock's time, the captured one aside),
    the report's samples are still the segments' own, not the clock's."""
    from helpers import many_connections, track

    from tcpview.engine.analysis.expert_report import expert_report

    frames = many_connections(60)
    for k in range(len(frames) // 5, len(frames), len(frames) // 5):  # a few frames stamped early
        frames[k] = (frames[k - 1][0] - 0.05, *frames[k][1:])
    tl = track(frames).tl
    v = tl.view()
    assert v.n["seg_back"]
    samples: list = []
    expert_report(tl, samples)
    got = {cid: s.tolist() for cid, s in samples}
    moved = 0
    for cid in range(len(tl.conns)):
        c = tl.conns[cid]
        want = [r for i in range(len(c.rows)) if (r := c.ack_rtt(i)) is not None]
        assert got.get(cid, []) == want, cid
        acked = c.numbers()[0]
        idx = [i for i in range(len(c.rows)) if acked[i] >= 0]
        clock = [float(v.segs.ts[c.rows[i]] - v.segs.ts[c.rows[acked[i]]]) for i in idx]
        moved += [x for x in clock if x != 0] != want
    assert moved  # some samples differ from the clock's times: the captured ones were taken


def test_a_segment_resent_exactly_one_initial_rtt_later_is_what_tshark_says(tmp_path) -> None:
    """Wireshark calls a segment behind nextseq out of order when it comes less than the
    initial RTT after nextseq moved, and a retransmission otherwise: compared in whole
    nanoseconds. Times at a microsecond's edge, at 300 different moments: the segment sent
    again exactly one initial RTT later (a retransmission) and one microsecond sooner (out of
    order). As float seconds since 1970, the two differences are each a little off, and
    tcpview said out of order for 52 of the 300 retransmissions."""
    import random

    from scapy.all import IP, TCP, Ether, Raw, wrpcap

    rnd = random.Random(7)
    frames = []
    for k in range(300):
        base = 1796547532 + 10 * k + rnd.randint(0, 999999) / 1e6
        irtt = rnd.randint(50, 3000)  # µs
        sooner = k % 2  # odd: a microsecond within the initial RTT

        def seg(c2s: bool, flags: str, seq: int, ack: int, data: bytes = b"", at: int = 0, port: int = 20000 + k):
            ip = IP(src="10.0.0.1", dst="10.0.0.2") if c2s else IP(src="10.0.0.2", dst="10.0.0.1")
            tcp = TCP(sport=port, dport=80, flags=flags, seq=seq, ack=ack, window=65535) if c2s else \
                TCP(sport=80, dport=port, flags=flags, seq=seq, ack=ack, window=65535)
            frame = Ether() / ip / tcp / (Raw(data) if data else b"")
            frame.time = base + at / 1e6
            return frame

        t = irtt + 5000
        frames += [seg(True, "S", 1000, 0), seg(False, "SA", 5000, 1001, at=irtt // 2),
                   seg(True, "A", 1001, 5001, at=irtt), seg(True, "PA", 1001, 5001, b"a" * 100, at=t),
                   seg(True, "PA", 1101, 5001, b"b" * 100, at=t + 100),
                   seg(True, "PA", 1001, 5001, b"a" * 100, at=t + 100 + irtt - sooner)]
    frames.sort(key=lambda f: f.time)
    pcap = tmp_path / "edge.pcap"
    wrpcap(str(pcap), frames)
    theirs = _tshark_flags(pcap)
    assert sum("out_of_order" in v for v in theirs.values()) == 150
    assert sum("retransmission" in v for v in theirs.values()) == 150
    assert _ours(pcap) == theirs
