"""The input box's questions, as a user answers them (Pilot): the time to go to (``t``) and the
file to export to (``e``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until
from uihelp import T0, Notes, write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.prompt import Prompt


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "known.pcap")


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


def _messages(notes: Notes) -> list[str]:
    return [str(n.message) for n in notes]


async def test_a_bad_time_closes_the_box_and_the_next_t_starts_afresh(capture: Path) -> None:
    """``abc`` is refused with a warning and the box closes: ``t9999`` then asks for 9999 s
    (not ``abct9999``), which is past the end: the cursor goes to the end and a warning names
    where the capture ends."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    notes = Notes()
    async with app.run_test(size=(80, 24), message_hook=notes) as pilot:
        await _loaded(app, pilot)
        prompt = app.query_one(Prompt)
        await pilot.press("g")
        assert app.player.position() == pytest.approx(T0)
        await pilot.press("t", *"abc", "enter")
        await pilot.pause()
        assert not prompt.is_open
        assert any(m.startswith("not a time: abc") for m in _messages(notes))
        await pilot.press("t", *"9999")
        assert prompt.is_open and prompt.value == "9999"
        await pilot.press("enter")
        await pilot.pause()
        assert not prompt.is_open
        assert app.player.position() == pytest.approx(T0 + 2.6)
        assert any("9999 s is past the end: the capture ends at 2.600 s (00:02.600)" in m for m in _messages(notes))
        # a time within the capture: no warning
        count = len(_messages(notes))
        await pilot.press("t", *"1.5", "enter")
        await pilot.pause()
        assert app.player.position() == pytest.approx(T0 + 1.5) and len(_messages(notes)) == count


async def test_export_proposes_a_new_file_name_and_says_where_it_wrote(capture: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``e`` opens with a format and a file name in the current directory that no file has; Enter
    writes it and the message gives its absolute path; the next proposal is another name; a
    FORMAT alone gets a name with its extension; an existing file is never overwritten."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    notes = Notes()
    async with app.run_test(size=(80, 24), message_hook=notes) as pilot:
        await _loaded(app, pilot)
        prompt = app.query_one(Prompt)
        await pilot.press("ctrl+home", "e")
        assert prompt.is_open and prompt.value == "pcap tcpview-known-conn0.pcap"
        await pilot.press("enter")
        first = work / "tcpview-known-conn0.pcap"
        assert await wait_until(first.exists, 10, 0.02, pilot.pause)
        assert await wait_until(lambda: any(m.endswith(f"to {first}") for m in _messages(notes)), 10, 0.02, pilot.pause)
        before = first.read_bytes()
        await pilot.press("e")
        assert prompt.value == "pcap tcpview-known-conn0-2.pcap"  # the first name is taken
        await pilot.press(*"csv", "enter")  # typing replaces the proposal; a format alone gets a name
        csv = work / "tcpview-known-conn0.csv"
        assert await wait_until(csv.exists, 10, 0.02, pilot.pause)
        assert csv.read_text().startswith("frame,")
        assert await wait_until(lambda: any(m.endswith(f"as csv to {csv}") for m in _messages(notes)), 10, 0.02,
                                pilot.pause)
        await pilot.press("e", *f"pcap {first.name}", "enter")  # exists: refused, the box stays open
        await pilot.pause()
        assert prompt.is_open and first.read_bytes() == before
        assert any("exists" in m for m in _messages(notes))
        await pilot.press("escape")
        # a filter: the filtered connections, named by their count
        await pilot.press("slash", *"10.0.0.1", "enter", "e")
        assert prompt.value == "pcap tcpview-known-2conns.pcap"
