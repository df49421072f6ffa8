"""How fast the UI draws: one frame with 100k connections, a 1M-segment ladder, first frame.

Usage::

    python benchmarks/ui_bench.py [CAPTURE] [--conns N] [--segments N] [--frames N]

Timelines are built by feeding synthetic frames (raw IPv4, bytes made with ``struct``)
through the real Tracker, then shown in the real app (headless, ``App.run_test``).
"Frame" = the UI-thread work of one tick: reading the timeline at the cursor into every view
(``refresh_views``) plus rendering every visible line of the table, ladder and counters with
their caches cleared. Targets: a frame under 16 ms, the first frame under 0.5 s.

The first-frame figure opens CAPTURE (or a generated pcap of --frames frames) and measures
the time until the app's first screen is up, while the file is still being read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from textual import events

from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.counters import CountersBar
from tcpview.ui.widgets.ladder import Ladder

_IP = struct.Struct("!BBHHHBBHII")
_TCP = struct.Struct("!HHIIBBHHH")
LINKTYPE_RAW = 101
SYN, FIN, ACK, PSH = 0x02, 0x01, 0x10, 0x08


def frame(src: int, dst: int, sp: int, dp: int, seq: int, ack: int, flags: int, plen: int = 0) -> bytes:
    """A raw IPv4 + TCP frame."""
    return (_IP.pack(0x45, 0, 40 + plen, 0, 0, 64, 6, 0, src, dst)
            + _TCP.pack(sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0) + b"x" * plen)


class SyntheticSource:
    """A source of synthetic records (a finished "replay")."""

    live = False

    def __init__(self, name: str, records: Iterator[tuple]) -> None:
        self.name = name
        self._records = records

    def frames(self, stop: threading.Event) -> Iterator[tuple]:
        for r in self._records:
            if stop.is_set():
                return
            yield r

    def progress(self) -> float | None:
        return None

    def status(self) -> dict[str, int]:
        return {}


def many_connections(n: int, t0: float = 1_000.0) -> Iterator[tuple]:
    """n connections of 6-9 segments each: a third closed, a third in CLOSE_WAIT, a third open."""
    fr = 0
    t = t0
    for i in range(n):
        c, s = 0x0A000000 + (i >> 14) + 1, 0x0A800001
        cp, sp = 1024 + (i & 0x3FFF), 443
        cs, ss = i * 7919, i * 104729
        segs = [(0, SYN, cs, 0, 0), (1, SYN | ACK, ss, cs + 1, 0), (0, ACK, cs + 1, ss + 1, 0),
                (0, PSH | ACK, cs + 1, ss + 1, 100), (1, ACK, ss + 1, cs + 101, 0)]
        kind = i % 3
        if kind == 0:
            segs += [(0, FIN | ACK, cs + 101, ss + 1, 0), (1, FIN | ACK, ss + 1, cs + 102, 0),
                     (0, ACK, cs + 102, ss + 2, 0)]
        elif kind == 1:
            segs += [(0, FIN | ACK, cs + 101, ss + 1, 0), (1, ACK, ss + 1, cs + 102, 0)]
        for d, flags, seq, ack, plen in segs:
            fr += 1
            t += 0.00001
            data = frame(c, s, cp, sp, seq, ack, flags, plen) if d == 0 else frame(s, c, sp, cp, seq, ack, flags, plen)
            yield (fr, t, LINKTYPE_RAW, data, 0, len(data), len(data))


def long_connection(segments: int, t0: float = 1_000.0) -> Iterator[tuple]:
    """One connection with ``segments`` segments (handshake, then data and ACKs)."""
    c, s, cp, sp = 0x0A000001, 0x0A000002, 40000, 80
    cs, ss = 1000, 5000
    hs = [(0, SYN, cs, 0, 0), (1, SYN | ACK, ss, cs + 1, 0), (0, ACK, cs + 1, ss + 1, 0)]
    fr = 0
    for d, flags, seq, ack, plen in hs:
        fr += 1
        data = frame(c, s, cp, sp, seq, ack, flags, plen) if d == 0 else frame(s, c, sp, cp, seq, ack, flags, plen)
        yield (fr, t0 + fr * 1e-5, LINKTYPE_RAW, data, 0, len(data), len(data))
    seq = cs + 1
    for k in range(segments - 3):
        fr += 1
        if k % 2 == 0:
            data = frame(c, s, cp, sp, seq, ss + 1, PSH | ACK, 10)
            seq += 10
        else:
            data = frame(s, c, sp, cp, ss + 1, seq, ACK, 0)
        yield (fr, t0 + fr * 1e-5, LINKTYPE_RAW, data, 0, len(data), len(data))


def paint_ms(app: TcpviewApp) -> float:
    """Render every visible line of the table, ladder and counters (caches cleared), in ms."""
    table, ladder, counters = app.query_one(ConnectionTable), app.query_one(Ladder), app.query_one(CountersBar)
    start = time.perf_counter()
    table._cache.clear()
    ladder._cache.clear()
    ladder._blocks.clear()
    for y in range(table.size.height):
        table.render_line(y)
    for y in range(ladder.size.height):
        ladder.render_line(y)
    counters._series_key = None
    counters.render()
    return (time.perf_counter() - start) * 1000


def frame_ms(app: TcpviewApp, runs: int = 15) -> tuple[float, float]:
    """Median and worst of ``refresh_views(force=True)`` + painting, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        app.refresh_views(force=True)
        update = (time.perf_counter() - start) * 1000
        times.append(update + paint_ms(app))
    return statistics.median(times), max(times)


async def wait_loaded(app: TcpviewApp, pilot) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while not app.loaded:
        await asyncio.sleep(0.05)
    await pilot.pause()
    return time.perf_counter() - start


async def bench_table(n: int) -> None:
    app = TcpviewApp(SyntheticSource(f"{n} connections", many_connections(n)))
    async with app.run_test(size=(120, 40)) as pilot:
        load = await wait_loaded(app, pilot)
        tl = app.tl
        print(f"table: {len(tl.conns)} connections, {tl.packets} frames read in {load:.1f} s")
        med, worst = frame_ms(app)
        print(f"  frame at the end, sorted by id:              {med:6.2f} ms median, {worst:6.2f} ms worst")
        app.seek_offset((tl.last_ts - tl.first_ts) / 2)
        med, worst = frame_ms(app)
        print(f"  frame at the middle (past cursor):           {med:6.2f} ms median, {worst:6.2f} ms worst")
        table = app.query_one(ConnectionTable)
        table.cursor = len(table.rows) // 2
        med, worst = frame_ms(app)
        print(f"  frame scrolled to the middle rows:           {med:6.2f} ms median, {worst:6.2f} ms worst")
        for label, action in (("filter state:CLOSE_WAIT", lambda: app.action_set_filter("state:CLOSE_WAIT")),
                              ("sort by bytes (past cursor)", lambda: (app.action_set_filter(""), app.action_sort("bytes"))),
                              ("sort by client state", lambda: app.action_sort("cstate"))):
            start = time.perf_counter()
            action()
            once = (time.perf_counter() - start) * 1000
            med, worst = frame_ms(app, runs=5)
            print(f"  {label + ':':44} {once:6.1f} ms to apply, then {med:6.2f} ms per forced frame")
        app.action_set_filter("")
        app.action_sort("id")
        app.action_end()
        await pilot.pause()
        # a tick that changes nothing costs nothing; a playing tick re-reads at a new time
        app.player.t = tl.first_ts + (tl.last_ts - tl.first_ts) * 0.3
        times = []
        for k in range(30):
            app.player.t += (tl.last_ts - tl.first_ts) * 0.001
            start = time.perf_counter()
            app.refresh_views()
            times.append((time.perf_counter() - start) * 1000 + paint_ms(app))
        print(f"  playing (30 ticks, cursor moving):           {statistics.median(times):6.2f} ms median, "
              f"{max(times):6.2f} ms worst")


async def bench_ladder(segments: int) -> None:
    app = TcpviewApp(SyntheticSource(f"{segments} segments", long_connection(segments)))
    async with app.run_test(size=(120, 40)) as pilot:
        load = await wait_loaded(app, pilot)
        ladder = app.query_one(Ladder)
        print(f"ladder: {ladder.count} rows in connection 0 ({load:.1f} s to read)")
        med, worst = frame_ms(app)
        print(f"  frame following the newest segment:          {med:6.2f} ms median, {worst:6.2f} ms worst")
        ladder.move_cursor(ladder.count // 2)
        med, worst = frame_ms(app)
        print(f"  frame with the cursor in the middle:         {med:6.2f} ms median, {worst:6.2f} ms worst")
        tl = app.tl
        app.seek_offset((tl.last_ts - tl.first_ts) * 0.75)
        med, worst = frame_ms(app)
        print(f"  frame at a past cursor (75%):                {med:6.2f} ms median, {worst:6.2f} ms worst")
        start = time.perf_counter()
        for _ in range(100):
            ladder.action_page_up()
            for y in range(ladder.size.height):
                ladder.render_line(y)
        print(f"  page up + paint:                             {(time.perf_counter() - start) * 10:6.2f} ms each")


def write_pcap(path: str, frames: int) -> None:
    """A pcap (raw IPv4 link type) of ``frames`` frames from many connections."""
    n = frames // 7 + 1
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        rec = struct.Struct("<IIII")
        out = []
        for k, (_fr, ts, _lt, data, _o, ln, _ol) in enumerate(many_connections(n)):
            if k >= frames:
                break
            sec = int(ts)
            out.append(rec.pack(sec, int((ts - sec) * 1e6), ln, ln) + data)
            if len(out) >= 10000:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))


async def bench_first_frame(path: str) -> None:
    from tcpview.sources.base import FileSource

    size = os.path.getsize(path)
    start = time.perf_counter()
    app = TcpviewApp(FileSource(path))
    async with app.run_test(size=(120, 40)):
        first = time.perf_counter() - start  # mounted, first screen composed and painted
        rows_at = None
        keys: list[float] = []
        while not app.loaded:
            if rows_at is None and len(app.query_one(ConnectionTable).rows):
                rows_at = time.perf_counter() - start
            if rows_at is not None:  # a key while the file loads: posted as the terminal driver
                # posts it, timed until the cursor has moved (Pilot.press would wait for the app
                # to be idle, which it is not until the file is read)
                table = app.query_one(ConnectionTable)
                before = table.cursor
                key = "down" if len(keys) % 8 < 4 else "up"
                t0 = time.perf_counter()
                app.post_message(events.Key(key, None))
                while table.cursor == before and time.perf_counter() - t0 < 5:
                    await asyncio.sleep(0.001)
                keys.append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
        total = time.perf_counter() - start
        print(f"first frame: {path} ({size / 1e6:.0f} MB, {app.tl.packets} frames)")
        print(f"  app up, first screen drawn:                  {first * 1000:6.0f} ms")
        if rows_at is not None:
            print(f"  first connections listed:                    {rows_at * 1000:6.0f} ms "
                  f"({(rows_at - first) * 1000:.0f} ms after the first screen; target <= 300)")
        if keys:
            keys.sort()
            print(f"  keys while it loads ({len(keys)} presses):          {statistics.median(keys) * 1000:6.1f} ms "
                  f"median, {keys[int(0.95 * (len(keys) - 1))] * 1000:.1f} ms 95th, {keys[-1] * 1000:.1f} ms worst "
                  "(target <= 50)")
        print(f"  whole file read (browsable meanwhile):       {total:6.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture", nargs="?", help="capture to open for the first-frame figure")
    ap.add_argument("--conns", type=int, default=100_000)
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--frames", type=int, default=2_000_000, help="size of the generated capture")
    args = ap.parse_args()
    asyncio.run(bench_table(args.conns))
    asyncio.run(bench_ladder(args.segments))
    path = args.capture
    tmp = None
    if path is None:
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.close()
        write_pcap(tmp.name, args.frames)
        path = tmp.name
    try:
        asyncio.run(bench_first_frame(path))
    finally:
        if tmp is not None:
            os.unlink(tmp.name)


if __name__ == "__main__":
    main()
