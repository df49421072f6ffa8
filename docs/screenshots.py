"""Regenerate the README screenshots: ``python docs/screenshots.py CAPTURE [SECONDS]``.

Opens CAPTURE in the real app (headless) at 80x24 and 120x40 with the cursor SECONDS after
the first packet and the first connection with an endpoint in CLOSE_WAIT selected, and saves
SVGs next to this script. The README's are of ``lo.pcap`` at 1.0 s: ``tcpdump -i lo -U
--immediate-mode -w lo.pcap 'tcp port 39001'`` while 15 clients, 0.15 s apart, each send 2
bytes to a server on 127.0.0.1:39001 that answers 13; the server leaves every third connection
open after its client closes (CLOSE_WAIT), closes the others first (TIME_WAIT on its side), and
keeps the last one open.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable

HERE = os.path.dirname(os.path.abspath(__file__))


async def shoot(path: str, at: float | None, size: tuple[int, int], name: str, keys: tuple[str, ...] = ()) -> None:
    source = FileSource(path)
    source.name = f"replay {os.path.basename(path)}"
    app = TcpviewApp(source)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        while not app.loaded:
            await pilot.pause()
        if at is not None:
            app.seek_offset(at)
        app.action_set_filter("state:CLOSE_WAIT")
        table = app.query_one(ConnectionTable)
        cid = table.selected
        app.action_set_filter("")
        if cid is not None:
            table.select_cid(cid)
        await pilot.pause()
        await pilot.press(*keys)
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_screenshot(filename=name, path=HERE)
        print(os.path.join(HERE, name))


def main() -> None:
    path = sys.argv[1]
    at = float(sys.argv[2]) if len(sys.argv) > 2 else None
    asyncio.run(shoot(path, at, (80, 24), "tcpview-80x24.svg"))
    asyncio.run(shoot(path, at, (120, 40), "tcpview-120x40.svg", ("c",)))
    asyncio.run(shoot(path, at, (100, 30), "tcpview-detail.svg", ("enter", "k", "k", "enter")))
    asyncio.run(shoot(path, at, (100, 30), "tcpview-help.svg", ("question_mark",)))


if __name__ == "__main__":
    main()
