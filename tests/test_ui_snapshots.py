"""Snapshots of the app at fixed sizes and cursor times, on the capture of uihelp.

Run ``pytest tests/test_ui_snapshots.py --snapshot-update`` after an intended change of the
look, and check the new SVGs by eye. Nothing on screen depends on the wall clock: the player
is paused, the source is read to its end before the picture is taken.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until
from uihelp import write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp


def make_app(tmp_path: Path) -> TcpviewApp:
    source = FileSource(str(write_capture(tmp_path / "known.pcap")))
    source.name = "replay known.pcap"  # the temporary path would differ on every run
    return TcpviewApp(source, tick=3600)


def before(*keys: str, at: float | None = None):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        if at is not None:
            app.seek_offset(at)
        await pilot.press(*keys)
        await app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_end_of_capture(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=before())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_client_fin_explained(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    """0.55 s: the client's FIN made the server CLOSE_WAIT; the why line says so."""
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=before(at=0.55))


def test_all_states_and_second_connection(snap_compare, tmp_path: Path) -> None:
    """1.65 s, connection 1 selected (TIME_WAIT / LAST_ACK), every state's counter shown."""
    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=before("j", "c", at=1.65))


def test_filtered_and_sorted(snap_compare, tmp_path: Path) -> None:
    keys = ("slash", *"10.0.0.1", "enter", "s", "s", "s", "r")
    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=before(*keys))


def test_detail_pane(snap_compare, tmp_path: Path) -> None:
    """Enter on the server's data segment of connection 1: scapy's dissection, hex dump."""
    keys = ("j", "enter", "k", "k", "k", "k", "enter")
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=before(*keys))


def test_help(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=before("question_mark"))


def test_lossy_connection_ladder(snap_compare, tmp_path: Path) -> None:
    """Connection 1 lost a segment: three duplicate ACKs, then the retransmission, tagged in the
    ladder in the theme's colours."""
    from helpers import write_frames_pcap
    from uihelp import lossy_frames

    source = FileSource(str(write_frames_pcap(tmp_path / "lossy.pcap", lossy_frames())))
    source.name = "replay lossy.pcap"
    app = TcpviewApp(source, tick=3600)
    assert snap_compare(app, terminal_size=(120, 40), run_before=before("j"))


def test_lossy_connection_graph(snap_compare, tmp_path: Path) -> None:
    """The same connection's tcptrace graph: the segments as bars, the retransmission in the
    loss colour, the ACK line and the window edge."""
    from helpers import write_frames_pcap
    from uihelp import lossy_frames

    source = FileSource(str(write_frames_pcap(tmp_path / "lossy.pcap", lossy_frames())))
    source.name = "replay lossy.pcap"
    app = TcpviewApp(source, tick=3600)
    assert snap_compare(app, terminal_size=(120, 40), run_before=before("j", "v", "m"))
