"""The passive state machine for both endpoints, on conversations built with scapy.

Each test spells out the TCP rules it expects (RFC 9293 state names; the handshake as the
design describes it: SYN -> SYN_SENT/LISTEN, SYN+ACK -> server SYN_RECEIVED, its ACK -> both
ESTABLISHED; the close as RFC 9293 figures 13 and 14).
"""

from __future__ import annotations

import pytest

from conftest import C, S, Flow, seg_states, states, track

M32 = 1 << 32

EST = ("ESTABLISHED", "ESTABLISHED")
HANDSHAKE = [("SYN_SENT", "LISTEN"), ("SYN_SENT", "SYN_RECEIVED"), EST]


def established(**kw) -> Flow:
    f = Flow(**kw)
    f.handshake()
    return f


# -- opening ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["ether", "vlan", "qinq", "sll", "sll2", "null", "loop", "raw"])
def test_handshake_on_every_link_type(link):
    f = established(link=link)
    tr = track(f.frames)
    assert len(tr.tl.conns) == 1
    assert seg_states(tr) == HANDSHAKE
    c = tr.tl.connection(0)
    assert (c.client.ip, c.client.port, c.server.ip, c.server.port) == ("10.0.0.1", 40000, "10.0.0.2", 80)
    assert c.partial is False


def test_handshake_ipv6():
    f = established(cip="2001:db8::1", sip="2001:db8::2", link="ether")
    tr = track(f.frames)
    assert seg_states(tr) == HANDSHAKE
    c = tr.tl.connection(0)
    assert (c.client.ip, c.server.ip) == ("2001:db8::1", "2001:db8::2")


def test_data_keeps_both_established_and_counts_bytes():
    f = established()
    f.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 100)
    f.c("A")
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [EST] * 4
    c = tr.tl.connection(0)
    assert c.packets == 7
    assert c.bytes == 18 + 100


def test_simultaneous_open():
    # RFC 9293 figure 8: SYNs cross, each side answers with SYN+ACK
    f = Flow()
    f.c("S")
    f.s("S")
    f.c("SA", seq=1000)  # SYN+ACK re-sends the client's ISN and acks the server's SYN
    f.s("SA", seq=5000)
    f.c("A")
    tr = track(f.frames)
    got = seg_states(tr)
    assert got[0] == ("SYN_SENT", "LISTEN")
    assert got[1] == ("SYN_RECEIVED", "SYN_RECEIVED")
    assert got[3] == EST
    assert got[4] == EST
    assert len(tr.tl.conns) == 1


def test_synack_must_ack_isn_plus_one():
    f = Flow()
    f.c("S")
    f.s("SA", ack=1000 + 7)  # wrong: the client's ISN is 1000, so it must ack 1001
    tr = track(f.frames)
    assert seg_states(tr) == [("SYN_SENT", "LISTEN"), ("SYN_SENT", "LISTEN")]
    segs = list(tr.tl.segments(0))
    assert "bad_handshake_ack" in segs[1].anomalies
    assert "anomaly" in tr.tl.connection(0).notes


def test_wrong_ack_of_the_synack_does_not_establish():
    f = Flow()
    f.c("S")
    f.s("SA")
    f.c("A", ack=5000 + 9)  # the server's ISN is 5000: the handshake ACK must ack 5001
    tr = track(f.frames)
    assert seg_states(tr)[2] == ("SYN_SENT", "SYN_RECEIVED")
    assert "bad_handshake_ack" in list(tr.tl.segments(0))[2].anomalies
    # the right ACK afterwards still completes the handshake
    f.c("A")
    tr = track(f.frames)
    assert seg_states(tr)[3] == EST


def test_retransmitted_syn_and_synack_do_not_move_states_twice():
    f = Flow()
    f.c("S")
    f.c("S", seq=1000)
    f.s("SA")
    f.s("SA", seq=5000)
    f.c("A")
    tr = track(f.frames)
    assert seg_states(tr) == [("SYN_SENT", "LISTEN")] * 2 + [("SYN_SENT", "SYN_RECEIVED")] * 2 + [EST]
    trans = tr.tl.transitions(0)
    # SYN_SENT, LISTEN, SYN_RECEIVED, then ESTABLISHED for each side: five changes
    assert [(t.side, t.new) for t in trans] == [
        ("client", "SYN_SENT"), ("server", "LISTEN"), ("server", "SYN_RECEIVED"),
        ("client", "ESTABLISHED"), ("server", "ESTABLISHED"),
    ]
    segs = list(tr.tl.segments(0))
    assert "retransmission" in segs[1].analysis
    assert "retransmission" in segs[3].analysis


def test_syn_retransmitted_after_established_changes_nothing():
    f = established()
    f.c("S", seq=1000)
    tr = track(f.frames)
    assert seg_states(tr)[-1] == EST
    assert len(tr.tl.conns) == 1


# -- closing ---------------------------------------------------------------------------------------
def test_four_way_close_client_first():
    f = established()
    f.c("FA")
    f.s("A")
    f.s("FA")
    f.c("A")
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("TIME_WAIT", "LAST_ACK"),
        ("TIME_WAIT", "CLOSED"),
    ]


def test_four_way_close_server_first():
    f = established()
    f.s("FA")
    f.c("A")
    f.c("FA")
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [
        ("CLOSE_WAIT", "FIN_WAIT_1"),
        ("CLOSE_WAIT", "FIN_WAIT_2"),
        ("LAST_ACK", "TIME_WAIT"),
        ("CLOSED", "TIME_WAIT"),
    ]


def test_ack_below_the_fin_does_not_ack_it():
    f = established()
    f.c("PA", b"abcd")
    fin_frame = f.c("FA")
    f.s("A", ack=1001 + 4)  # acks the data but not the FIN (that needs 1001 + 4 + 1)
    tr = track(f.frames)
    assert fin_frame == 5
    assert seg_states(tr)[-1] == ("FIN_WAIT_1", "CLOSE_WAIT")
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("FIN_WAIT_2", "CLOSE_WAIT")


def test_fin_with_data():
    f = established()
    f.c("FPA", b"bye")  # FIN carried on the last data segment: it sits at seq + len
    f.s("A")
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [("FIN_WAIT_1", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT")]


def test_half_close_data_keeps_flowing_back():
    f = established()
    f.c("PA", b"request")
    f.c("FA")  # shutdown(SHUT_WR)
    f.s("A")
    f.s("PA", b"a" * 500)
    f.c("A")
    f.s("PA", b"b" * 500)
    f.c("A")
    f.s("FA")
    f.c("A")
    tr = track(f.frames)
    got = seg_states(tr)
    assert got[4] == ("FIN_WAIT_1", "CLOSE_WAIT")
    assert got[5:10] == [("FIN_WAIT_2", "CLOSE_WAIT")] * 5
    assert got[10] == ("TIME_WAIT", "LAST_ACK")
    assert got[11] == ("TIME_WAIT", "CLOSED")
    assert tr.tl.connection(0).bytes == 7 + 1000


def test_fin_that_also_acks_ours_goes_straight_to_time_wait():
    # FIN_WAIT_1 -> TIME_WAIT when the peer's FIN arrives with the ACK of ours (RFC 9293 3.10.7.4)
    f = established()
    f.c("FA")
    f.s("FA")  # acks the client's FIN (ack = fin seq + 1) and carries the server's FIN
    f.c("A")
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("TIME_WAIT", "LAST_ACK"),
        ("TIME_WAIT", "CLOSED"),
    ]
    assert [t.new for t in tr.tl.transitions(0) if t.side == "client"][-1] == "TIME_WAIT"
    assert "FIN_WAIT_2" not in [t.new for t in tr.tl.transitions(0)]


def test_simultaneous_close_goes_through_closing():
    # RFC 9293 figure 14: the FINs cross; each ACKs the other's FIN; both end in TIME_WAIT
    f = established()
    f.c("FA")  # seq 1001, ack 5001
    f.s("FA", ack=1001)  # sent before the client's FIN arrived: does not ack it
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [("FIN_WAIT_1", "CLOSE_WAIT"), ("CLOSING", "CLOSING")]
    f.c("A")  # acks the server's FIN
    f.s("A")  # acks the client's FIN
    tr = track(f.frames)
    assert seg_states(tr)[5:] == [("CLOSING", "TIME_WAIT"), ("TIME_WAIT", "TIME_WAIT")]


def test_retransmitted_fin_does_not_move_states_twice():
    f = established()
    f.c("FA")
    f.c("FA", seq=1001)
    f.s("A")
    f.c("FA", seq=1001)  # again, after it was acked: must not go back to FIN_WAIT_1
    tr = track(f.frames)
    assert seg_states(tr)[3:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"),
    ]
    client_moves = [t.new for t in tr.tl.transitions(0) if t.side == "client"]
    assert client_moves == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2"]
    segs = list(tr.tl.segments(0))
    assert "retransmission" in segs[4].analysis


def test_retransmitted_last_fin_while_in_time_wait():
    f = established()
    f.c("FA")
    f.s("A")
    f.s("FA")
    f.c("A")
    f.s("FA", seq=5001)  # the ACK was lost: the server sends its FIN again
    f.c("A")
    tr = track(f.frames)
    got = seg_states(tr)
    assert got[-3] == ("TIME_WAIT", "CLOSED")
    # the retransmission neither restarts a close nor makes a new connection
    assert got[-1][0] == "TIME_WAIT"
    assert len(tr.tl.conns) == 1


# -- reset ----------------------------------------------------------------------------------------
def test_rst_closes_both():
    f = established()
    f.c("PA", b"hi")
    f.s("RA")
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("CLOSED", "CLOSED")
    c = tr.tl.connection(0)
    assert "reset" in c.notes and "refused" not in c.notes


def test_rst_without_ack_in_window():
    f = established()
    f.c("R")
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("CLOSED", "CLOSED")


def test_rst_far_out_of_window_is_ignored():
    f = established()
    f.s("R", seq=5001 + 0x40000000)
    tr = track(f.frames)
    assert seg_states(tr)[-1] == EST
    assert "rst_out_of_window" in list(tr.tl.segments(0))[-1].anomalies


def test_refused_connection():
    # connect() to a closed port: the SYN is answered with RST+ACK acking ISN+1
    f = Flow(sport=9)
    f.c("S")
    f.s("RA", seq=0)
    tr = track(f.frames)
    assert seg_states(tr) == [("SYN_SENT", "LISTEN"), ("CLOSED", "CLOSED")]
    assert "refused" in tr.tl.connection(0).notes
    assert tr.tl.counters_at()["SYN_SENT"] == 0


def test_rst_answering_a_syn_with_a_wrong_ack_is_not_a_refusal():
    f = Flow(sport=9)
    f.c("S")
    f.s("RA", seq=0, ack=1000 + 77)
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("SYN_SENT", "LISTEN")
    assert "refused" not in tr.tl.connection(0).notes


def test_rst_after_fin_from_time_wait_peer():
    f = established()
    f.c("FA")
    f.s("A")
    f.s("RA")  # server aborts instead of closing
    tr = track(f.frames)
    assert seg_states(tr)[-1] == ("CLOSED", "CLOSED")


# -- timers ---------------------------------------------------------------------------------------
def closed_by_client(t0: float = 100.0) -> Flow:
    f = established(t0=t0)
    f.c("FA")
    f.s("A")
    f.s("FA")
    f.c("A")
    return f


def test_time_wait_expires_after_2msl_default_60s():
    f = closed_by_client()
    t_tw = f.frames[5][0]  # the server's FIN put the client in TIME_WAIT
    tr = track(f.frames)
    tr.advance(t_tw + 59.9)
    assert states(tr) == ("TIME_WAIT", "CLOSED")
    tr.advance(t_tw + 60.0)
    assert states(tr) == ("CLOSED", "CLOSED")
    exp = [t for t in tr.tl.transitions(0) if t.why == "time_wait_expired"]
    assert len(exp) == 1 and exp[0].frame == 0
    assert exp[0].ts == pytest.approx(t_tw + 60.0)
    # a query before the expiry still sees TIME_WAIT
    assert tr.tl.counters_at(t_tw + 30)["TIME_WAIT"] == 1
    assert tr.tl.counters_at(t_tw + 61)["TIME_WAIT"] == 0


def test_time_wait_msl2_is_configurable():
    f = closed_by_client()
    t_tw = f.frames[5][0]
    tr = track(f.frames, msl2=5.0)
    tr.advance(t_tw + 4.99)
    assert states(tr)[0] == "TIME_WAIT"
    tr.advance(t_tw + 5.0)
    assert states(tr)[0] == "CLOSED"


def test_time_wait_expiry_fires_from_a_later_packet_of_another_connection():
    f = closed_by_client()
    t_tw = f.frames[5][0]
    g = Flow(cport=40001, t0=t_tw + 61, frames=f.frames)
    g.c("S")
    tr = track(f.frames)
    assert states(tr, 0) == ("CLOSED", "CLOSED")
    assert states(tr, 1) == ("SYN_SENT", "LISTEN")


def test_orphan_fin_wait_2_expires_after_fin_timeout():
    f = established()
    f.c("FA")
    f.s("A")
    t = f.frames[-1][0]
    tr = track(f.frames)
    tr.advance(t + 59.0)
    assert states(tr) == ("FIN_WAIT_2", "CLOSE_WAIT")
    tr.advance(t + 60.0)
    # the server never closed: its socket stays in CLOSE_WAIT
    assert states(tr) == ("CLOSED", "CLOSE_WAIT")
    tr2 = track(f.frames, fin_timeout=10.0)
    tr2.advance(t + 10.0)
    assert states(tr2) == ("CLOSED", "CLOSE_WAIT")


def test_time_wait_entered_again_restarts_nothing_twice():
    # only one expiry per TIME_WAIT entry even when the last FIN is retransmitted
    f = closed_by_client()
    f.s("FA", seq=5001)
    f.c("A")
    tr = track(f.frames, msl2=1.0)
    tr.advance(f.frames[-1][0] + 5)
    assert [t.why for t in tr.tl.transitions(0)].count("time_wait_expired") == 1
    assert states(tr) == ("CLOSED", "CLOSED")


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
