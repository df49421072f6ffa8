"""The simulator: the capture-record source."""

from __future__ import annotations

import threading
import time

from simhelp import Run

from tcpview.engine.tracker import Tracker
from tcpview.sim import SimSource, load


# -- the source ---------------------------------------------------------------------------------
def test_source_yields_capture_records() -> None:
    src = SimSource(load("handshake"), paced=False)
    assert src.live is False and src.progress() is None
    recs = [r for r in src.frames(threading.Event()) if r is not None]
    assert len(recs) == src.status()["frames"] == 15
    for i, (frame, ts, lt, data, off, caplen, origlen) in enumerate(recs, 1):
        assert (frame, lt, off, caplen, origlen) == (i, 1, 0, len(data), len(data))
        assert isinstance(data, bytes) and ts > 1.6e9
    assert [r[1] for r in recs] == sorted(r[1] for r in recs)
    # the same records a capture reader would give: the tracker takes them unchanged
    t = Tracker()
    t.feed_records(iter(recs))
    assert t.tl.counters_at(None)["TIME_WAIT"] == 1


def test_paced_source_follows_simulated_time_scaled_by_speed() -> None:
    scen = load("keepalive")  # 35 s of idle time with probes in it
    total = Run("keepalive").frames[-1].ts - Run("keepalive").frames[0].ts
    speed = total / 0.4  # the whole scenario in about 0.4 s of wall time
    src = SimSource(scen, speed=speed)
    assert src.live is True and src.name == "demo keepalive"
    t0 = time.monotonic()
    idle = 0
    recs = []
    for r in src.frames(threading.Event()):
        if r is None:
            idle += 1
        else:
            recs.append((time.monotonic() - t0, r[1]))
    wall = time.monotonic() - t0
    assert wall >= total / speed * 0.95
    assert idle > 0  # it said it was waiting instead of blocking
    for w, ts in recs:  # no frame is handed out before its (scaled) time
        assert w >= (ts - recs[0][1]) / speed - 0.01


def test_paced_endless_source_stops_when_asked() -> None:
    src = SimSource(load("busy"), speed=50)
    stop = threading.Event()
    n = 0
    t0 = time.monotonic()
    for r in src.frames(stop):
        if r is not None:
            n += 1
        if n == 200:
            stop.set()
    assert n == 200 and time.monotonic() - t0 < 30
    assert src.status()["connections"] > 0


def test_set_speed_while_running() -> None:
    src = SimSource(load("keepalive"), speed=1.0)
    stop = threading.Event()
    it = src.frames(stop)
    first = next(r for r in it if r is not None)
    src.set_speed(1e6)  # the 35 s of waiting now take no time
    t0 = time.monotonic()
    rest = [r for r in it if r is not None]
    assert time.monotonic() - t0 < 5
    assert first[0] == 1 and len(rest) == 16
