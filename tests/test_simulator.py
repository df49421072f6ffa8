"""The simulator: real frames from RFC 9293 endpoints, through the normal decoder and tracker.

Every built-in scenario is run and its frames are fed to :class:`tcpview.tracker.Tracker`
exactly as a capture's records are (``feed_records``). The expected end states and counts come
from the scenario files (their ``count``, ``ports``, ``listen``, byte sizes) and from RFC 9293,
and the tracker's view of each endpoint is also compared with the simulated endpoint's own
state (the ground truth the simulator holds).
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from conftest import cli
from tcpview.cli import main
from tcpview.decode import decode, ip_text, parse_options
from tcpview.model import STATE_NAMES, flag_names
from tcpview.sim import Engine, SimSource, builtin_names, load, parse
from tcpview.sim.frames import build_frame, build_frame_reference
from tcpview.sim.scenario import Repeat, Scan, ScenarioError, Send
from tcpview.tracker import Tracker

SCEN_DIR = Path(__file__).resolve().parent.parent / "tcpview" / "sim" / "scenarios"
FINITE = [n for n in builtin_names() if n != "busy"]


# -- helpers ------------------------------------------------------------------------------------
class Run:
    """One scenario run: the simulator's frames and the tracker fed with them."""

    def __init__(self, name: str, seed: int | None = None, **bounds) -> None:  # type: ignore[no-untyped-def]
        self.scenario = load(name)
        self.engine = Engine(self.scenario, seed, record=True)
        self.frames = list(self.engine.frames(**bounds))
        self.tracker = Tracker()
        self.tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in self.frames)
        self.tl = self.tracker.tl

    @property
    def model(self):  # type: ignore[no-untyped-def]
        return self.scenario.model

    def states(self) -> list[tuple[str, str]]:
        """The tracker's (client, server) state names per connection, at the end."""
        return [(STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]) for c in self.tl.conns]

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.tl.counters_at(None).items() if v}

    def segments(self) -> list:
        return list(self.tl.all_segments_in_frame_order())

    def kind(self, kind: str) -> list:
        return [f for f in self.frames if f.kind == kind]

    def transitions(self, cid: int = 0) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"client": [], "server": []}
        for tr in self.tl.transitions(cid):
            out[tr.side].append(tr.new)
        return out


def step(model, op: str, nth: int = 0):  # type: ignore[no-untyped-def]
    """The nth step with this op in the scenario's main steps."""
    return [s for s in model.steps if s.op == op][nth]


def send_sizes(steps: list, by: str) -> int:
    """Bytes the scenario's ``send`` steps of ``by`` write (fixed sizes only)."""
    total = 0
    for s in steps:
        if isinstance(s, Send) and s.by == by:
            if s.data is not None:
                total += len(s.data.encode())
            else:
                lo, hi = s.size
                assert lo == hi, "a random size has no single expected value"
                total += lo
    return total


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """Every finite built-in scenario, run once with its default seed."""
    return {name: Run(name) for name in FINITE}


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


# -- the tracker against the simulated endpoints ------------------------------------------------
def _assert_tracker_matches_truth(r: Run, spoofed_clients: bool = False) -> None:
    truth = {key: (STATE_NAMES[c], STATE_NAMES[s]) for key, c, s in r.engine.truth()}
    assert len(truth) == len(r.tl.conns)
    for c in r.tl.conns:
        key = (ip_text(c.family, c.cip), c.cport, ip_text(c.family, c.sip), c.sport)
        got = (STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]])
        want = truth[key]
        if spoofed_clients:
            # a spoofed source has no endpoint; an observer only saw its SYN
            want = ("SYN_SENT", want[1])
        assert got == want, (r.scenario.name, key, "tracker", got, "endpoints", want)


@pytest.mark.parametrize("name", FINITE)
def test_tracker_agrees_with_the_simulated_endpoints(runs: dict[str, Run], name: str) -> None:
    r = runs[name]
    assert r.engine.done
    _assert_tracker_matches_truth(r, spoofed_clients=name == "syn-flood")
    assert r.tl.tcp_packets == len(r.frames)
    assert not r.tl.skipped


# -- each scenario, with expectations from its definition ---------------------------------------
def _handshake_like(r: Run) -> None:
    assert r.states() == [("TIME_WAIT", "CLOSED")]
    assert r.counters() == {"TIME_WAIT": 1}
    tr = r.transitions()
    assert tr["client"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert tr["server"] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    segs = r.segments()
    c2s = sum(s.len for s in segs if s.dir == "c2s")
    s2c = sum(s.len for s in segs if s.dir == "s2c")
    assert (c2s, s2c) == (send_sizes(r.model.steps, "client"), send_sizes(r.model.steps, "server"))
    # SYN and FIN take one sequence number each: the last ACKs acknowledge data + 2
    last_c, last_s = [s for s in segs if s.dir == "c2s"][-1], [s for s in segs if s.dir == "s2c"][-1]
    assert last_c.ack == s2c + 2 and last_s.ack == c2s + 2
    assert not any(s.analysis for s in segs)


def test_handshake(runs: dict[str, Run]) -> None:
    _handshake_like(runs["handshake"])


def test_ipv6(runs: dict[str, Run]) -> None:
    r = runs["ipv6"]
    assert r.frames[0].data[12:14] == b"\x86\xdd"
    c = r.tl.conns[0]
    assert c.family == 6
    assert ip_text(6, c.cip) == str(ipaddress.ip_address(r.model.client.ip))
    _handshake_like(r)


def test_half_close_data_flows_after_the_first_fin(runs: dict[str, Run]) -> None:
    r = runs["half-close"]
    steps = r.model.steps
    k = next(i for i, s in enumerate(steps) if s.op == "shutdown")
    assert steps[k].by == "client"
    after = send_sizes(steps[k + 1:], "server")
    assert after > 0
    segs = r.segments()
    fin = next(s for s in segs if s.dir == "c2s" and "FIN" in s.flags)
    late = [s for s in segs if s.frame > fin.frame and s.dir == "s2c" and s.len]
    assert sum(s.len for s in late) == after
    assert all(s.client_state in ("FIN_WAIT_1", "FIN_WAIT_2") and s.server_state == "CLOSE_WAIT" for s in late)
    # the client, half-closed, still acknowledges every byte
    last_ack = max(s.ack for s in segs if s.dir == "c2s")
    assert last_ack == send_sizes(steps, "server") + 2
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_simultaneous_open(runs: dict[str, Run]) -> None:
    r = runs["simultaneous-open"]
    syns = [s for s in r.segments() if s.flags == ["SYN"]]
    assert [s.dir for s in syns] == ["c2s", "s2c"]  # two bare SYNs, crossing
    whys = [(t.side, t.old, t.new, t.why) for t in r.tl.transitions(0)]
    assert ("client", "SYN_SENT", "SYN_RECEIVED", "simultaneous_open") in whys
    assert ("server", "LISTEN", "SYN_RECEIVED", "simultaneous_open") in whys
    tr = r.transitions()
    assert tr["client"][:3] == ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"]
    assert "ESTABLISHED" in tr["server"]
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_simultaneous_close_both_pass_closing_and_wait(runs: dict[str, Run]) -> None:
    r = runs["simultaneous-close"]
    assert step(r.model, "close").by == "both"
    tr = r.transitions()
    assert tr["client"][-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    # the capture is beside the client: its FIN is seen first, so the observer has the server
    # in CLOSE_WAIT until the server's FIN (sent before the client's arrived) shows the crossing
    assert tr["server"][-3:] == ["CLOSE_WAIT", "CLOSING", "TIME_WAIT"]
    fins = [s for s in r.segments() if "FIN" in s.flags]
    assert len(fins) == 2 and fins[0].dir != fins[1].dir
    assert fins[1].ack == fins[0].seq  # the second FIN does not acknowledge the first: they crossed
    assert r.states() == [("TIME_WAIT", "TIME_WAIT")]
    assert r.counters() == {"TIME_WAIT": 2}


def test_refused(runs: dict[str, Run]) -> None:
    r = runs["refused"]
    port = step(r.model, "connect").port
    assert port not in r.model.server.listen
    segs = r.segments()
    assert [s.flags for s in segs] == [["SYN"], ["RST", "ACK"]]
    assert segs[1].ack == 1  # the RST acknowledges the SYN's one sequence number
    assert r.states() == [("CLOSED", "CLOSED")]
    assert r.tl.connection(0).notes == ["refused"]
    assert r.counters() == {}


def test_abort_rst_mid_stream(runs: dict[str, Run]) -> None:
    r = runs["abort"]
    who = step(r.model, "rst").by
    segs = r.segments()
    rst = [s for s in segs if "RST" in s.flags]
    assert len(rst) == 1 and rst[0].dir == ("c2s" if who == "client" else "s2c")
    assert rst[0].frame == segs[-1].frame
    assert not any("FIN" in s.flags for s in segs)
    before = sum(s.len for s in segs if s.dir == "s2c")
    assert before == send_sizes(r.model.steps, "server")
    before_rst = segs[-2]  # states are recorded as they are after each segment
    assert before_rst.client_state == before_rst.server_state == "ESTABLISHED"
    assert r.states() == [("CLOSED", "CLOSED")]
    assert "reset" in r.tl.connection(0).notes


def _retransmissions(r: Run) -> set[int]:
    return {s.frame for s in r.segments() if "retransmission" in s.analysis}


def test_retransmission_after_timeout(runs: dict[str, Run]) -> None:
    r = runs["retransmit-timeout"]
    lose = step(r.model, "lose")
    lost = [f for f in r.frames if f.lost]
    again = r.kind("rto")
    assert len(lost) == len(lose.which) == 1 and len(again) == 1
    assert lost[0].dir == again[0].dir == (0 if lose.by == "client" else 1)
    n = lost[0].length
    assert n > 0 and (again[0].seq, again[0].length, again[0].data[-n:]) == (lost[0].seq, n, lost[0].data[-n:])
    # no duplicate ACKs came, so only the timer (RTO >= rto_min) resends it
    assert again[0].t_us - lost[0].t_us >= r.model.client.rto_min * 1e6
    assert _retransmissions(r) == {again[0].frame}
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_fast_retransmit_after_three_duplicate_acks(runs: dict[str, Run]) -> None:
    r = runs["fast-retransmit"]
    lose = step(r.model, "lose")
    sent = step(r.model, "send")
    lost = [f for f in r.frames if f.lost]
    fast = r.kind("fast")
    assert len(lost) == 1 and len(fast) == 1
    assert fast[0].seq == lost[0].seq and fast[0].length == lost[0].length
    segs = {s.frame: s for s in r.segments()}
    # the segments sent after the lost one each draw a duplicate ACK; three come before the resend
    mss = r.model.server.mss - 12
    nsegs = math.ceil(sent.size[0] / mss)
    later = nsegs - lose.which[0]
    dups = [s for s in segs.values() if "dup_ack" in s.analysis]
    assert len(dups) == later
    assert sum(1 for s in dups if s.frame < fast[0].frame) >= 3
    assert _retransmissions(r) == {fast[0].frame}
    # then one cumulative ACK covers everything (the later duplicates were already on their way)
    after = [s for s in segs.values() if s.frame > fast[0].frame and s.dir == "s2c" and s.ack > dups[0].ack]
    assert after[0].ack == sent.size[0] + 1


def test_lost_fin_is_retransmitted(runs: dict[str, Run]) -> None:
    r = runs["lost-fin"]
    fins = [s for s in r.segments() if s.dir == "c2s" and "FIN" in s.flags]
    assert len(fins) == 2 and fins[0].seq == fins[1].seq
    # an observer cannot tell the first FIN was lost: it moves the states once, on the first
    # copy, and the retransmission moves nothing again
    assert (fins[0].client_state, fins[0].server_state) == ("FIN_WAIT_1", "CLOSE_WAIT")
    assert (fins[1].client_state, fins[1].server_state) == ("FIN_WAIT_1", "CLOSE_WAIT")
    segs = r.segments()
    acked = next(s for s in segs if s.dir == "s2c" and s.ack == fins[0].seq + 1)
    assert acked.frame > fins[1].frame  # only the second copy was acknowledged
    t_us = {f.frame: f.t_us for f in r.frames}
    assert t_us[fins[1].frame] - t_us[fins[0].frame] >= r.model.client.rto_min * 1e6
    assert _retransmissions(r) == {fins[1].frame} == {f.frame for f in r.kind("rto")}
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_zero_window_and_probes(runs: dict[str, Run]) -> None:
    r = runs["zero-window"]
    m = r.model
    assert m.server.wscale is None
    segs = r.segments()
    zero = [s for s in segs if s.dir == "s2c" and s.win == 0 and "SYN" not in s.flags]
    probes = r.kind("probe")
    assert zero and len(probes) >= 3
    # every probe is one byte at the next sequence number, answered with the window still 0
    by_frame = {s.frame: s for s in segs}
    for p in probes:
        s = by_frame[p.frame]
        assert s.len == 1 and s.dir == "c2s"
        reply = next(x for x in segs if x.frame > p.frame and x.dir == "s2c")
        assert reply.win == 0 and reply.ack == s.seq
    gaps = [b.t_us - a.t_us for a, b in zip(probes, probes[1:], strict=False)]
    assert all(g2 > g1 for g1, g2 in zip(gaps, gaps[1:], strict=False))  # the persist timer backs off
    # the receiver buffered exactly its window before advertising zero
    first_zero = zero[0]
    assert first_zero.ack - 1 == m.server.window
    # the window update reopens it and every byte arrives
    upd = r.kind("window_update")
    assert len(upd) == 1 and by_frame[upd[0].frame].win > 0
    assert max(s.ack for s in segs if s.dir == "s2c") == send_sizes(m.steps, "client") + 2
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_keepalives(runs: dict[str, Run]) -> None:
    r = runs["keepalive"]
    idle = r.model.client.keepalive
    wait = step(r.model, "wait").seconds[0]
    ka = r.kind("keepalive")
    rtt = r.model.network.rtt
    assert math.floor(wait / (idle + rtt)) <= len(ka) <= math.floor(wait / idle)
    segs = {s.frame: s for s in r.segments()}
    for f in ka:
        s = segs[f.frame]
        assert s.len == 0 and s.flags == ["ACK"] and s.dir == "c2s"
        nxt = max(x.seq + x.len for x in segs.values() if x.dir == "c2s" and x.frame < f.frame)
        assert s.seq == nxt - 1  # one sequence number back: the peer must answer
        reply = next(x for x in segs.values() if x.frame > f.frame)
        assert reply.dir == "s2c" and reply.ack == nxt
    assert "keep_alive" in segs[ka[0].frame].analysis
    assert r.states() == [("TIME_WAIT", "CLOSED")]


def test_syn_flood_leaves_half_open_connections(runs: dict[str, Run]) -> None:
    r = runs["syn-flood"]
    rep = step(r.model, "repeat")
    n = rep.count
    src = ipaddress.ip_network(rep.steps[0].src)
    assert len(r.tl.conns) == n
    assert r.counters() == {"SYN_RECEIVED": n, "SYN_SENT": n}
    assert all(ipaddress.ip_address(ip_text(4, c.cip)) in src for c in r.tl.conns)
    assert all(st == ("SYN_SENT", "SYN_RECEIVED") for st in r.states())
    # the server retransmits its SYN,ACKs while it waits (initial RTO 1 s, then doubling)
    retx = r.kind("rto")
    assert retx and all(f.flags == 0x12 and f.dir == 1 for f in retx)
    assert _retransmissions(r) == {f.frame for f in retx}


@pytest.mark.parametrize("name", ["scan-fin", "scan-null", "scan-syn", "scan-xmas"])
def test_port_scans(runs: dict[str, Run], name: str) -> None:
    r = runs[name]
    scan = step(r.model, "scan")
    assert isinstance(scan, Scan)
    open_ports = set(scan.ports) & set(r.model.server.listen)
    closed = set(scan.ports) - open_ports
    assert open_ports and closed
    assert len(r.tl.conns) == len(scan.ports)
    by_port: dict[int, list] = {}
    for s in r.segments():
        c = r.tl.conns[s.conn]
        by_port.setdefault(c.sport, []).append(s)
    probe = ",".join(flag_names(scan.flags)) or "none"
    for port, segs in by_port.items():
        flags = [",".join(s.flags) or "none" for s in segs]
        assert segs[0].dir == "c2s" and flags[0] == probe
        if port in closed:
            assert flags[1:] == ["RST,ACK"], (port, flags)
        elif name == "scan-syn":
            assert flags[1:] == ["SYN,ACK", "RST"], (port, flags)  # the scanner's kernel resets it
        else:
            assert flags[1:] == [], (port, flags)  # RFC 9293: LISTEN drops it silently
    notes = Counter(n for c in r.tl.connections() for n in c.notes)
    if name == "scan-syn":
        assert notes["refused"] == len(closed) and notes["reset"] == len(open_ports)
    else:
        assert notes["anomaly"] == len(scan.ports)
    assert r.counters() == {}


def test_close_wait_leak(runs: dict[str, Run]) -> None:
    r = runs["close-wait-leak"]
    rep = step(r.model, "repeat")
    ops = [s.op for s in rep.steps]
    assert "close" in ops and all(s.by == "client" for s in rep.steps if s.op == "close")
    n = rep.count
    assert r.counters() == {"CLOSE_WAIT": n, "FIN_WAIT_2": n}
    assert all(st == ("FIN_WAIT_2", "CLOSE_WAIT") for st in r.states())


def test_time_wait_storm(runs: dict[str, Run]) -> None:
    r = runs["time-wait-storm"]
    rep = step(r.model, "repeat")
    closes = [s.by for s in rep.steps if s.op == "close"]
    assert closes[0] == "client"
    n = rep.count
    assert len(r.tl.conns) == n
    assert r.counters() == {"TIME_WAIT": n}
    assert all(st == ("TIME_WAIT", "CLOSED") for st in r.states())
    # each connection has its own ephemeral port
    assert len({c.cport for c in r.tl.conns}) == n


def test_time_wait_ends_after_2msl_in_the_tracker(runs: dict[str, Run]) -> None:
    r = runs["time-wait-storm"]
    msl2 = r.model.network.msl2
    r.tracker.advance(r.frames[-1].ts + msl2 + 1)
    assert r.tl.counters_at(None)["TIME_WAIT"] == 0


# -- the source ---------------------------------------------------------------------------------
def test_source_yields_capture_records() -> None:
    src = SimSource(load("handshake"), paced=False)
    assert src.live is False and src.progress() is None
    recs = [r for r in src.frames(threading.Event()) if r is not None]
    assert len(recs) == src.status()["frames"] == 15
    for i, (frame, ts, lt, data, off, caplen, origlen) in enumerate(recs, 1):
        assert (frame, lt, off, caplen, origlen) == (i, 1, 0, len(data), len(data))
        assert isinstance(data, bytes) and ts > 1.6e9
    assert [r[1] for r in recs] == sorted(r[1] for r in recs)
    # the same records a capture reader would give: the tracker takes them unchanged
    t = Tracker()
    t.feed_records(iter(recs))
    assert t.tl.counters_at(None)["TIME_WAIT"] == 1


def test_paced_source_follows_simulated_time_scaled_by_speed() -> None:
    scen = load("keepalive")  # 35 s of idle time with probes in it
    total = Run("keepalive").frames[-1].ts - Run("keepalive").frames[0].ts
    speed = total / 0.4  # the whole scenario in about 0.4 s of wall time
    src = SimSource(scen, speed=speed)
    assert src.live is True and src.name == "demo keepalive"
    t0 = time.monotonic()
    idle = 0
    recs = []
    for r in src.frames(threading.Event()):
        if r is None:
            idle += 1
        else:
            recs.append((time.monotonic() - t0, r[1]))
    wall = time.monotonic() - t0
    assert wall >= total / speed * 0.95
    assert idle > 0  # it said it was waiting instead of blocking
    for w, ts in recs:  # no frame is handed out before its (scaled) time
        assert w >= (ts - recs[0][1]) / speed - 0.01


def test_paced_endless_source_stops_when_asked() -> None:
    src = SimSource(load("busy"), speed=50)
    stop = threading.Event()
    n = 0
    t0 = time.monotonic()
    for r in src.frames(stop):
        if r is not None:
            n += 1
        if n == 200:
            stop.set()
    assert n == 200 and time.monotonic() - t0 < 30
    assert src.status()["connections"] > 0


def test_set_speed_while_running() -> None:
    src = SimSource(load("keepalive"), speed=1.0)
    stop = threading.Event()
    it = src.frames(stop)
    first = next(r for r in it if r is not None)
    src.set_speed(1e6)  # the 35 s of waiting now take no time
    t0 = time.monotonic()
    rest = [r for r in it if r is not None]
    assert time.monotonic() - t0 < 5
    assert first[0] == 1 and len(rest) == 16


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
    from tcpview.sim_cli import DEFAULT_BOUND_SECONDS

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
