"""The very first run after an install, when no compiled kernel is cached yet: the viewer is up
at once, says it is preparing, and lists the capture's connections meanwhile (the engine runs
as plain Python while another process compiles).

Each case runs in a fresh interpreter whose ``NUMBA_CACHE_DIR`` is a new empty directory
(numba reads it at import), so nothing this suite compiled is found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO, many_connections, write_frames_pcap

APP = """
import asyncio, json, sys
from tcpview.engine.warm import cache_is_warm
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.player_bar import PlayerBar

async def main():
    assert not cache_is_warm()
    app = TcpviewApp(FileSource(sys.argv[1]))
    seen = {"preparing_at_first": None, "preparing_with_rows": False, "rows": 0, "bar": ""}
    async with app.run_test(size=(120, 40)) as pilot:
        bar, table = app.query_one(PlayerBar), app.query_one(ConnectionTable)
        for _ in range(600):  # the table fills long before the kernels are compiled
            await pilot.pause(0.05)
            if seen["preparing_at_first"] is None:
                seen["preparing_at_first"] = bar.preparing
            seen["rows"] = len(table.rows)
            if bar.preparing and seen["rows"] == 20:
                seen["preparing_with_rows"] = True
                seen["bar"] = bar.build().plain
                break
    print(json.dumps(seen))

asyncio.run(main())
"""


def fresh_cache_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NUMBA_"))}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_first_run_viewer_lists_connections_while_it_prepares(tmp_path):
    path = write_frames_pcap(tmp_path / "c.pcap", many_connections(20))
    p = subprocess.run([sys.executable, "-c", APP, str(path)], capture_output=True, text=True,
                       env=fresh_cache_env(tmp_path), timeout=300, cwd=tmp_path, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["preparing_at_first"] is True  # up at once, not after compiling
    assert seen["preparing_with_rows"] and seen["rows"] == 20
    assert "preparing the engine" in seen["bar"]


def test_ready_loads_every_kernel_python_calls():
    """What :func:`ready` (and the compiling process of a first run) prepares is every kernel
    Python calls: none is left to compile later in the middle of a capture (where a live
    capture would drop packets while it waits)."""
    code = ("from tcpview.engine import warm; warm.ready()\n"
            "import tcpview.engine.analysis.graphs, tcpview.engine.analysis.follow, tcpview.engine.timeline.zeek_history, tcpview.engine.timeline.evict\n"
            "from tcpview import jit; print(jit.not_loaded()); print(len(jit._ENTRIES))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO,
                       check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    missing, entries = p.stdout.strip().splitlines()[-2:]
    assert int(entries) > 20
    assert missing == "[]"
