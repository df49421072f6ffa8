"""What the viewer says fits an 80x24 terminal (Pilot, the screen as drawn): the player bar's
first-run notice, the stream pane's header, the detail pane's ``from FILE`` of a frame from
one of several captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Flow, wait_until, write_frames_pcap
from uihelp import T0, screen_strips, write_capture

from tcpview.engine.pump import BatchInfo
from tcpview.sources.base import FileSource
from tcpview.sources.merge import MergedSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.fmt import ellipsize_path
from tcpview.ui.messages import BatchArrived
from tcpview.ui.screens.detail import DetailScreen
from tcpview.ui.widgets.ladder import Ladder


def _screen(app: TcpviewApp) -> list[str]:
    return [strip.text for strip in screen_strips(app)]


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


@pytest.mark.parametrize(("size", "says"), [((80, 24), "compiling"),
                                            ((120, 40), "preparing the engine (first run)…")])
async def test_the_first_run_notice_fits_the_player_bar(tmp_path: Path, size: tuple[int, int], says: str) -> None:
    """While the engine compiles (the pump says so with each batch) the bar says it in the
    columns there are, after the time, which stays whole."""
    app = TcpviewApp(FileSource(str(write_capture(tmp_path / "known.pcap"))), tick=3600)
    async with app.run_test(size=size) as pilot:
        await _loaded(app, pilot)
        app.post_message(BatchArrived(BatchInfo(17, None, preparing=True)))
        await pilot.pause()
        app.refresh_views(force=True)
        await pilot.pause()
        bar = _screen(app)[0]
        assert "00:02.600 / 00:02.600" in bar and says in bar, bar
        assert bar.rstrip().endswith("…")  # the notice whole, not cut at the edge


async def test_the_stream_header_keeps_both_directions_at_80_columns(tmp_path: Path) -> None:
    """``f``: the header gives both directions' byte counts within 80 columns, for endpoints
    as long as IPv4 ones get (the second direction is called ``back`` to fit)."""
    frames: list = []
    f = Flow(cip="192.168.100.200", sip="172.16.254.100", cport=60526, sport=8443, t0=T0, frames=frames)
    f.handshake()
    f.c("PA", b"hello")
    f.s("PA", b"goodbye")
    f.c("A")
    app = TcpviewApp(FileSource(str(write_frames_pcap(tmp_path / "long.pcap", frames))), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        await pilot.press("f")
        assert await wait_until(lambda: any("5 bytes" in line for line in _screen(app)), 10, 0.02, pilot.pause)
        header = next(line for line in _screen(app) if "5 bytes" in line)
        assert "192.168.100.200:60526 → 172.16.254.100:8443: 5 bytes" in header and "back: 7 bytes" in header, header


async def test_the_detail_title_keeps_the_file_name_of_a_long_path(tmp_path: Path) -> None:
    """Two captures merged, the second deep in directories: the detail pane of its frame says
    ``from`` its path with the middle left out, the start and the file name whole."""
    deep = tmp_path.joinpath("captures", "from-the-server-side", "of-the-load-balancer", "on-tuesday")
    deep.mkdir(parents=True)
    first = write_capture(tmp_path / "known.pcap")
    frames: list = []
    Flow(cip="10.9.0.1", cport=43000, t0=T0 + 10.0, frames=frames).handshake()
    second = write_frames_pcap(deep / "server-side-capture.pcap", frames)
    assert len(str(second)) > 80
    app = TcpviewApp(MergedSource([str(first), str(second)]), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        await pilot.press("ctrl+home", *"jjjj", "enter")  # connection 4: the second capture's
        ladder = app.query_one(Ladder)
        assert await wait_until(lambda: ladder.row(ladder.cursor) is not None, 10, 0.02, pilot.pause)
        await pilot.press("enter")
        assert await wait_until(lambda: isinstance(app.screen, DetailScreen), 10, 0.02, pilot.pause)
        assert app.screen.source == str(second)
        await pilot.pause()
        title = next(line for line in _screen(app) if " from " in line)
        assert "  from /" in title and "…/server-side-capture.pcap" in title, title
        assert title.startswith("╭") and title.rstrip().endswith("╮"), title  # within the box


def test_a_long_path_loses_its_middle_never_its_file_name() -> None:
    path = "/srv/captures/2026/12/05/edge-router-ring_00042_20261205.pcap"
    assert ellipsize_path(path, 100) == path
    assert ellipsize_path(path, 50) == "/srv/capture…/edge-router-ring_00042_20261205.pcap"
    assert ellipsize_path(path, 40) == "…/edge-router-ring_00042_20261205.pcap"
    assert ellipsize_path(path, 20) == "edge-rout…61205.pcap"  # the name alone: its middle goes
    assert all(len(ellipsize_path(path, w)) <= w for w in range(1, 80))
