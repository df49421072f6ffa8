"""``tcpview diagnose``: each connection's time split into what held it back, and the verdict.

Real Linux TCP in network namespaces, slowed by one cause at a time (tests/slownet.py), with
and without a 20 ms path, must get that cause's verdict on every connection, with shares that add up to the connection's
duration as tshark measures it (its first to last frame). The cursor's pass carries on from an
earlier cursor exactly as a fresh one; bad input ends in one line and status 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict

import pytest
from helpers import cli_here, corpus_dir

EXPECTED = {
    "receive_window": {"receive_window"},
    "application": {"application"},
    "server_response": {"server_response"},
    "bottleneck": {"bottleneck"},
    "loss": {"loss_recovery", "congestion"},
    "handshake": {"handshake"},
}


def _tshark_durations(path) -> dict[int, float]:  # type: ignore[no-untyped-def]
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "tcp.stream", "-e", "frame.time_epoch"],
                         check=True, capture_output=True, text=True).stdout
    times: dict[int, list[float]] = defaultdict(list)
    for line in out.splitlines():
        stream, ts = line.split("\t")
        times[int(stream)].append(float(ts))
    return {k: max(v) - min(v) for k, v in times.items()}


@pytest.mark.parametrize("rtt", [0.0, 0.02], ids=["direct", "rtt20ms"])
@pytest.mark.parametrize("cause", sorted(EXPECTED))
def test_each_cause_gets_its_verdict_on_every_connection(cause: str, rtt: float, tmp_path) -> None:
    """Each cause alone, on a path of the namespaces' own tiny RTT (a kernel router) and on one
    of 20 ms (a userspace delay line), gets its verdict on every connection."""
    import slownet

    why = slownet.missing() or (None if shutil.which("tshark") else "needs tshark")
    if why:
        pytest.skip(why)
    pcap = slownet.run(cause, tmp_path / f"{cause}.pcap", rtt=rtt)
    rc, out, err = cli_here("diagnose", str(pcap), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    conns = doc["connections"]
    durations = _tshark_durations(pcap)
    assert len(conns) == slownet.CONNECTIONS == len(durations)
    for c in conns:
        assert c["verdict"] in EXPECTED[cause], (cause, c["verdict"], c["shares"], c["evidence"][:2])
        assert set(c["shares"]) == {"handshake", "server_response", "application", "receive_window", "congestion",
                                    "loss_recovery", "bottleneck", "idle", "delayed_ack"}
        assert sum(c["shares"].values()) == pytest.approx(durations[c["id"]], abs=2e-6)
        assert c["duration"] == pytest.approx(durations[c["id"]], abs=2e-6)
        first = c["evidence"][0]
        assert first["frame"] >= 1 and first["text"]
    assert doc["verdicts"][next(iter(EXPECTED[cause]))] + sum(
        doc["verdicts"][v] for v in EXPECTED[cause]) >= len(conns)
    # the text says the same
    rc, text, _err = cli_here("diagnose", str(pcap), "--conn", str(conns[0]["id"]))
    assert rc == 0 and f"#{conns[0]['id']} " in text and conns[0]["evidence"][0]["text"] in text


@pytest.mark.parametrize(("rtt", "at_client"), [(0.0, False), (0.02, False), (0.02, True)],
                         ids=["direct", "rtt20ms-at-receiver", "rtt20ms-at-sender"])
def test_nagle_waiting_for_a_delayed_ack_is_said_and_tcp_nodelay_takes_it_away(rtt: float, at_client: bool,
                                                                               tmp_path) -> None:
    """Requests written in two small writes (write-write-read): Nagle's algorithm holds the
    second part until the first is acknowledged, and the server delays that ACK (40 ms on
    Linux). Seen from either end, on a tiny RTT and on 20 ms, that wait (with, seen from the
    receiver, the RTT its ACK and the held part then take) is each connection's verdict,
    ``delayed_ack``; the same requests with ``TCP_NODELAY`` have none of it."""
    import slownet

    why = slownet.missing()
    if why:
        pytest.skip(why)
    for cause in ("nagle", "nodelay"):
        pcap = slownet.run(cause, tmp_path / f"{cause}.pcap", rtt=rtt, at_client=at_client)
        rc, out, err = cli_here("diagnose", str(pcap), "--json")
        assert rc == 0, err
        conns = json.loads(out)["connections"]
        assert len(conns) == slownet.CONNECTIONS
        for c in conns:
            share = c["shares"]["delayed_ack"] / c["duration"]
            if cause == "nodelay":
                assert c["shares"]["delayed_ack"] == 0 and c["verdict"] != "delayed_ack", c["shares"]
                # 100-byte segments are no full-sized ones, though no larger one is seen: the
                # MSS the SYNs offered says so (they were taken for the congestion window's)
                assert c["shares"]["congestion"] == 0, c["shares"]
                assert c["duration"] < 0.6, c["duration"]  # 20 requests, no 40 ms wait among them
                continue
            assert c["verdict"] == "delayed_ack", (c["shares"], c["evidence"][:2])
            assert share >= (0.8 if rtt == 0 else 0.5), c["shares"]
            head = c["evidence"][0]["text"]
            assert "Nagle" in head and "the receiver delayed" in head, head
            assert sum(c["shares"].values()) == pytest.approx(c["duration"], abs=2e-6)


@pytest.mark.parametrize("cause", ["receive_window", "bottleneck"])
def test_the_kernel_says_receive_window_limited_so_does_the_capture(cause: str, tmp_path) -> None:
    """The sender's kernel keeps its own split (``tcp_info``'s busy, rwnd_limited and
    sndbuf_limited chrono counters, read on the server's socket once its data is all
    acknowledged): where it says the sender was receive-window limited for more than half its
    busy time, the capture's verdict is receive_window; where it says so for less than a tenth,
    the verdict is not."""
    import slownet

    from tcpview.kernel.tcpinfo import TcpInfo

    why = slownet.missing()
    if why:
        pytest.skip(why)
    pcap, infos = tmp_path / "k.pcap", tmp_path / "tcp_info"
    slownet.run(cause, pcap, tcp_info=infos)
    kernel = {}
    for line in infos.read_text().splitlines():
        port, raw = line.split()
        info = TcpInfo(bytes.fromhex(raw))
        kernel[int(port)] = (info.get("busy_time"), info.get("rwnd_limited"))
    rc, out, err = cli_here("diagnose", str(pcap), "--json")
    assert rc == 0, err
    from tcpview.engine.pump import load

    tl = load(str(pcap)).timeline
    conns = json.loads(out)["connections"]
    assert len(kernel) == len(conns) == slownet.CONNECTIONS
    for c in conns:
        busy, rwnd = kernel[tl.conns[c["id"]].cport]
        assert busy and busy > 0
        if rwnd > busy / 2:
            assert c["verdict"] == "receive_window", (c, busy, rwnd)
        elif rwnd < busy / 10:
            assert c["verdict"] != "receive_window", (c, busy, rwnd)
    if cause == "receive_window":  # the scenario is what it says: the kernel agrees
        assert all(rwnd > busy / 2 for busy, rwnd in kernel.values()), kernel


def test_live_diagnose_captures_then_diagnoses(tmp_path) -> None:
    """``tcpview diagnose -i IFACE --duration S --json`` on the server's interface while the
    server makes the client wait: every connection it saw waited for the server."""
    import sys

    import slownet
    from helpers import REPO

    why = slownet.missing()
    if why:
        pytest.skip(why)
    out = tmp_path / "live.json"
    cmd = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tcpview", "diagnose", "--json", "--duration", "4",
           "-f", "tcp", "-i"]
    slownet.run("server_response", out, live=cmd)
    doc = json.loads(out.read_text())
    conns = doc["connections"]
    assert len(conns) == slownet.CONNECTIONS
    assert [c["verdict"] for c in conns] == ["server_response"] * slownet.CONNECTIONS, conns
    for c in conns:
        assert sum(c["shares"].values()) == pytest.approx(c["duration"], abs=1e-9)
        assert c["shares"]["server_response"] >= 0.35  # the server waits 0.4 s before it answers


def test_shares_add_up_on_every_capture_of_the_corpus() -> None:
    from tcpview.engine.analysis.diagnosis import CATEGORIES, VERDICTS, diagnose
    from tcpview.engine.pump import load

    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("corpus of public captures not found")
    seen = set()
    for path in sorted(p for p in corpus.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap")):
        res = load(str(path))
        if res.timeline.packets == 0:
            continue
        d = diagnose(res.timeline)
        assert d.shares.shape == (len(d), len(CATEGORIES))
        assert (d.shares >= 0).all()
        assert d.shares.sum(axis=1) == pytest.approx(d.duration, abs=1e-6), path.name
        for row in range(len(d)):
            g = d.of(row)
            assert g.verdict in VERDICTS
            assert g.evidence and all(set(e) == {"frame", "ts", "text"} for e in g.evidence), path.name
            seen.add(g.verdict)
    assert len(seen) >= 4, seen  # the corpus has more than one kind of trouble


def test_a_cursor_that_moves_on_gives_what_a_fresh_pass_gives() -> None:
    import numpy as np

    from tcpview.engine.analysis.diagnosis import diagnose
    from tcpview.engine.pump import load

    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("corpus of public captures not found")
    tl = load(str(corpus / "arkime__retransmissions.pcap")).timeline
    mid = tl.first_ts + 5.0
    early = diagnose(tl, mid)
    assert early.duration.max() <= 5.0 + 1e-9
    later = diagnose(tl)  # carries on from the cursor at 5 s
    tl.remember("limits", None)
    tl.remember("diagnoses", None)
    fresh = diagnose(tl)
    assert np.array_equal(later.shares, fresh.shares) and np.array_equal(later.verdicts, fresh.verdicts)
    assert [later.of(r).evidence for r in range(len(later))] == [fresh.of(r).evidence for r in range(len(fresh))]
    again = diagnose(tl, mid)  # back: a fresh pass up to it
    assert np.array_equal(again.shares, early.shares)


def test_bad_input_is_one_line_and_status_2(tmp_path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    for args in (("diagnose", str(junk)), ("diagnose", str(tmp_path / "missing.pcap")), ("diagnose",),
                 ("diagnose", "--conn", "x", str(junk))):
        rc, out, err = cli_here(*args)
        assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("tcpview: error: "), (args, err)
    corpus = corpus_dir()
    if corpus is not None:
        rc, out, err = cli_here("diagnose", str(corpus / "arkime__retransmissions.pcap"), "--conn", "7")
        assert rc == 2 and out == "" and err == "tcpview: error: no connection 7 (the capture has 1: 0..0)\n"


@pytest.mark.parametrize("ahead", [8, None])
def test_a_stream_diagnosed_as_it_grows_gives_what_one_pass_gives(ahead: int | None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A live stream's connections come a few per tick and the viewer asks for the verdicts
    and one connection's breakdown each tick: the rows made ahead for new connections (the
    pass's state grows, by doubling past the first rows made ahead) give the answers one pass
    over the whole gives."""
    import numpy as np
    from helpers import many_connections

    from tcpview.engine.analysis import diagnosis
    from tcpview.engine.analysis.diagnosis import breakdown_at, diagnose, verdicts_at
    from tcpview.engine.timeline.tracker import Tracker

    if ahead is not None:
        monkeypatch.setattr(diagnosis, "ROWS_AHEAD", ahead)

    frames = many_connections(300, seed=11)
    growing, whole = Tracker(), Tracker()
    whole.feed_records((i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(frames))
    rows = []
    for start in range(0, len(frames), 37):
        growing.feed_records((i + 1, ts, lt, raw, 0, len(raw), len(raw))
                             for i, (ts, lt, raw) in enumerate(frames[start:start + 37], start))
        rows.append(growing.tl.view().n_conn)
        verdicts_at(growing.tl)
        breakdown_at(growing.tl, 0)
    assert len(set(rows)) > 10  # the connections came over many ticks
    made = len(growing.tl.cached("limits")[2]["ints_all"])
    # grown by doubling past 8 rows, or made once
    assert 300 <= made <= 600 if ahead else made == diagnosis.ROWS_AHEAD
    grown, fresh = diagnose(growing.tl), diagnose(whole.tl)
    assert len(grown) == len(fresh) == 300
    assert np.array_equal(grown.shares, fresh.shares) and np.array_equal(grown.verdicts, fresh.verdicts)
    assert np.array_equal(verdicts_at(growing.tl), verdicts_at(whole.tl))
    for cid in (0, 150, 299):
        assert breakdown_at(growing.tl, cid) == breakdown_at(whole.tl, cid)


@pytest.mark.parametrize("items", [[], [{"id": 0, "evidence": [{"frame": 1, "text": "a\nb []"}], "s": {"x": 1.5}}],
                                   [{"id": 0}, {"id": 1, "text": "é"}]], ids=["none", "one", "two"])
def test_json_written_an_item_at_a_time_is_json_dumps_own_text(items: list[dict]) -> None:
    """``diagnose --json`` writes each connection as it is made (300,000 connections' evidence
    held together, then as one text, took 4 GB): the text is still ``json.dumps``'s, indent 1."""
    import io

    from tcpview.cli.report import write_json_list

    for ascii_only in (True, False):
        head = {"source": "a [] b", "connections": None, "verdicts": {"handshake": 1, "idle": 0}}
        out = io.StringIO()
        write_json_list(out, head, "connections", iter(items), ascii_only=ascii_only)
        want = json.dumps({**head, "connections": items}, indent=1, ensure_ascii=ascii_only) + "\n"
        assert out.getvalue() == want


def test_diagnose_json_text_is_unchanged_by_writing_it_as_it_goes(tmp_path) -> None:
    """The whole command's JSON, on a simulated scenario with several connections, is the text
    ``json.dumps`` gives its own parse."""
    pcap = tmp_path / "s.pcap"
    rc, _out, err = cli_here("simulate", "time-wait-storm", "-w", str(pcap))
    assert rc == 0, err
    rc, out, err = cli_here("diagnose", str(pcap), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["connections"]) > 3
    assert out == json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
