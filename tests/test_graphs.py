"""The graphs of a connection: the series from the store (checked against the segments they
come from), the braille drawing, ``tcpview graph`` (text and SVG), and the graph pane in the
app (Pilot): ``v`` shows it, ``m`` changes the kind, ``z`` zooms, a click seeks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, track, wait_until, write_frames_pcap
from uihelp import lossy_frames

from tcpview.engine.analysis import graphs
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.graph_pane import GraphPane
from tcpview.ui.widgets.ladder import Ladder


@pytest.fixture(scope="module")
def lossy(tmp_path_factory) -> Path:
    return write_frames_pcap(tmp_path_factory.mktemp("g") / "lossy.pcap", lossy_frames())


def test_series_come_from_the_segments() -> None:
    tl = track(lossy_frames()).tl
    c = tl.conns[1]
    segs = list(tl.segments(1))
    g = graphs.build(tl, 1, "tseq")
    data = {s.name: s for s in g.series}
    sent = [s for s in segs if s.dir == "c2s" and s.len]
    # every data segment is a dot at its time and relative sequence number; the late one is
    # the retransmission
    assert sorted(data["data"].y.tolist() + data["retransmission"].y.tolist()) == sorted(s.seq for s in sent)
    assert data["retransmission"].y.tolist() == [1.0]
    assert np.allclose(data["retransmission"].x, [s.ts - c.first_ts for s in sent if "retransmission" in s.analysis])
    t = graphs.build(tl, 1, "tcptrace")
    bars = {s.name: s for s in t.series}
    assert (bars["data"].y2 - bars["data"].y).tolist() == [100.0, 100.0]
    acks = [s for s in segs if s.dir == "s2c" and "ACK" in s.flags]
    assert bars["ack"].y.tolist() == [float(s.ack) for s in acks]
    assert bars["window"].y.tolist() == [float(s.ack + s.win) for s in acks]
    rtt = graphs.build(tl, 1, "rtt")
    got = sorted(np.concatenate([s.y for s in rtt.series]).round(6).tolist())
    want = sorted(round(s.ack_rtt * 1000, 6) for s in segs if s.ack_rtt is not None)
    assert got == want
    w = graphs.build(tl, 3, "window")
    assert {s.name: s.y.tolist() for s in w.series}["server's window"][-1] == 0.0  # the zero window
    thr = graphs.build(tl, 1, "throughput", window=1.0)
    # over a 1 s window the client sent 300 bytes by its last segment
    assert thr.series[0].y[-1] == pytest.approx(300.0)


def test_braille_drawing_puts_each_point_in_its_cell() -> None:
    g = graphs.Graph("tseq", "t", "s", "bytes", [graphs.Series("a", np.array([0.0, 1.0, 2.0]),
                                                                np.array([0.0, 5.0, 10.0]))])
    cv = graphs.render(g, 3, 2)
    rows = cv.text_rows()
    assert rows[1][0] != " " and rows[0][2] != " "  # the first point low left, the last high right
    assert cv.bits[1, 0] & 0x40 and cv.bits[0, 2] & 0x08  # bottom-left dot of its cell; top-right of its
    assert (cv.x0, cv.x1, cv.y0, cv.y1) == (0.0, 2.0, 0.0, 10.0)
    # bars fill every dot row between their ends
    bar = graphs.Graph("tcptrace", "t", "s", "b", [graphs.Series("d", np.array([0.0]), np.array([0.0]),
                                                                 np.array([10.0]))])
    cv = graphs.render(bar, 1, 2, 0.0, 1.0)
    assert (cv.bits[:, 0] & 0x47).tolist() == [0x47, 0x47]  # the left column of both cells, all 4 rows


def test_a_flat_series_gets_axis_labels_that_differ() -> None:
    """A window that never changes (8,760 bytes all along): the y axis gets room around the
    line, so its three labels say three values, not 8.76k three times."""
    flat = graphs.Graph("window", "t", "s", "bytes", [graphs.Series("w", np.array([0.0, 1.0, 2.0]),
                                                                     np.full(3, 8760.0))])
    y0, y1 = flat.y_range(0.0, 2.0)
    assert y0 < 8760.0 < y1
    labels = [line.split("┤")[0].strip() for line in graphs.text(flat, 60, 12).splitlines() if "┤" in line]
    labels = [lab for lab in labels if lab]
    assert len(labels) == 3 and len(set(labels)) == 3, labels


def test_graph_command_text_and_svg(lossy: Path, tmp_path: Path) -> None:
    rc, out, err = cli("graph", str(lossy), "--conn", "1", "--kind", "tcptrace")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("#1 10.0.0.1:41001 → 10.0.0.2:80  sequence numbers")
    rc, back, err = cli("graph", str(lossy), "--conn", "1", "--kind", "tseq", "--dir", "s2c")
    assert rc == 0, err
    assert back.startswith("#1 10.0.0.2:80 → 10.0.0.1:41001  sequence numbers")  # the direction drawn
    assert any("┤" in line and any(0x2800 < ord(ch) <= 0x28FF for ch in line) for line in lines)
    assert "y: bytes" in out and "window, ack, data, retransmission" in out
    svg = tmp_path / "g.svg"
    for kind in graphs.KINDS:
        rc, _o, err = cli("graph", str(lossy), "--conn", "1", "--kind", kind, "--format", "svg", "-o", str(svg),
                          "--force")
        assert rc == 0, err
        root = ET.parse(svg).getroot()
        names = [el.get("data-name") for el in root.iter() if el.get("class") == "series"]
        assert names == [s.name for s in graphs.build(track(lossy_frames()).tl, 1, kind).series]
    for bad in (["--conn", "9"], ["--conn", "1", "--kind", "pie"]):
        rc, _o, err = cli("graph", str(lossy), *bad)
        assert rc == 2 and err.count("\n") == 1


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


async def test_graph_pane_follows_the_player(lossy: Path) -> None:
    app = TcpviewApp(FileSource(str(lossy)), tick=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        pane, ladder = app.query_one(GraphPane), app.query_one(Ladder)
        assert not pane.display
        await pilot.press("j", "v")  # connection 1, its graph instead of its ladder
        await app.workers.wait_for_complete()  # the graph is built on a worker
        await pilot.pause()
        assert pane.display and not ladder.display and pane.has_focus
        assert pane.cid == 1 and pane.kind == "tseq"
        text = [pane.render_line(y).text for y in range(pane.size.height)]
        assert text[0].startswith("#1 10.0.0.1:41001 → 10.0.0.2:80  sequence numbers")
        assert sum(ch != " " for line in text[1:] for ch in line.split("┤", 1)[-1]) >= 2
        await pilot.press("m")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.kind == "tcptrace"
        # the cursor inside the connection: a line at its place
        c = app.tl.conns[1]
        app.player.seek(c.first_ts + 0.25)
        app.refresh_views()
        await pilot.pause()
        cv = pane.canvas()
        col = pane.cursor_col(cv)
        assert 0 < col < cv.bits.shape[1] - 1
        lines = [pane.render_line(y) for y in range(1, 1 + cv.bits.shape[0])]
        assert all(line.text[9 + col] in "│" or ord(line.text[9 + col]) >= 0x2800 for line in lines)
        # zoom in around the cursor, then back to the whole
        whole = pane.x_range()
        await pilot.press("z")
        await pilot.pause()
        x0, x1 = pane.x_range()
        assert x1 - x0 == pytest.approx((whole[1] - whole[0]) / 2) and x0 < 0.25 < x1
        await pilot.press("x")
        assert pane.x_range() == whole
        # a click on the plot seeks there
        await pilot.click(GraphPane, offset=(9 + 10, 5))
        await pilot.pause()
        w = pane.size.width - 9
        want = c.first_ts + whole[0] + (whole[1] - whole[0]) * (10.5 / w)
        assert app.player.position() == pytest.approx(want, abs=(whole[1] - whole[0]) / w)
        await pilot.press("v")
        await pilot.pause()
        assert ladder.display and not pane.display


def test_tcptrace_draws_the_sack_blocks_read_from_the_frames(tmp_path: Path) -> None:
    from helpers import Flow

    f = Flow(cport=42000)
    f.handshake()
    start = f.nxt[0]
    f.nxt[0] += 100  # the first 100 bytes: lost before the capture point
    f.c("PA", b"b" * 100)
    f.c("PA", b"c" * 100)
    # the receiver acknowledges up to the hole and reports what it has beyond it
    f.s("A", ack=start, options=[("SAck", (start + 100, start + 300))])
    path = write_frames_pcap(tmp_path / "sack.pcap", f.frames)
    tl = track(f.frames).tl
    g = graphs.build(tl, 0, "tcptrace", frames=str(path))
    blocks = {s.name: s for s in g.series}["sack"]
    assert blocks.y.tolist() == [101.0] and blocks.y2.tolist() == [301.0]  # relative, as the ladder
    # from a frame getter (what the viewer passes), the same
    by_number = {i + 1: (lt, raw) for i, (_t, lt, raw) in enumerate(f.frames)}
    again = graphs.build(tl, 0, "tcptrace", frames=by_number.get)
    assert {s.name: s for s in again.series}["sack"].y2.tolist() == [301.0]
    assert "sack" not in [s.name for s in graphs.build(tl, 0, "tcptrace").series]  # no frames: none
    rc, out, err = cli("graph", str(path), "--conn", "0", "--kind", "tcptrace")
    assert rc == 0 and "window, ack, sack, data" in out, err
