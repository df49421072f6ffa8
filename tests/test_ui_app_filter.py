"""The Textual app driven with Pilot on a capture with known states (see uihelp): filtering and
sorting the connection table. The filter box (and its escape), a filter on state that follows the
cursor, the open prompt drawn above the footer, sorting by keys and by a header click, and the
counters bar's toggle and click filters. Moved from test_ui_app.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Footer
from uiapphelp import SIZES, capture_fixture, loaded, seek  # noqa: F401  (capture_fixture: the capture fixture)

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.counters import CountersBar
from tcpview.ui.widgets.prompt import Prompt


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state:CLOSE_WAIT", [0]),
        ("state:close-wait", [0]),
        ("state:tw", [1]),
        ("port:443", [1]),
        ("10.0.0.1", [0, 1]),
        ("10.0.0.1 state:FIN_WAIT_2", [0]),
        ("state:closed 10.0.0.3", [2]),
        ("is:refused", [2]),
        ("client:SYN_SENT", [3]),
        ("server:SYN_SENT", []),
        (":22", [3]),
    ],
)
async def test_filter_box(capture: Path, query: str, expected: list[int]) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("slash")
        await pilot.press(*query)
        await pilot.press("enter")
        await pilot.pause()
        table = app.query_one(ConnectionTable)
        assert list(table.rows) == expected
        assert str(table.border_title).startswith(f"Connections {len(expected)} of 4")
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        assert list(table.rows) == [0, 1, 2, 3]


async def test_filter_on_state_depends_on_the_cursor(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await pilot.press("slash", *"state:established", "enter")
        assert list(app.query_one(ConnectionTable).rows) == []
        await seek(app, pilot, 1.25)
        assert list(app.query_one(ConnectionTable).rows) == [1]
        await seek(app, pilot, 0.25)
        assert list(app.query_one(ConnectionTable).rows) == [0]


async def test_filter_escape_in_the_box_restores_the_old_filter(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        await pilot.press("slash", *"port:80", "enter")
        assert list(table.rows) == [0]
        await pilot.press("slash", "backspace", "backspace", "4", "4", "3")
        await pilot.pause()
        assert list(table.rows) == [1]  # live while typing
        await pilot.press("escape")
        await pilot.pause()
        assert list(table.rows) == [0] and table.model.query.text == "port:80"


@pytest.mark.parametrize("size", SIZES)
async def test_the_open_prompt_is_shown_above_the_footer(capture: Path, size: tuple[int, int]) -> None:
    """The filter and time boxes are drawn where the user sees them, not under the footer."""
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=size) as pilot:
        await loaded(app, pilot)
        prompt, footer = app.query_one(Prompt), app.query_one(Footer)
        assert not prompt.display
        for key, text in (("slash", "port:80"), ("t", "0.5")):
            await pilot.press(key, *text)
            await pilot.pause()
            assert prompt.display and prompt.value == text and prompt.has_focus
            region = prompt.region
            assert region.height >= 1 and region.width > len(text)
            assert app.screen.region.contains_region(region) and not region.overlaps(footer.region)
            assert region.bottom <= footer.region.y  # above the footer, not beside or under it
            assert app.screen.get_widget_at(region.x + 1, region.y)[0] is prompt  # nothing covers it
            await pilot.press("escape")
            await pilot.pause()
            assert not prompt.display


async def test_sorting_by_keys_and_header_click(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        await pilot.press("r")
        assert list(table.rows) == [3, 2, 1, 0]
        await pilot.press("r")
        await pilot.press("s")  # next column: client
        assert table.model.sort == "client"
        assert list(table.rows) == [0, 1, 2, 3]
        await pilot.press("s", "s")  # client state
        assert table.model.sort == "cstate"
        # CLOSED(0) < SYN_SENT(2) < FIN_WAIT_2(6) < TIME_WAIT(10)
        assert list(table.rows) == [2, 3, 0, 1]
        # click the "pkts" header: packets ascending, ties by id
        x = 0
        for col in table.columns():
            if col.key == "pkts":
                break
            x += col.width + 1
        region = table.content_region
        await pilot.click(ConnectionTable, offset=(region.x - table.region.x + x + 1, region.y - table.region.y))
        await pilot.pause()
        assert table.model.sort == "pkts"
        assert list(table.rows) == [2, 3, 0, 1]
        await pilot.click(ConnectionTable, offset=(region.x - table.region.x + x + 1, region.y - table.region.y))
        await pilot.pause()
        assert list(table.rows) == [1, 0, 2, 3] or list(table.rows) == [1, 0, 3, 2]
        assert table.model.reverse


async def test_counters_toggle_and_click_filters(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        bar = app.query_one(CountersBar)
        assert bar.size.height == 1
        await pilot.press("c")
        await pilot.pause()
        assert bar.size.height == 2
        lines = str(bar.render()).splitlines()
        assert "FIN_WAIT_2 1" in lines[1] and "SYN_SENT 1" in lines[1]
        assert "TIME_WAIT 1" in lines[0] and "CLOSE_WAIT 1" in lines[0]
        await pilot.click(CountersBar, offset=(1 + lines[0].index("CLOSE_WAIT"), 0))
        await pilot.pause()
        assert list(app.query_one(ConnectionTable).rows) == [0]


