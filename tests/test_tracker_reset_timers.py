"""Tracker: resets and timers."""

from __future__ import annotations

import pytest
from helpers import Flow, seg_states, states, track
from trackhelp import EST, HANDSHAKE, M32, closed_by_client, established  # noqa: F401


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
