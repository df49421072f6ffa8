"""Zeek's conn_state and history of built conversations, each case worked out by hand from
Zeek's rules (``conn_state()`` of base/protocols/conn/main.zeek, the endpoint state machine
and history letters of its TCP analyzer), and where they show: summary JSON, the model, the
filter."""

from __future__ import annotations

import json

import pytest
from helpers import Flow, cli, track, write_frames_pcap

from tcpview.engine.analysis.query import ConnQuery, ConnRows
from tcpview.engine.core.zeek_analyzer import CONN_STATES
from tcpview.engine.timeline.zeek_history import zeek_all


def zeek(*builds, **flow_kw) -> list[tuple[str, str]]:
    """(conn_state, history) of each connection the built conversations make."""
    frames: list = []
    for i, build in enumerate(builds):
        f = Flow(cport=40000 + i, t0=100.0 + i, frames=frames, **flow_kw)
        build(f)
    frames.sort(key=lambda x: x[0])
    tl = track(frames).tl
    codes, hist = zeek_all(tl)
    return [(CONN_STATES[c], h) for c, h in zip(codes.tolist(), hist, strict=True)]


def one(build, **kw) -> tuple[str, str]:
    (got,) = zeek(build, **kw)
    return got


def talk(f: Flow) -> None:
    f.handshake()
    f.c("PA", b"GET /")
    f.s("A")
    f.s("PA", b"200 OK")
    f.c("A")


def test_every_conn_state():
    assert one(lambda f: f.c("S")) == ("S0", "S")  # an attempt, no reply
    assert one(lambda f: (f.handshake(), f.c("PA", b"x"))) == ("S1", "ShAD")  # established, open
    assert one(lambda f: (talk(f), f.c("FA"), f.s("A"), f.s("FA"), f.c("A"))) == ("SF", "ShADadFf")
    assert one(lambda f: (f.c("S"), f.s("RA"))) == ("REJ", "Sr")  # refused
    assert one(lambda f: (talk(f), f.c("FA"))) == ("S2", "ShADadF")  # the originator's FIN only
    assert one(lambda f: (talk(f), f.s("FA"))) == ("S3", "ShADadf")  # the responder's FIN only
    assert one(lambda f: (talk(f), f.c("RA"))) == ("RSTO", "ShADadR")
    assert one(lambda f: (talk(f), f.s("RA"))) == ("RSTR", "ShADadr")
    assert one(lambda f: (f.c("S"), f.c("R"))) == ("RSTOS0", "SR")  # a SYN, then its sender's RST
    # a SYN-ACK from a likely server port, never a SYN: Zeek flips the roles (^), then RST / FIN
    assert one(lambda f: (f.s("SA"), f.s("RA"))) == ("RSTRH", "^hr")
    assert one(lambda f: (f.c("S"), f.c("F"))) == ("SH", "SF")  # a SYN, then a FIN
    assert one(lambda f: (f.s("SA"), f.s("FA"))) == ("SHR", "^hf")
    assert one(lambda f: (f.c("PA", b"mid"), f.s("A"))) == ("OTH", "Da")  # picked up mid-stream


def test_rej_also_when_both_reset_without_data():
    # both ends reset and neither carried a byte (Zeek's endpoint sizes are 0): a rejection too
    assert one(lambda f: (f.c("S"), f.s("SA"), f.c("R"), f.s("R"))) == ("REJ", "ShRr")


def test_letters_once_per_direction():
    def chatty(f: Flow) -> None:
        f.handshake()
        for _ in range(5):
            f.c("PA", b"ping")
            f.s("A")
            f.s("PA", b"pong")
            f.c("A")
    assert one(chatty) == ("S1", "ShADad")


def test_fin_and_rst_repeat_only_at_another_sequence_number():
    def fin_again(f: Flow) -> None:
        talk(f)
        fin = f.nxt[0]
        f.c("FA")
        f.c("FA", seq=fin)  # the same FIN again: no new letter
    assert one(fin_again) == ("S2", "ShADadF")

    def fin_later(f: Flow) -> None:
        talk(f)
        f.c("FA")
        f.c("FA", b"late")  # a FIN at another sequence number (it carries data)
    assert one(fin_later)[1] == "ShADadFF"

    def rsts(f: Flow) -> None:
        talk(f)
        f.c("RA")
        f.c("RA", seq=f.nxt[0])  # same sequence number
        f.c("RA", seq=f.nxt[0] + 100)  # another
    assert one(rsts) == ("RSTO", "ShADadRR")


def test_retransmissions_zero_windows_and_gaps_are_logarithmic():
    def retransmit(n: int):
        def build(f: Flow) -> None:
            f.handshake()
            start = f.nxt[0]
            f.c("PA", b"data")
            for _ in range(n):
                f.c("PA", b"data", seq=start)
        return build
    assert one(retransmit(1))[1] == "ShADT"
    assert one(retransmit(9))[1] == "ShADT"  # 1..9: one letter
    assert one(retransmit(10))[1] == "ShADTT"  # the 10th
    assert one(retransmit(100))[1] == "ShADTTT"  # the 100th

    def zero_windows(n: int):
        def build(f: Flow) -> None:
            f.handshake()
            f.c("PA", b"fill")
            for _ in range(n):
                f.s("A", win=0)
        return build
    assert one(zero_windows(3))[1] == "ShADaw"
    assert one(zero_windows(10))[1] == "ShADaww"

    def gaps(n: int):
        def build(f: Flow) -> None:
            f.handshake()
            for _ in range(n):
                f.nxt[0] += 100  # 100 bytes the capture never saw
                f.c("PA", b"x" * 10)
                f.s("A")  # acknowledged: a content gap of the originator's
        return build
    assert one(gaps(1))[1] == "ShADaG"
    assert one(gaps(10))[1] == "ShADaGG"


def test_gap_filled_before_the_ack_is_none():
    def build(f: Flow) -> None:
        f.handshake()
        start = f.nxt[0]
        f.c("PA", b"b" * 10, seq=start + 10)  # out of order: the first 10 bytes come later
        f.c("PA", b"a" * 10, seq=start)
        f.s("A", ack=start + 20)
    assert one(build)[1] == "ShADTa"  # the late segment does not advance: Zeek calls it a retransmission


def test_multi_flag_and_inconsistent_packets():
    assert one(lambda f: (f.handshake(), f.c("FRA")))[1] == "ShAI"  # FIN+RST
    assert one(lambda f: (f.handshake(), f.c("FRA"), f.c("FRA", seq=f.nxt[0] + 5)))[1] == "ShAI"  # once
    assert one(lambda f: f.c("SF"))[1] == "Q"  # SYN+FIN


def test_role_flips():
    # a SYN-ACK from an unlikely server port first: its sender is Zeek's originator (H) until
    # the other side answers with an ACK: then Zeek flips (^) and rewrites the H as h
    # (the endpoints keep their states: the new originator is "partial", the responder sent a
    # SYN-ACK: Zeek calls that OTH)
    got = one(lambda f: (f.s("SA"), f.c("A"), f.c("PA", b"hi")), sport=5555)
    assert got == ("OTH", "^hAD")
    # from a likely server port the flip comes at once, and the ACK establishes both
    assert one(lambda f: (f.s("SA"), f.c("A"))) == ("S1", "^hA")
    # the SYN-ACK alone from that port stays the originator's; its RST: not REJ, OTH
    assert one(lambda f: (f.s("SA"), f.s("RA")), sport=5555) == ("OTH", "HR")
    # mid-stream from a likely server port to an ephemeral one: flipped at the first packet
    assert one(lambda f: (f.s("PA", b"HTTP/1.1 200"), f.c("A"))) == ("OTH", "^dA")
    # both ports unlikely: the first sender stays the originator
    assert one(lambda f: (f.s("PA", b"data"), f.c("A")), sport=5555) == ("OTH", "Da")


def test_conn_state_in_the_summary_json_and_the_model(tmp_path):
    frames: list = []
    ends = [lambda f: f.c("S"), lambda f: (f.c("S"), f.s("RA")), lambda f: (talk(f), f.c("FA"), f.s("A"),
                                                                            f.s("FA"), f.c("A"))]
    for i, build in enumerate(ends):
        build(Flow(cport=41000 + i, t0=200.0 + i, frames=frames))
    frames.sort(key=lambda x: x[0])
    path = write_frames_pcap(tmp_path / "z.pcap", frames)
    rc, out, err = cli("summary", str(path), "--json")
    assert rc == 0, err
    conns = json.loads(out)["connections"]
    assert [(c["conn_state"], c["history"]) for c in conns] == [("S0", "S"), ("REJ", "Sr"), ("SF", "ShADadFf")]
    rc, out, err = cli("summary", str(path))  # the text table has them too
    assert rc == 0, err
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[7:9] for row in table] == [["S0", "S"], ["REJ", "Sr"], ["SF", "ShADadFf"]]
    # the model, one connection at a time, agrees with the bulk writer
    tl = track(frames).tl
    assert [(c.conn_state, c.history) for c in tl.connections()] == [("S0", "S"), ("REJ", "Sr"),
                                                                     ("SF", "ShADadFf")]
    # as of an earlier time: the third connection before its close, then after the client's FIN
    assert (tl.connection(2, frames[-5][0]).conn_state, tl.connection(2, frames[-5][0]).history) == ("S1", "ShADad")
    assert tl.connection(2, frames[-3][0]).conn_state == "S2"


def test_filter_terms():
    frames: list = []
    builds = [lambda f: f.c("S"), lambda f: (f.c("S"), f.s("RA")), lambda f: (talk(f), f.c("FA"), f.s("A"),
                                                                              f.s("FA"), f.c("A")),
              lambda f: (f.c("S"), f.s("RA"))]
    for i, build in enumerate(builds):
        build(Flow(cport=42000 + i, t0=300.0 + i, frames=frames))
    frames.sort(key=lambda x: x[0])
    tl = track(frames).tl
    rows = ConnRows()

    def ids(text: str) -> list[int]:
        q = rows.set_query(text)
        assert not q.errors, q.errors
        return list(rows.compute(tl, None))

    assert ids("zeek:REJ") == [1, 3]
    assert ids("zeek:rej zeek:S0") == []  # all terms must match
    assert ids("zeek:S0") == [0]
    assert ids("history:^S$") == [0]
    assert ids("history:r") == [1, 3]
    assert ids("history:^ShADadFf$ zeek:SF") == [2]
    # as of the cursor: before the last connection's RST it was S0
    rows.set_query("zeek:REJ")
    assert list(rows.compute(tl, frames[-2][0])) == [1]
    for bad in ("zeek:XX", "history:(", "zeek:"):
        assert ConnQuery.parse(bad).errors, bad


@pytest.mark.parametrize("word", CONN_STATES)
def test_every_state_name_parses(word):
    assert not ConnQuery.parse(f"zeek:{word}").errors
