"""`tcpview summary --json` is built from plain dicts for speed; it must still be a valid Summary."""

import json
import subprocess
import sys

from scapy.all import IP, TCP, Ether, wrpcap

from tcpview.engine.model import Summary


def _close_by_client(path) -> None:
    """Handshake, then the client closes first; the server's FIN at 0.4 s acks the client's FIN,
    so the client goes straight to TIME_WAIT then."""
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

    def seg(t, src, dst, flags, seq, ack):
        p = eth / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
        p.time = t
        return p

    frames = [
        seg(0.0, c, s, "S", 100, 0),
        seg(0.1, s, c, "SA", 500, 101),
        seg(0.2, c, s, "A", 101, 501),
        seg(0.3, c, s, "FA", 101, 501),
        seg(0.4, s, c, "FA", 501, 102),
        seg(0.5, c, s, "A", 102, 502),
    ]
    wrpcap(str(path), frames)


def _summary(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "tcpview", "summary", *args, "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_summary_json_is_a_valid_summary_model(tmp_path) -> None:
    pcap = tmp_path / "close.pcap"
    _close_by_client(pcap)
    data = _summary(str(pcap))
    model = Summary.model_validate(data)
    assert model.connections[0].client.state == "TIME_WAIT"
    assert model.connections[0].server.state == "CLOSED"
    assert model.counters["TIME_WAIT"] == 1


def test_at_after_the_last_packet_lets_timers_fire(tmp_path) -> None:
    pcap = tmp_path / "close.pcap"
    _close_by_client(pcap)
    # 2*MSL = 60 s after TIME_WAIT began at 0.4 s: still there at 60.3, gone at 60.5
    before = _summary(str(pcap), "--at", "60.3")
    after = _summary(str(pcap), "--at", "60.5")
    assert before["counters"]["TIME_WAIT"] == 1
    assert after["counters"]["TIME_WAIT"] == 0
    assert after["connections"][0]["client"]["state"] == "CLOSED"
    short = _summary(str(pcap), "--at", "1.0", "--msl2", "0.4")
    assert short["counters"]["TIME_WAIT"] == 0


def test_the_streamed_json_is_what_json_dumps_writes(tmp_path) -> None:
    """The summary's JSON is written piece by piece from the columns; it is byte for byte what
    ``json.dumps(summary_dict(...), indent=1)`` gives, for every kind of connection."""
    import io

    from helpers import Flow, write_frames_pcap

    from tcpview.cli.report import summary_dict, write_summary_json
    from tcpview.engine.pump import load

    frames: list = []
    a = Flow(t0=1.0, frames=frames)
    a.handshake()
    a.c("PA", b"x" * 3000)
    a.c("FA")
    b = Flow(cip="2001:db8::1", sip="2001:db8::2", cport=41000, t0=1.5, frames=frames)
    b.c("PA", b"mid-stream")  # partial
    b.s("R")  # reset
    c = Flow(cport=42000, t0=2.0, frames=frames)
    c.c("SF")  # an anomaly
    frames.sort(key=lambda f: f[0])
    path = write_frames_pcap(tmp_path / "mix.pcap", frames)
    tl = load(str(path)).timeline
    for at in (None, 0.2, 0.7):
        buf = io.StringIO()
        write_summary_json(tl, "mix.pcap", at, buf)
        assert buf.getvalue() == json.dumps(summary_dict(tl, "mix.pcap", at), indent=1) + "\n", at
    assert any(d["notes"] for d in summary_dict(tl, "x")["connections"])


def test_the_streamed_json_across_its_chunks(tmp_path) -> None:
    """Connections go out 4,096 at a time: a count on either side of that gives valid JSON, the
    same as json.dumps."""
    import io

    from helpers import Flow, write_frames_pcap

    from tcpview.cli.report import summary_dict, write_summary_json
    from tcpview.engine.pump import load

    for n in (4096, 4097):
        frames: list = []
        for i in range(n):
            Flow(cport=1024 + i, t0=1.0 + i * 1e-4, frames=frames).c("S")
        tl = load(str(write_frames_pcap(tmp_path / f"{n}.pcap", frames))).timeline
        buf = io.StringIO()
        write_summary_json(tl, "x.pcap", None, buf)
        assert len(json.loads(buf.getvalue())["connections"]) == n
        assert buf.getvalue() == json.dumps(summary_dict(tl, "x.pcap"), indent=1) + "\n"
        # the columns come in pieces too: any piece size gives the same connections
        for size in (1, 1000, 4096):
            pieces = list(tl.connection_column_chunks(None, size=size))
            assert len(pieces) == -(-n // size)
            assert [d for p in pieces for d in p.dicts()] == tl.connection_dicts()
