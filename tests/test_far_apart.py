"""Captures far apart in time read as one: a one-line hint names the ``--offset`` that lines
them up (stderr for the headless commands, a notification in the viewer); none when they are
close, or once the offset is given."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import Flow, cli, wait_until, write_frames_pcap
from uihelp import T0, Notes, write_capture

from tcpview.cli import build_parser
from tcpview.cli.replay import replay_source
from tcpview.ui.app import TcpviewApp

DAYS_400 = 400 * 86400.0


def _other(tmp_path: Path, start: float) -> Path:
    """A one-connection capture beginning at ``start`` (another client than the known capture's)."""
    frames: list = []
    f = Flow(cip="10.9.0.1", cport=43000, t0=start, frames=frames)
    f.handshake()
    f.c("PA", b"ping")
    f.s("A")
    return write_frames_pcap(tmp_path / f"other-{int(start)}.pcap", frames)


@pytest.fixture
def known(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "known.pcap")


def test_summary_of_captures_400_days_apart_says_which_offset_lines_them_up(known: Path, tmp_path: Path) -> None:
    late = _other(tmp_path, T0 + DAYS_400)
    rc, out, err = cli("summary", str(known), str(late))
    assert rc == 0, err
    hints = [line for line in err.splitlines() if "--offset" in line]
    assert len(hints) == 1, err
    assert hints[0].startswith(f"tcpview: {late} starts 400 days after {known} ends")
    # the offset starts the later capture where the first starts: given, the hint is gone
    m = re.search(rf"--offset {re.escape(str(late))}=(-?[0-9.]+) ", hints[0])
    assert m is not None and float(m[1]) == pytest.approx(-DAYS_400, abs=0.01)  # (the first frames' times)
    rc, out2, err2 = cli("summary", str(known), str(late), "--offset", f"{late}={m[1]}")
    assert rc == 0 and "--offset" not in err2, err2
    assert "connections" in out2.lower()


def test_captures_hours_apart_or_overlapping_get_no_hint(known: Path, tmp_path: Path) -> None:
    for start in (T0 + 1.0, T0 + 6 * 3600.0):  # overlapping; the same day
        rc, _out, err = cli("summary", str(known), str(_other(tmp_path, start)))
        assert rc == 0 and "--offset" not in err, err


def test_the_earlier_capture_given_second_is_the_one_to_move(known: Path, tmp_path: Path) -> None:
    """The first capture's clock is the one the others are put on (``--offset`` refuses it),
    so the capture given second moves, forwards here."""
    early = _other(tmp_path, T0 - DAYS_400)
    rc, _out, err = cli("summary", str(known), str(early))
    assert rc == 0, err
    assert f"{early} starts " not in err and f"{known} starts 400 days after {early} ends" in err, err
    m = re.search(rf"--offset {re.escape(str(early))}=(-?[0-9.]+) ", err)
    assert m is not None and float(m[1]) == pytest.approx(DAYS_400, abs=0.01), err


async def test_the_viewer_notifies_the_hint_once_read(known: Path, tmp_path: Path) -> None:
    late = _other(tmp_path, T0 + DAYS_400)
    source, opts = replay_source(build_parser().parse_args(["replay", str(known), str(late)]))
    app = TcpviewApp(source, **opts, tick=3600)
    notes = Notes()
    async with app.run_test(size=(80, 24), message_hook=notes) as pilot:
        await app.workers.wait_for_complete()
        assert await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        assert await wait_until(lambda: any(n.title == "captures far apart" for n in notes), 5, 0.02, pilot.pause)
        said = [str(n.message) for n in notes if n.title == "captures far apart"]
        assert len(said) == 1 and f"--offset {late}=" in said[0] and "400 days" in said[0]
