"""Tracker: closing the connection."""

from __future__ import annotations

from helpers import seg_states, track
from trackhelp import EST, HANDSHAKE, M32, closed_by_client, established  # noqa: F401


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
