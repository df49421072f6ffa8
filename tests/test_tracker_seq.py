"""Tracker: mid-stream pickup, sequence numbers, windows, invalid segments."""

from __future__ import annotations

import pytest
from helpers import Flow, seg_states, track
from trackhelp import EST, HANDSHAKE, M32, closed_by_client, established  # noqa: F401


# -- mid-stream pickup ----------------------------------------------------------------------------
def test_midstream_pickup_from_client_side():
    f = Flow(cport=51000, sport=443, cisn=777777, sisn=888888)
    f.c("PA", b"data")
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr) == [EST, EST]
    c = tr.tl.connection(0)
    assert c.partial is True and "partial" in c.notes
    assert (c.client.port, c.server.port) == (51000, 443)
    segs = list(tr.tl.segments(0))
    # Wireshark numbers the first seen seq as relative 1
    assert (segs[0].seq, segs[0].ack, segs[0].len) == (1, 1, 4)
    assert (segs[1].seq, segs[1].ack) == (1, 5)
    assert (segs[0].seq_raw, segs[0].ack_raw) == (777777, 888888)


def test_midstream_first_packet_from_server_guesses_client_by_ephemeral_port():
    f = Flow(cport=51000, sport=443)
    f.s("PA", b"response")
    f.c("A")
    tr = track(f.frames)
    c = tr.tl.connection(0)
    assert (c.client.port, c.server.port) == (51000, 443)
    assert [s.dir for s in tr.tl.segments(0)] == ["s2c", "c2s"]
    assert seg_states(tr) == [EST, EST]


def test_midstream_close_follows_the_rules():
    f = Flow(cport=51000, sport=22)
    f.c("PA", b"x")
    f.s("FA")
    f.c("A")
    f.c("FA")
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr)[1:] == [
        ("CLOSE_WAIT", "FIN_WAIT_1"),
        ("CLOSE_WAIT", "FIN_WAIT_2"),
        ("LAST_ACK", "TIME_WAIT"),
        ("CLOSED", "TIME_WAIT"),
    ]


def test_counters_after_midstream_pickup():
    f = Flow(cport=51000, sport=443)
    f.c("A")
    tr = track(f.frames)
    assert tr.tl.counters_at()["ESTABLISHED"] == 2


# -- relative sequence numbers, wraparound, windows -----------------------------------------------
def test_relative_seq_ack_like_wireshark():
    f = established(cisn=123456789, sisn=987654321)
    f.c("PA", b"12345")
    f.s("PA", b"abc")
    f.c("FA")
    f.s("FA")
    f.c("A")
    tr = track(f.frames)
    got = [(s.flags, s.seq, s.ack, s.len) for s in tr.tl.segments(0)]
    assert got == [
        (["SYN"], 0, 0, 0),
        (["SYN", "ACK"], 0, 1, 0),
        (["ACK"], 1, 1, 0),
        (["PSH", "ACK"], 1, 1, 5),
        (["PSH", "ACK"], 1, 6, 3),
        (["FIN", "ACK"], 6, 4, 0),
        (["FIN", "ACK"], 4, 7, 0),
        (["ACK"], 7, 5, 0),
    ]
    raws = [(s.seq_raw, s.ack_raw) for s in tr.tl.segments(0)]
    assert raws[0] == (123456789, 0)
    assert raws[1] == (987654321, 123456790)


def test_sequence_wraparound_near_2_32():
    cisn = M32 - 3
    sisn = M32 - 1
    f = established(cisn=cisn, sisn=sisn)
    f.c("PA", b"a" * 10)  # crosses 2^32
    f.s("A")
    f.s("PA", b"b" * 4)
    f.c("A")
    f.c("PA", b"c" * 10, seq=(cisn + 1) & 0xFFFFFFFF)  # a retransmission across the wrap
    f.c("FA")
    f.s("A")
    f.s("FA")
    f.c("A")
    tr = track(f.frames)
    segs = list(tr.tl.segments(0))
    assert [(s.seq, s.ack) for s in segs[:7]] == [
        (0, 0), (0, 1), (1, 1), (1, 1), (1, 11), (1, 11), (11, 5),
    ]
    assert segs[3].seq_raw == M32 - 2
    assert segs[5].seq_raw == 0  # server's data after its ISN wrapped
    assert (segs[7].seq, segs[7].len) == (1, 10)
    assert segs[8].seq == 11 and segs[8].flags == ["FIN", "ACK"]
    assert segs[9].ack == 12
    assert "retransmission" in segs[7].analysis
    assert not any("retransmission" in s.analysis for s in segs[:7])
    assert seg_states(tr)[8:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("TIME_WAIT", "LAST_ACK"),
        ("TIME_WAIT", "CLOSED"),
    ]


def test_fin_exactly_at_the_wrap():
    f = established(cisn=M32 - 2)  # client data ends at 2^32 - 1, its FIN has seq 2^32 - 1
    f.c("FA")
    f.s("A")
    tr = track(f.frames)
    segs = list(tr.tl.segments(0))
    assert segs[3].seq_raw == M32 - 1
    assert segs[4].ack_raw == 0
    assert seg_states(tr)[-1] == ("FIN_WAIT_2", "CLOSE_WAIT")


def test_window_scaling_applies_when_both_syns_offer_it():
    f = Flow()
    f.c("S", win=64240, options=[("MSS", 1460), ("WScale", 7)])
    f.s("SA", win=65160, options=[("MSS", 1460), ("WScale", 3)])
    f.c("A", win=502)
    f.s("A", win=1000)
    tr = track(f.frames)
    wins = [s.win for s in tr.tl.segments(0)]
    assert wins == [64240, 65160, 502 << 7, 1000 << 3]
    assert tr.tl.conns[0].opts[0]["mss"] == 1460


def test_no_window_scaling_when_only_one_side_offers_it():
    f = Flow()
    f.c("S", options=[("WScale", 7)])
    f.s("SA")
    f.c("A", win=502)
    tr = track(f.frames)
    assert [s.win for s in tr.tl.segments(0)][2] == 502


# -- invalid segments ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,name",
    [("SF", "syn_fin"), ("SR", "syn_rst"), ("F", "fin_no_ack"), ("", "no_flags"), ("FPU", "xmas")],
)
def test_invalid_flag_combinations_are_anomalies_and_move_nothing(flags, name):
    f = established()
    f.c(flags)
    f.c("PA", b"ok")
    tr = track(f.frames)
    got = seg_states(tr)
    assert got[3] == EST and got[4] == EST
    seg = list(tr.tl.segments(0))[3]
    assert name in seg.anomalies
    assert "anomaly" in tr.tl.connection(0).notes
    assert all(t.frame <= 3 for t in tr.tl.transitions(0))


def test_syn_fin_as_first_packet_does_not_open():
    f = Flow()
    f.c("SF")
    tr = track(f.frames)
    assert seg_states(tr) == [("CLOSED", "CLOSED")]
    assert tr.tl.counters_at() == {k: 0 for k in tr.tl.counters_at()}
