"""The simulator: frames and randomness."""

from __future__ import annotations

from collections import Counter

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from simhelp import SCEN_DIR, Run, _assert_tracker_matches_truth

from tcpview.engine.core.decode import decode
from tcpview.engine.core.tcpopts import parse_options
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sim import Engine, load, parse
from tcpview.sim.frames import build_frame, build_frame_reference

# -- frames -------------------------------------------------------------------------------------
FRAME_CASES = [
    dict(family=4, src="10.0.0.1", dst="10.0.0.2", flags=0x02, options=[("MSS", 1460), ("SAckOK", b""),
         ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)], payload=b""),
    dict(family=4, src="10.0.0.2", dst="10.0.0.1", flags=0x18, options=[("NOP", None), ("NOP", None),
         ("Timestamp", (99, 1))], payload=b"hello world" * 50),
    dict(family=6, src="2001:db8::1", dst="2001:db8::2", flags=0x11, options=[], payload=b""),
    dict(family=6, src="2001:db8::2", dst="2001:db8::1", flags=0x10, options=[("NOP", None), ("NOP", None),
         ("SAck", (1000, 2448, 3000, 4448))], payload=b"x" * 1448),
    dict(family=4, src="192.0.2.9", dst="10.0.0.2", flags=0x29, options=[], payload=b""),
]


@pytest.mark.parametrize("case", FRAME_CASES, ids=lambda c: f"v{c['family']}-{c['flags']:#x}")
def test_frame_is_what_scapy_builds_with_correct_checksums(case: dict) -> None:
    kw = dict(src_mac="02:00:00:00:00:01", dst_mac="02:00:5e:00:00:01", ttl=64, ip_id=4242, sport=40000,
              dport=80, seq=0xFFFFFFF0, ack=12345, window=502, **case)
    data = build_frame(**kw)
    assert data == build_frame_reference(**kw)
    pkt = Ether(data)
    ipl = pkt[IP] if case["family"] == 4 else pkt[IPv6]
    tcp = pkt[TCP]
    got_tcp, got_ip = tcp.chksum, getattr(ipl, "chksum", None)
    # recompute from scratch: scapy fills the checksums in again when they are deleted
    del tcp.chksum
    if case["family"] == 4:
        del ipl.chksum
        assert Ether(bytes(pkt))[IP].chksum == got_ip
    assert Ether(bytes(pkt))[TCP].chksum == got_tcp
    d = decode(data, 0, len(data), len(data), 1)
    assert d[0] == case["family"] and d[5] == 0xFFFFFFF0 and d[7] == case["flags"] and d[9] == len(case["payload"])


def test_syn_carries_mss_wscale_sack_and_timestamps(runs: dict[str, Run]) -> None:
    r = runs["handshake"]
    cfg = r.model
    syn, synack = r.frames[0], r.frames[1]
    for f, host in ((syn, cfg.client), (synack, cfg.server)):
        d = decode(f.data, 0, len(f.data), len(f.data), 1)
        opts = parse_options(f.data, d[10] + 20, d[10] + d[11])
        assert opts["mss"] == host.mss
        assert opts["ws"] == host.wscale
        assert opts.get("sack_perm") is True
        assert "ts" in opts
    assert syn.flags == 0x02 and synack.flags == 0x12


def test_every_frame_decodes_and_windows_fit_the_receive_buffer(runs: dict[str, Run]) -> None:
    for name, r in runs.items():
        shifts = {}
        for f in r.frames:
            d = decode(f.data, 0, len(f.data), len(f.data), 1)
            assert not isinstance(d, str), (name, f.frame, d)
            if f.flags & 0x02:
                opts = parse_options(f.data, d[10] + 20, d[10] + d[11])
                shifts[(f.conn, f.dir)] = opts.get("ws")
                continue
            if f.flags & 0x04:
                continue
            host = r.model.client if f.dir == 0 else r.model.server
            # RFC 7323: scaling applies only when both SYNs carried the option
            both = shifts.get((f.conn, 0)) is not None and shifts.get((f.conn, 1)) is not None
            shift = shifts[(f.conn, f.dir)] if both else 0
            assert d[8] << shift <= host.window + (1 << shift), (name, f.frame, d[8], shift)


# -- randomness ---------------------------------------------------------------------------------
def test_same_seed_same_frames_other_seed_other_isns() -> None:
    a = [(f.t_us, f.data) for f in Engine(load("time-wait-storm"), 7).frames()]
    b = [(f.t_us, f.data) for f in Engine(load("time-wait-storm"), 7).frames()]
    c = [(f.t_us, f.data) for f in Engine(load("time-wait-storm"), 8).frames()]
    assert a == b
    assert a != c
    isns_a = {decode(d, 0, len(d), len(d), 1)[5] for _t, d in a if d[47] == 0x02}
    isns_c = {decode(d, 0, len(d), len(d), 1)[5] for _t, d in c if d[47] == 0x02}
    assert len(isns_a) == 100 and not isns_a & isns_c


def test_busy_is_endless_and_deterministic_for_a_seed() -> None:
    scen = load("busy")
    assert not scen.finite
    # it keeps going, with connections of several kinds
    r = Run("busy", 4, max_seconds=6)
    assert 5_500_000 < r.frames[-1].t_us <= 6_000_000
    notes = Counter(n for c in r.tl.connections() for n in c.notes)
    assert len(r.tl.conns) > 30 and notes["refused"] > 0 and notes["reset"] > 0
    counters = r.counters()
    assert counters["TIME_WAIT"] > 20 and counters["CLOSE_WAIT"] > 0 and counters["ESTABLISHED"] > 0
    first = [(f.t_us, f.data) for f in r.frames[:800]]
    again = [(f.t_us, f.data) for f in Engine(scen, 4).frames(max_packets=800)]
    other = [(f.t_us, f.data) for f in Engine(scen, 5).frames(max_packets=800)]
    assert len(first) == 800 and first == again and first != other
    assert r.kind("fast") and r.kind("probe")


def test_busy_tracker_agrees_with_the_endpoints() -> None:
    """Cut where nothing is in flight: each tracked endpoint is in its simulated state."""
    scen = parse((SCEN_DIR / "busy.toml").read_text().replace('count = "forever"', "count = 80"),
                 "busy-80.toml", "busy-80")
    assert scen.finite
    r = Run.__new__(Run)
    r.scenario = scen
    r.engine = Engine(scen, 5, record=True)
    r.frames = list(r.engine.frames())
    r.tracker = Tracker()
    r.tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in r.frames)
    r.tl = r.tracker.tl
    assert r.engine.done and len(r.engine.conns) == len(r.tl.conns)
    _assert_tracker_matches_truth(r)
