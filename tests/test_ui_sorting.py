"""Sorting the connection table as a user does (Pilot): the ▲/▼ mark stays in sight on every
column, however narrow, and a new order starts at its top, as htop does."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import many_connections, wait_until, write_frames_pcap

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable


@pytest.fixture
def busy(tmp_path: Path) -> Path:
    return write_frames_pcap(tmp_path / "busy.pcap", many_connections(60))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_sort_mark_shows_on_every_column_and_a_sort_starts_at_the_top(busy: Path,
                                                                             size: tuple[int, int]) -> None:
    app = TcpviewApp(FileSource(str(busy)), tick=3600)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        table = app.query_one(ConnectionTable)
        keys = [c.key for c in table.columns()]
        await pilot.press("ctrl+end")  # the last row: far below the top
        await pilot.pause()
        table.scroll_end(animate=False)  # and the view down there with it
        assert await wait_until(lambda: table.scroll_y > 0, 10, 0.02, pilot.pause)
        assert table.cursor == len(table.rows) - 1
        for _key in keys[1:]:
            await pilot.press("s")
            await pilot.pause()
            col = next(c for c in table.columns() if c.key == table.model.sort)
            head = table.render_line(0).text
            left = sum(c.width + 1 for c in table.columns()[: table.columns().index(col)])
            cell = head[left: left + col.width]
            assert "▲" in cell, (col.key, cell)
            # the first row of the new order is selected and in sight, under the header
            assert await wait_until(lambda: table.scroll_y == 0, 10, 0.02, pilot.pause), col.key
            assert table.cursor == 0, col.key
            assert table.selected == int(table.rows[0])
            await pilot.press("ctrl+end")
            await pilot.pause()
            table.scroll_end(animate=False)
            assert await wait_until(lambda: table.scroll_y > 0, 10, 0.02, pilot.pause)
        await pilot.press("r")  # reversed: ▼, and the top of that order
        assert await wait_until(lambda: table.scroll_y == 0, 10, 0.02, pilot.pause)
        assert "▼" in table.render_line(0).text and table.cursor == 0
