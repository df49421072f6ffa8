"""Two vantage points of the same connections, from real traffic: a client and a server
namespace joined through a router that drops every 7th data segment each way (nftables,
counted), captured on both ends at once (tests/vantagenet.py), the server's capture shifted by
a known offset (editcap -t). Read together, every connection is joined once, the offset found
is within the one-way delays, the segments lost between the captures are what the router
dropped, and the joined timeline is one observer's (no copy flagged a retransmission). Two
captures that share no traffic merge by time and join nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import vantagenet
from helpers import cli, cli_here, running

LOSS = {"retransmission", "fast_retransmission", "spurious_retransmission", "out_of_order"}
"""The flags of a segment sent again."""

SHIFT = 2.5
"""Seconds taken off the server capture's time stamps: the offset to find is +2.5."""

pytestmark = pytest.mark.skipif(vantagenet.missing() is not None or shutil.which("tshark") is None,
                                reason=vantagenet.missing() or "needs tshark")


@pytest.fixture(scope="module")
def taps(tmp_path_factory) -> vantagenet.TwoTaps:
    """The two captures (once per module), and the server's shifted by -SHIFT seconds; made
    again when a tap's tcpdump dropped packets (a busy machine: the captures would miss
    segments, and the counts below would be off by what they missed)."""
    for _attempt in range(3):
        folder = tmp_path_factory.mktemp("taps")
        t = vantagenet.capture(folder)
        if not t.tap_drops:
            break
    subprocess.run(["editcap", "-F", "pcap", "-t", str(-SHIFT), str(t.server), str(folder / "shifted.pcap")],
                   check=True, capture_output=True)
    return t


def _summary(*args: str) -> dict:
    rc, out, err = cli("summary", "--json", *args)
    assert rc == 0, err
    return json.loads(out)


def _segments(*args: str) -> list[dict]:
    rc, out, err = cli("export", "--format", "jsonl", *args)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _tuples(path: Path) -> set[tuple[str, str]]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields",
                          "-e", "tcp.srcport", "-e", "tcp.seq_raw"], check=True, capture_output=True, text=True).stdout
    return {tuple(line.split("\t")) for line in out.splitlines()}


def test_each_connection_is_joined_once_and_the_offset_is_found(taps):
    shifted = taps.server.parent / "shifted.pcap"
    s = _summary(str(taps.client), str(shifted))
    # the same connections (client port and ISN, as tshark reads the SYNs) at both taps, each once
    assert _tuples(taps.client) == _tuples(taps.server)
    assert len(s["connections"]) == taps.connections == len(_tuples(taps.client))
    assert len({(c["client"]["port"], c["server"]["port"]) for c in s["connections"]}) == taps.connections
    first, second = s["captures"]
    assert (first["file"], first["offset"], first["vantage"]) == (str(taps.client), 0.0, "client")
    assert (second["file"], second["vantage"]) == (str(shifted), "server")
    lo, hi = second["offset_bounds"]
    assert lo <= SHIFT <= hi  # the true offset is one the traffic allows
    # the one-way delays as they truly were (the true offset, not the one found)
    err = second["offset"] - SHIFT
    true_c2s = min(c["min_one_way_delay"]["c2s"] for c in s["connections"]) - err
    true_s2c = min(c["min_one_way_delay"]["s2c"] for c in s["connections"]) + err
    assert true_c2s >= 0 and true_s2c >= 0
    assert abs(err) <= max(true_c2s, true_s2c)  # within the minimum one-way delay
    assert abs(err) <= (true_c2s + true_s2c) / 2 + 1e-9  # the midpoint's own bound
    # lost between the captures: exactly what the router dropped, each way
    lost = Counter()
    for c in s["connections"]:
        lost.update(c["lost_between_captures"])
    assert taps.dropped["c2s"] > 0 and taps.dropped["s2c"] > 0
    assert dict(lost) == taps.dropped


@pytest.mark.parametrize("kernels", ["compiled", "python"])
def test_the_join_answers_alike_compiled_and_as_plain_python(taps, kernels):
    """The join's kernels (each capture's segments decoded, their copies paired by a hash
    join cut into partitions) give the subprocess's answer in this process, either way."""
    shifted = str(taps.server.parent / "shifted.pcap")
    with running(kernels):
        rc, out, err = cli_here("summary", "--json", str(taps.client), shifted)
    assert rc == 0, err
    here = json.loads(out)
    assert here == _summary(str(taps.client), shifted)
    assert here["captures"][1]["segments_seen_by_both"] > 0


def test_the_joined_timeline_is_one_observer(taps):
    """Each segment once, at its sender's tap: the client's data and its retransmissions as the
    client's capture has them, the server's as the server's has them (a naive merge would flag
    every second copy a retransmission)."""
    shifted = taps.server.parent / "shifted.pcap"
    joined = _segments(str(taps.client), str(shifted))
    alone = {"c2s": _segments(str(taps.client)), "s2c": _segments(str(taps.server))}
    for d, segs in alone.items():
        mine = [s for s in joined if s["dir"] == d]
        assert [(s["seq_raw"], s["ack_raw"], s["len"], s["flags"]) for s in mine] == \
            [(s["seq_raw"], s["ack_raw"], s["len"], s["flags"]) for s in segs if s["dir"] == d]
        # a segment sent again is flagged as one tap alone flags it (which flag, retransmission
        # or out-of-order, can differ: the joined timeline has the other side's ACKs at their
        # sending time, as the sender's side did not see them)
        flagged = [bool(LOSS & set(s["analysis"])) for s in mine]
        assert flagged == [bool(LOSS & set(s["analysis"])) for s in segs if s["dir"] == d]
        assert any(flagged)
        want = str(taps.client) if d == "c2s" else str(shifted)
        assert {s["capture"] for s in mine} == {want}
    # merged as they are (mergecap's way), the copies are flagged: what joining prevents
    naive = _segments("--no-join", str(taps.client), str(shifted))
    assert len(naive) == len(alone["c2s"]) + len(alone["s2c"])
    flagged_alone = sum(bool(LOSS & set(s["analysis"])) for s in joined)
    assert sum(bool(LOSS & set(s["analysis"])) for s in naive) > 3 * flagged_alone
    summary = _summary(str(taps.client), str(shifted))
    pairs = summary["captures"][1]["segments_seen_by_both"]
    assert summary["packets"] == len(alone["c2s"]) + len(alone["s2c"]) - pairs


def test_a_given_offset_is_used(taps):
    shifted = taps.server.parent / "shifted.pcap"
    s = _summary(str(taps.client), str(shifted), "--offset", f"{shifted.name}={SHIFT}")
    assert s["captures"][1]["offset"] == SHIFT and s["captures"][1]["offset_given"]
    lost = Counter()
    for c in s["connections"]:
        lost.update(c["lost_between_captures"])
    assert dict(lost) == taps.dropped


def test_the_ladder_shows_each_segments_delay_and_the_losses(taps):
    shifted = taps.server.parent / "shifted.pcap"
    s = _summary(str(taps.client), str(shifted))
    c = s["connections"][0]
    rc, out, err = cli("ladder", "--conn", "0", str(taps.client), str(shifted))
    assert rc == 0, err
    rows = out.splitlines()[2:]
    assert sum("[lost between taps]" in r for r in rows) == sum(c["lost_between_captures"].values())
    assert sum("µs]" in r or "ms]" in r for r in rows) > len(rows) // 2  # the delay of those that arrived
    rc, out, err = cli("graph", "--conn", "0", "--kind", "owd", "--format", "svg", str(taps.client), str(shifted))
    assert rc == 0 and "client → server" in out and "server → client" in out, err
    rc, out, err = cli("graph", "--conn", "0", "--kind", "owd", str(taps.client))
    assert rc == 2 and err.startswith("tcpview: error: ") and "owd" in err


def test_captures_that_share_no_traffic_merge_and_join_nothing(taps, loopback_capture):
    one, other = _summary(str(taps.client)), _summary(str(loopback_capture.pcap))
    s = _summary(str(loopback_capture.pcap), str(taps.client))
    assert len(s["connections"]) == len(one["connections"]) + len(other["connections"])
    assert [(c["offset"], c["vantage"]) for c in s["captures"]] == [(0.0, None), (0.0, None)]
    assert not any("lost_between_captures" in c for c in s["connections"])
    assert s["packets"] == one["packets"] + other["packets"]
    caps = Counter(seg["capture"] for seg in _segments(str(loopback_capture.pcap), str(taps.client)))
    assert caps == {str(loopback_capture.pcap): other["tcp_packets"], str(taps.client): one["tcp_packets"]}


async def test_the_viewer_shows_the_delay_and_reads_each_frame_from_its_capture(taps) -> None:
    """The viewer on the joined captures: the ladder's rows carry the one-way delay, and the
    detail pane of a server's segment says it is the server capture's frame and shows the
    bytes as the server sent them (TTL 64: its copy, not the client's, one hop on)."""
    from helpers import wait_until
    from textual.widgets import Static

    from tcpview.engine.pump import join_source
    from tcpview.ui.app import TcpviewApp
    from tcpview.ui.screens.detail import DetailScreen
    from tcpview.ui.widgets.ladder import Ladder

    shifted = taps.server.parent / "shifted.pcap"
    app = TcpviewApp(join_source([str(taps.client), str(shifted)], {}))
    async with app.run_test(size=(130, 40)) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 30, 0.02, pilot.pause)
        await pilot.press("enter")  # connection 0's ladder
        ladder = app.query_one(Ladder)
        for _ in range(40):
            row = ladder.row(ladder.cursor)
            if row is not None and not row.c2s and row.owd is not None:
                break
            await pilot.press("k")
        assert row is not None and not row.c2s and row.owd is not None and row.owd >= 0
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert await wait_until(lambda: isinstance(app.screen, DetailScreen), 10, 0.02, pilot.pause)
        assert app.screen.source == str(shifted)  # the title says it, "from" it
        show = str(app.screen.query_one("#detail-show", Static).render())
        # sent by the server (its port) with the server's TTL: only the server capture has that
        assert "ttl       = 64" in show and f"sport     = {taps.client_port}" in show
