"""The graph pane (``v``) driven with Pilot on a connection that sends at its start and at its
end, nothing in between: zooming finds the data, panning stays within the connection's time,
an empty stretch says so, a legend names the series, ``d`` turns a sequence graph around."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Flow, wait_until, write_frames_pcap
from uihelp import Notes

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.graph_pane import GraphPane


@pytest.fixture
def two_bursts(tmp_path: Path) -> Path:
    f = Flow(t0=0.0, dt=0.01)
    f.handshake()
    for _ in range(5):
        f.c("PA", b"a" * 1000)
        f.s("A")
    f.s("PA", b"b" * 300)  # the server sends a little too
    f.c("A")
    f.t += 10.0  # ten quiet seconds
    for _ in range(5):
        f.c("PA", b"c" * 1000)
        f.s("A")
    f.c("FA"), f.s("FA"), f.c("A")
    return write_frames_pcap(tmp_path / "bursts.pcap", f.frames)


def _lines(pane: GraphPane) -> list[str]:
    return [pane.render_line(y).text for y in range(pane.size.height)]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_zoom_pan_legend_and_direction(two_bursts: Path, size: tuple[int, int]) -> None:
    app = TcpviewApp(FileSource(str(two_bursts)), tick=3600)
    notes = Notes()
    async with app.run_test(size=size, message_hook=notes) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        pane = app.query_one(GraphPane)
        await pilot.press("v")
        await app.workers.wait_for_complete()  # the graph is built on a worker
        await pilot.pause()
        assert pane.display and pane.has_focus and pane.kind == "tseq"
        g0, g1 = pane.graph.x_range()
        assert g0 >= 0 and g1 > 10
        # the legend names every series, as `tcpview graph` does
        legend = _lines(pane)[-1]
        assert "data" in legend and "retransmission" in legend
        # z: the middle of the axis is empty; the zoom goes where the data is
        await pilot.press("z")
        await pilot.pause()
        assert pane.view is not None and pane.view[1] - pane.view[0] == pytest.approx((g1 - g0) / 2)
        assert pane.canvas().bits.any()
        assert pane.canvas().y1 > 1000  # sequence numbers, not an empty 0-1 axis
        # h: never before the connection's start; Z: never wider than it
        await pilot.press(*["h"] * 8)
        await pilot.pause()
        assert pane.view[0] == pytest.approx(g0) and pane.x_range()[0] >= 0
        await pilot.press(*["l"] * 20)
        await pilot.pause()
        assert pane.view[1] == pytest.approx(g1)
        await pilot.press(*["Z"] * 4)
        await pilot.pause()
        assert pane.view is None and pane.x_range() == (g0, g1)
        # a stretch with nothing in it says so (and how to get out of it)
        pane.view = (g0 + 3.0, g0 + 6.0)
        pane.refresh()
        await pilot.pause()
        text = "\n".join(_lines(pane))
        assert "nothing between 3" in text and "h / l pan, x shows it all" in text
        await pilot.press("x")
        # d: the other direction of the sequence graph, which the title names (as drawn)
        c2s, s2c = "#0 10.0.0.1:40000 → 10.0.0.2:80  sequence", "#0 10.0.0.2:80 → 10.0.0.1:40000  sequence"
        assert pane.render_line(0).text.startswith(c2s)
        await pilot.press("d")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.render_line(0).text.startswith(s2c) and pane.direction == 1
        assert pane.graph.series[0].y.max() < 300  # the server's 300 bytes
        await pilot.press("d")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.render_line(0).text.startswith(c2s)
        await pilot.press("m", "m", "d")  # throughput shows both directions: d says so
        await pilot.pause()
        assert any("shows both directions" in str(n.message) for n in notes)
