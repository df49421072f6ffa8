"""How fast the graph pane draws: one frame of each graph kind of a connection with N
segments (default 200k: 100k data segments and 100k ACKs, so 100k points per series).

Usage::

    python benchmarks/graph_bench.py [--segments N]

The connection is synthetic (raw IPv4 frames made with ``struct``, see ui_bench.py) fed
through the real Tracker into the real app (headless, ``App.run_test``). "Frame" = drawing
the pane from its series (the canvas cache cleared) and rendering every one of its lines,
as a repaint after a zoom, a pan or a new cursor does. Target: under 16 ms. Building the
series (once per connection and kind) is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ui_bench import SyntheticSource, long_connection, wait_loaded

from tcpview.engine.analysis import graphs
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.graph_pane import GraphPane


def frame_ms(pane: GraphPane, runs: int = 15) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pane._canvas = None
        for y in range(pane.size.height):
            pane.render_line(y)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


async def bench(segments: int) -> None:
    app = TcpviewApp(SyntheticSource(f"{segments} segments", long_connection(segments)))
    async with app.run_test(size=(120, 40)) as pilot:
        load = await wait_loaded(app, pilot)
        await pilot.press("v")
        await pilot.pause()
        pane = app.query_one(GraphPane)
        print(f"graph pane {pane.size.width}x{pane.size.height} cells, connection 0: {segments:,} segments "
              f"({load:.1f} s to read)")
        print(f"{'kind':<12}{'points':>10}{'build ms':>10}{'frame ms median':>18}{'worst':>8}   target")
        for kind in graphs.KINDS:
            start = time.perf_counter()
            g = graphs.build(app.tl, 0, kind)
            built = (time.perf_counter() - start) * 1000
            pane.kind = kind
            pane.show(app.tl, 0, None)
            med, worst = frame_ms(pane)
            points = sum(len(s.x) for s in g.series)
            print(f"{kind:<12}{points:>10,}{built:>10.1f}{med:>18.2f}{worst:>8.2f}   <= 16 ms "
                  f"{'met' if med <= 16 else 'MISSED'}")
        await pilot.press("z", "z", "z")
        med, worst = frame_ms(pane)
        print(f"{'zoomed 8x':<12}{'':>10}{'':>10}{med:>18.2f}{worst:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--segments", type=int, default=200_000)
    asyncio.run(bench(ap.parse_args().segments))


if __name__ == "__main__":
    main()
