"""`tcpview summary --json` is built from plain dicts for speed; it must still be a valid Summary."""

import json
import subprocess
import sys

from scapy.all import IP, TCP, Ether, wrpcap

from tcpview.engine.core.model import Summary


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
    """Connections go out in pieces, two formatted at a time on two threads: any piece size
    and a count on either side of one gives valid JSON, the same as json.dumps."""
    import io

    from helpers import Flow, write_frames_pcap

    from tcpview.cli.report import summary_dict, write_summary_json
    from tcpview.engine.pump import load

    for n in (4096, 4097):
        frames: list = []
        for i in range(n):
            Flow(cport=1024 + i, t0=1.0 + i * 1e-4, frames=frames).c("S")
        tl = load(str(write_frames_pcap(tmp_path / f"{n}.pcap", frames))).timeline
        want = json.dumps(summary_dict(tl, "x.pcap"), indent=1) + "\n"
        for piece in (1, 2, 3, 4096, 16384):
            buf = io.StringIO()
            write_summary_json(tl, "x.pcap", None, buf, piece=piece)
            assert len(json.loads(buf.getvalue())["connections"]) == n
            assert buf.getvalue() == want, piece
        # the columns come in pieces too: any piece size gives the same connections
        for size in (1, 1000, 4096):
            pieces = list(tl.connection_column_chunks(None, size=size))
            assert len(pieces) == -(-n // size)
            assert [d for p in pieces for d in p.dicts()] == tl.connection_dicts()


def test_the_json_of_real_time_stamps_and_every_kind_of_row(tmp_path) -> None:
    """Time stamps of real captures (seconds since 1970, to the microsecond or nanosecond),
    IPv4 and IPv6, every kind of notes, a clock that stepped back: the compiled row writer
    gives what json.dumps gives."""
    import io
    import random

    from helpers import Flow, write_frames_pcap

    from tcpview.cli.report import summary_dict, write_summary_json
    from tcpview.engine.pump import load

    rng = random.Random(3)
    for nano in (False, True):
        frames: list = []
        for i in range(300):
            v6 = i % 7 == 0
            f = Flow(cip="2001:db8::1" if v6 else f"10.{i % 200}.{i // 200}.9", sip="2001:db8::2" if v6 else "10.0.0.1",
                     cport=20000 + i, t0=1_700_000_000 + rng.uniform(0, 86400), dt=rng.uniform(1e-6, 0.2),
                     frames=frames)
            kind = i % 5
            if kind == 0:
                f.handshake()
                f.c("PA", b"x" * rng.randrange(1, 3000))
                f.c("FA")
            elif kind == 1:
                f.c("PA", b"mid-stream")  # partial
            elif kind == 2:
                f.c("S")
                f.s("RA")  # refused
            elif kind == 3:
                f.c("PA", b"y")
                f.s("R")  # partial and reset
            else:
                f.c("SF")  # an anomaly
        frames.sort(key=lambda fr: fr[0])
        k = len(frames) // 2  # the clock steps back once, on one frame
        frames[k] = (frames[k - 1][0] - 0.05, *frames[k][1:])
        path = write_frames_pcap(tmp_path / f"real{int(nano)}.pcap", frames, nano=nano)
        tl = load(str(path)).timeline
        assert tl.view().clock_stepped_back
        buf = io.StringIO()
        write_summary_json(tl, "real.pcap", None, buf)
        assert buf.getvalue() == json.dumps(summary_dict(tl, "real.pcap"), indent=1) + "\n"


def test_time_stamps_are_written_as_repr_writes_them() -> None:
    """The compiled formatter gives float.__repr__'s text (the shortest that reads back, the
    nearest and then the even one among equals) or leaves the value to Python."""
    import numpy as np

    from tcpview.engine.output.json_rows import _put_ts, _ts_parts

    rng = np.random.default_rng(5)
    n = 20000
    xs = np.concatenate([
        rng.integers(10**9, 2 * 10**9, n) + rng.integers(0, 10**6, n) * 1e-6,
        rng.integers(10**9, 2 * 10**9, n) + rng.integers(0, 10**9, n) * 1e-9,
        rng.uniform(2.0**20, 1e15, n),
        rng.integers(2**20, 2**40, n) + 0.5,
        rng.integers(2**20, 2**40, n) + rng.integers(0, 2**10, n) / 2**10,  # few bits: ties between decimals
        [2.0**20, 2.0**21, 1_700_000_000.0, 1_699_999_999.9999999, 1e15 - 0.125, 4_294_967_295.999999, 0.1, 1.5, 0.0],
    ])
    whole, frac, digits = _ts_parts(xs)
    out = np.zeros(40, dtype=np.uint8)
    fast = 0
    for x, w, f, d in zip(xs.tolist(), whole.tolist(), frac.tolist(), digits.tolist(), strict=True):
        if d >= 0:
            fast += 1
            assert out[: _put_ts(out, 0, w, f, d)].tobytes().decode() == repr(x)
    assert fast > 0.99 * (len(xs) - 3)  # all but values below 2**20 (left to Python)
    assert digits[-3:].tolist() == [-1, -1, -1]
