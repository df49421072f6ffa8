"""The kernel's own split of a sender's time beside ``tcpview diagnose``'s inference, live.

Linux's ``tcp_info`` chrono counters (busy, rwnd_limited, sndbuf_limited) are the kernel's
account of what held a socket's sending back. ``tcpview diagnose -i`` reads them during the
capture for each connection's ends on this host and puts the data sender's in the JSON's
``kernel`` slot; here they are the truth the verdict is checked against, on real Linux TCP in
network namespaces (tests/slownet.py): the capture runs in the server's namespace, whose
kernel holds the sending socket. A capture in the router's namespace, where neither end is a
socket of that kernel, gets no slot. Where the kernel and the verdict disagree the evidence
says so (checked on a real diagnosis with counters that disagree), and the live viewer's
breakdown bar shows the counters (Pilot, real packets on lo).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest
from helpers import REPO, corpus_dir, wait_until


def _live_diagnose(cause: str, tmp_path, seconds: float, on_router: bool = False) -> dict:  # type: ignore[no-untyped-def]
    import slownet

    why = slownet.missing()
    if why:
        pytest.skip(why)
    out = tmp_path / f"{cause}.json"
    cmd = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tcpview", "diagnose", "--json", "--duration",
           str(seconds), "-f", "tcp", "-i"]
    slownet.run(cause, out, live=cmd, on_router=on_router)
    doc = json.loads(out.read_text())
    assert len(doc["connections"]) == slownet.CONNECTIONS, doc
    return doc


def test_slow_reader_the_kernel_says_receive_window_and_so_does_the_verdict(tmp_path) -> None:
    """The client reads slowly through a small buffer: the server's socket (the sender) was
    receive-window limited most of its busy time, and every verdict is receive_window."""
    doc = _live_diagnose("receive_window", tmp_path, 3)
    for c in doc["connections"]:
        k = c.get("kernel")
        assert k is not None, c
        assert set(k) == {"side", "sender", "busy_us", "rwnd_limited_us", "sndbuf_limited_us", "read_at"}
        assert k["side"] == "server" and k["sender"] is True
        assert k["busy_us"] > 0 and k["rwnd_limited_us"] > k["busy_us"] / 2, k  # the kernel as truth
        assert c["verdict"] == "receive_window", (c["verdict"], k)
        assert not any(e["text"].startswith("the kernel disagrees") for e in c["evidence"])
        assert abs(k["read_at"] - c["evidence"][0]["ts"]) < 30  # read during the capture, on its clock


def test_rate_limited_link_the_kernel_says_not_the_window(tmp_path) -> None:
    """Behind a tbf with a deep queue the sender is held by the link, not the window: the
    kernel's rwnd_limited is under half its busy time (0% in most runs; 12% and 45% under
    heavy load, when the receiving program itself ran late), and the verdict is not
    receive_window."""
    doc = _live_diagnose("bottleneck", tmp_path, 3)
    for c in doc["connections"]:
        k = c.get("kernel")
        assert k is not None and k["side"] == "server" and k["sender"] is True, c
        assert k["busy_us"] > 0 and k["rwnd_limited_us"] < k["busy_us"] / 2, k
        assert c["verdict"] != "receive_window", (c["verdict"], k)


def test_no_end_on_this_host_no_kernel_slot(tmp_path) -> None:
    """Captured in the router's namespace: its kernel holds neither end, so no connection has
    a ``kernel`` slot (the verdicts are as anywhere)."""
    doc = _live_diagnose("server_response", tmp_path, 2, on_router=True)
    for c in doc["connections"]:
        assert "kernel" not in c, c
        assert c["verdict"] == "server_response"


def _corpus_diagnosis():  # type: ignore[no-untyped-def]
    from tcpview.engine.analysis.diagnosis import diagnose
    from tcpview.engine.pump import load

    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("corpus of public captures not found")
    tl = load(str(corpus / "arkime__retransmissions.pcap")).timeline
    return tl, diagnose(tl).of(0)


def test_a_disagreement_is_said_in_the_evidence() -> None:
    """Counters that say receive-window limited beside a verdict that is not get a line of
    evidence (a headline, so the text shows it); counters that agree, or are the receiver's,
    get none."""
    from tcpview.engine.analysis.kernel_check import beside_kernel

    tl, g = _corpus_diagnosis()
    assert g.verdict != "receive_window"
    before = len(g.evidence)
    rwnd = {"busy_us": 2_000_000, "rwnd_limited_us": 1_500_000, "sndbuf_limited_us": 0, "read_at": 5.0}
    beside_kernel(g, {g.sender: rwnd})
    assert g.kernel is not None and g.kernel["side"] == g.sender and g.kernel["sender"] is True
    assert len(g.evidence) == before + 1 and g.headlines[-1] == before
    line = g.evidence[-1]
    assert line["frame"] is None and line["ts"] == 5.0
    assert line["text"].startswith(f"the kernel disagrees: the {g.sender}'s socket was receive-window limited 75%")

    _tl, g = _corpus_diagnosis()
    other = "client" if g.sender == "server" else "server"
    before = len(g.evidence)
    beside_kernel(g, {other: rwnd})  # only the receiver is here: its counters, no judgement
    assert g.kernel is not None and g.kernel["side"] == other and g.kernel["sender"] is False
    assert len(g.evidence) == before

    _tl, g = _corpus_diagnosis()
    quiet = {"busy_us": 2_000_000, "rwnd_limited_us": 10, "sndbuf_limited_us": 0, "read_at": 5.0}
    before = len(g.evidence)
    beside_kernel(g, {g.sender: quiet})
    assert len(g.evidence) == before
    _tl, g = _corpus_diagnosis()
    assert beside_kernel(g, {}).kernel is None and "kernel" not in g.as_dict()


async def test_the_live_viewer_shows_the_counters_in_the_breakdown_bar() -> None:
    """``tcpview live`` on lo while a slow reader drains a server: the bar above the ladder
    shows the server's own rwnd_limited share beside the inferred split."""
    from livehelp import need_root

    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.slow_bar import SlowBar

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        c, _ = listener.accept()
        c.sendall(b"x" * 200_000)
        c.shutdown(socket.SHUT_WR)
        c.recv(16)
        c.close()

    def read_slowly() -> None:
        k = socket.socket()
        k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        k.connect(("127.0.0.1", port))
        while k.recv(1024):
            time.sleep(0.01)
        k.close()

    src = LiveSource("lo", f"tcp port {port}")
    app = LiveApp(src)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            workers = [threading.Thread(target=f, daemon=True) for f in (serve, read_slowly)]
            for w in workers:
                w.start()
            assert await wait_until(lambda: len(app.tl.conns) == 1, 30, 0.05, pilot.pause)
            cid = next(iter(app.tl.conns)).id
            app.query_one(ConnectionTable).focus()
            bar = app.query_one(SlowBar)
            assert await wait_until(lambda: "kernel server rwnd " in str(bar.render()), 30, 0.1, pilot.pause), \
                str(bar.render())
            got = app.chrono.ends(cid)["server"]
            assert got["rwnd_limited_us"] > got["busy_us"] / 2, got
            assert str(bar.render()).startswith("slow: receive window ")
            for w in workers:
                w.join(30)
            await pilot.press("q")
    finally:
        src.close()
        listener.close()
