"""The input box's questions, as a user answers them (Pilot): the time to go to (``t``), the
file to export to (``e``), and keys typed or pasted right behind the one that opens it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until
from textual import events
from uihelp import T0, Notes, arrive_at_once, write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
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


async def test_keys_typed_right_behind_slash_go_into_the_filter_box(capture: Path) -> None:
    """``/state:est`` arriving in one read: the box opens holding ``state:est``, the filter applies as
    typed, and none of the letters acted as a key of the table (``s`` sort, ``t`` time box,
    ``a`` absolute seq, ``e`` export)."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        prompt, table = app.query_one(Prompt), app.query_one(ConnectionTable)
        sort, title = table.model.sort, str(app.query_one("#ladder-box").border_subtitle)
        arrive_at_once(app, *"/state:est")
        assert await wait_until(lambda: prompt.value == "state:est", 5, 0.02, pilot.pause), prompt.value
        assert prompt.mode == "filter" and app.focused is prompt
        assert table.model.sort == sort and str(app.query_one("#ladder-box").border_subtitle) == title
        await pilot.press("enter")
        assert await wait_until(lambda: not prompt.is_open and app.focused is table, 5, 0.02, pilot.pause)
        arrive_at_once(app, "t", *"1.5")  # the time box likewise
        assert await wait_until(lambda: prompt.mode == "time" and prompt.value == "1.5", 5, 0.02, pilot.pause)
        await pilot.press("enter")
        assert await wait_until(lambda: app.player.position() == pytest.approx(T0 + 1.5), 5, 0.02, pilot.pause)
        assert table.model.query.text == "state:est" and not prompt.is_open


async def test_keys_typed_right_after_enter_go_to_the_table_not_the_box(capture: Path) -> None:
    """``/``, a filter, Enter and ``j j`` in one read: the box takes the filter and closes, and
    the two ``j`` move the table's cursor two rows down (they were typed into the box, which
    the app then closed); a filter Enter refuses keeps the keys typed after it as text."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        prompt, table = app.query_one(Prompt), app.query_one(ConnectionTable)
        assert len(table.rows) >= 3
        table.select_cid(int(table.rows[0]))
        await pilot.pause()
        arrive_at_once(app, "/", events.Key("enter", "\r"), "j", "j")
        assert await wait_until(lambda: table.selected == int(table.rows[2]), 5, 0.02, pilot.pause), table.selected
        assert not prompt.is_open and app.focused is table and table.model.query.text == ""
        arrive_at_once(app, "/", *"state:", events.Key("enter", "\r"), *"est")  # refused ("state:" names none): still typing
        assert await wait_until(lambda: prompt.value == "state:est", 5, 0.02, pilot.pause), prompt.value
        assert prompt.is_open and prompt.mode == "filter"


async def test_a_paste_right_after_slash_goes_into_the_filter_box(capture: Path) -> None:
    """A paste that arrives with the ``/`` before it fills the box and filters the table."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        prompt, table = app.query_one(Prompt), app.query_one(ConnectionTable)
        arrive_at_once(app, "/", events.Paste("port:443"))
        assert await wait_until(lambda: prompt.value == "port:443", 5, 0.02, pilot.pause), prompt.value
        assert await wait_until(lambda: len(table.rows) == 1, 5, 0.02, pilot.pause)


async def test_the_keys_that_open_the_box_are_typed_in_it_and_leave_other_screens_alone(capture: Path) -> None:
    """``/``, ``t`` and ``e`` act as the app takes them (priority bindings): typed into an open
    box they are text, and with the help screen over the viewer they do not open the box."""
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(app, pilot)
        prompt = app.query_one(Prompt)
        await pilot.press("slash", *"10.0.0.1/te")
        assert prompt.mode == "filter" and prompt.value == "10.0.0.1/te"
        await pilot.press("escape", "question_mark")
        assert await wait_until(lambda: app.screen is not prompt.screen, 5, 0.02, pilot.pause)
        await pilot.press("slash", "t", "e")
        assert not prompt.is_open and app.screen is not prompt.screen
