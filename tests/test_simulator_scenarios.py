"""The simulator: the tracker against the simulated endpoints, and each scenario."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter

import pytest
from simhelp import FINITE, Run, _assert_tracker_matches_truth, send_sizes, step

from tcpview.engine.core.tcp import flag_names
from tcpview.sim.steps import Scan
from tcpview.textutil import ip_text


# -- the tracker against the simulated endpoints ------------------------------------------------
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
