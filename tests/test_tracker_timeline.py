"""Tracker: port reuse, the timeline at a cursor, and other situations."""

from __future__ import annotations

import pytest
from helpers import C, Flow, S, seg_states, states, track
from trackhelp import EST, HANDSHAKE, M32, closed_by_client, established  # noqa: F401


# -- port reuse: new connection ids -----------------------------------------------------------------
def test_new_syn_after_time_wait_is_a_new_connection():
    f = closed_by_client()
    g = Flow(cisn=9_000_000, sisn=7_000_000, t0=f.t + 1.0, frames=f.frames)  # same 4-tuple
    g.handshake()
    tr = track(f.frames)
    assert len(tr.tl.conns) == 2
    assert [s.conn for s in tr.tl.all_segments_in_frame_order()] == [0] * 7 + [1] * 3
    assert seg_states(tr, 1) == HANDSHAKE
    assert list(tr.tl.segments(1))[0].seq == 0
    # one 4-tuple is one socket on each host: the reused TIME_WAIT socket is gone
    assert tr.tl.counters_at()["TIME_WAIT"] == 0
    assert tr.tl.counters_at()["ESTABLISHED"] == 2


def test_new_syn_after_reset_is_a_new_connection():
    f = established()
    f.c("RA")
    g = Flow(cisn=50_000, t0=f.t + 0.5, frames=f.frames)
    g.c("S")
    tr = track(f.frames)
    assert len(tr.tl.conns) == 2
    assert states(tr, 0) == ("CLOSED", "CLOSED")
    assert states(tr, 1) == ("SYN_SENT", "LISTEN")


def test_new_syn_after_refusal_is_a_new_connection():
    f = Flow(sport=9)
    f.c("S")
    f.s("RA", seq=0)
    g = Flow(sport=9, cisn=2_000_000, t0=f.t + 1, frames=f.frames)
    g.c("S")
    tr = track(f.frames)
    assert len(tr.tl.conns) == 2
    assert seg_states(tr, 1) == [("SYN_SENT", "LISTEN")]


def test_connection_ids_in_order_of_first_packet():
    frames: list = []
    a = Flow(cport=40001, t0=1.0, dt=0.01, frames=frames)
    b = Flow(cport=40002, t0=1.005, dt=0.01, frames=frames)
    a.c("S")
    b.c("S")
    b.s("SA")
    a.s("SA")
    tr = track(frames)
    assert [tr.tl.connection(i).client.port for i in range(2)] == [40001, 40002]


# -- the timeline as of a cursor time ---------------------------------------------------------------
def test_counters_connection_and_states_at_cursor_times():
    f = closed_by_client(t0=10.0)  # frames at 10.001 .. 10.007
    g = Flow(cport=40001, t0=10.0035, dt=0.001, frames=[])
    g.handshake()  # 10.0045, 10.0055, 10.0065
    frames = sorted(f.frames + g.frames, key=lambda x: x[0])
    tr = track(frames)
    tl = tr.tl
    cid_b = 1
    assert tl.connection(cid_b).client.port == 40001
    c0 = tl.conns[0]
    assert c0.states_at(10.0005) == (0, 0)
    assert tl.counters_at(10.0015)["SYN_SENT"] == 1 and tl.counters_at(10.0015)["LISTEN"] == 1
    at = tl.counters_at(10.0042)  # a: FIN_WAIT_1/CLOSE_WAIT; b: not started
    assert (at["FIN_WAIT_1"], at["CLOSE_WAIT"], at["SYN_SENT"]) == (1, 1, 0)
    assert tl.conn_count_at(10.0042) == 1
    at = tl.counters_at(10.0050)  # a: FIN_WAIT_2/CLOSE_WAIT; b: SYN_SENT/LISTEN
    assert (at["FIN_WAIT_2"], at["CLOSE_WAIT"], at["SYN_SENT"], at["LISTEN"]) == (1, 1, 1, 1)
    at = tl.counters_at(None)
    assert (at["TIME_WAIT"], at["ESTABLISHED"], at["LAST_ACK"], at["CLOSE_WAIT"]) == (1, 2, 0, 0)
    assert sum(at.values()) == 3
    # connection() at a past time: packets, bytes and states as they were
    m = tl.connection(0, 10.0042)
    assert (m.client.state, m.server.state, m.packets) == ("FIN_WAIT_1", "CLOSE_WAIT", 4)
    m = tl.connection(0, None)
    assert (m.client.state, m.server.state, m.packets) == ("TIME_WAIT", "CLOSED", 7)
    # seeking backwards after a forward query gives the same answer
    assert tl.counters_at(10.0015)["SYN_SENT"] == 1


def test_only_capture_time_matters():
    f = closed_by_client()
    t_tw = f.frames[5][0]
    tr = track(f.frames)
    tr.advance(t_tw + 60)
    exp = [t for t in tr.tl.transitions(0) if t.why == "time_wait_expired"][0]
    # the expiry is stamped with capture time, not the wall clock
    assert exp.ts == pytest.approx(t_tw + 60)


def test_side_numbers_match_directions():
    f = established()
    f.c("PA", b"x")
    tr = track(f.frames)
    assert [s.dir for s in tr.tl.segments(0)] == ["c2s", "s2c", "c2s", "c2s"]
    assert C == 0 and S == 1


# -- more situations a passive observer meets -----------------------------------------------------
def test_synack_without_the_syn():
    # the capture starts just after the SYN: the SYN+ACK shows it was sent
    f = Flow()
    f.nxt[C] += 1  # the client's SYN (ISN 1000) happened before the capture
    f.s("SA")
    f.c("A")
    f.c("PA", b"abc")
    tr = track(f.frames)
    got = seg_states(tr)
    assert got[0] == ("SYN_SENT", "SYN_RECEIVED")
    assert got[1:] == [EST, EST]
    c = tr.tl.connection(0)
    assert (c.client.port, c.server.port) == (40000, 80)
    segs = list(tr.tl.segments(0))
    assert [(s.seq, s.ack) for s in segs] == [(0, 1), (1, 1), (1, 1)]


def test_client_aborts_during_the_handshake():
    f = Flow()
    f.c("S")
    f.s("SA")
    f.c("R", seq=1001)
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("CLOSED", "CLOSED")
    notes = tr.tl.connection(0).notes
    assert "reset" in notes and "refused" not in notes


def test_midstream_first_segment_is_a_fin():
    f = Flow(cport=50123, sport=443)
    f.c("FA")
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr) == [("FIN_WAIT_1", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT")]
    assert tr.tl.connection(0).partial


def test_every_frame_captured_twice_changes_no_state():
    # the same packets seen twice (e.g. captured on two interfaces): duplicates are
    # retransmissions to an observer and must not move any state a second time
    f = established()
    f.c("PA", b"hello")
    f.s("PA", b"world")
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    single = track(f.frames)
    doubled = []
    for t, lt, raw in f.frames:
        doubled += [(t, lt, raw), (t + 1e-6, lt, raw)]
    tr = track(doubled)
    assert len(tr.tl.conns) == 1
    assert seg_states(tr)[::2] == seg_states(single)
    assert seg_states(tr)[1::2] == seg_states(single)
    assert [(t.side, t.new) for t in tr.tl.transitions(0)] == [(t.side, t.new) for t in single.tl.transitions(0)]
    assert tr.tl.counters_at() == single.tl.counters_at()


def test_data_after_fin_from_the_closed_direction_is_not_a_new_close():
    # a retransmission of data sent before the FIN must not reopen or move anything
    f = established()
    f.c("PA", b"0123456789")
    f.c("FA")
    f.t += 0.2  # later than an out-of-order segment could be (Wireshark: 3 ms without an RTT)
    f.c("PA", b"0123456789", seq=1001)  # late retransmission of the data
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr)[-2:] == [("FIN_WAIT_1", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT")]
    assert "retransmission" in list(tr.tl.segments(0))[-2].analysis


def test_ack_field_of_a_segment_without_ack_flag_is_not_relative():
    # Wireshark shows the raw field when the ACK flag is clear
    f = established()
    f.c("R", ack=123)
    tr = track(f.frames)
    seg = list(tr.tl.segments(0))[-1]
    assert seg.ack_raw == 123
    assert seg.ack == 123
