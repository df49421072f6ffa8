"""Tracker: opening the connection."""

from __future__ import annotations

import pytest
from helpers import Flow, seg_states, track
from trackhelp import EST, HANDSHAKE, M32, closed_by_client, established  # noqa: F401


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
