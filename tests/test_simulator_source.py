"""The simulator: the capture-record source."""

from __future__ import annotations

import sys
import threading

import pytest
from simhelp import Run

from tcpview.engine.timeline.tracker import Tracker
from tcpview.sim import SimSource, load


class FakeClock:
    """The clock a paced SimSource reads, and the stop event it waits on: waiting moves the
    clock on instead of sleeping, so pacing is checked exactly and without wall-clock time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return False

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A :class:`FakeClock` in place of the ``time`` module SimSource's module reads."""
    fake = FakeClock()
    monkeypatch.setattr(sys.modules[SimSource.__module__], "time", fake)
    return fake


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


def test_paced_source_follows_simulated_time_scaled_by_speed(clock: FakeClock) -> None:
    scen = load("keepalive")  # 35 s of idle time with probes in it
    total = Run("keepalive").frames[-1].ts - Run("keepalive").frames[0].ts
    speed = total / 0.4  # the whole scenario in about 0.4 s of (the source's) wall time
    src = SimSource(scen, speed=speed)
    assert src.live is True and src.name == "demo keepalive"
    t0 = clock.now
    idle = 0
    recs = []
    for r in src.frames(clock):
        if r is None:
            idle += 1
        else:
            recs.append((clock.now - t0, r[1]))
    wall = clock.now - t0
    assert wall >= total / speed * 0.95
    assert idle > 0  # it said it was waiting instead of blocking
    for w, ts in recs:  # no frame is handed out before its (scaled) time
        assert w >= (ts - recs[0][1]) / speed - 0.01


def test_paced_endless_source_stops_when_asked() -> None:
    src = SimSource(load("busy"), speed=50)
    stop = threading.Event()
    n = 0

    def consume() -> None:
        nonlocal n
        for r in src.frames(stop):
            if r is not None:
                n += 1
            if n == 200:
                stop.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    reader.join(30)  # a deadline, so a source that ignores stop fails instead of hanging
    assert not reader.is_alive() and n == 200
    assert src.status()["connections"] > 0


def test_set_speed_while_running(clock: FakeClock) -> None:
    src = SimSource(load("keepalive"), speed=1.0)
    it = src.frames(clock)
    first = next(r for r in it if r is not None)
    src.set_speed(1e6)  # the 35 s of waiting now take no time
    t0 = clock.now
    rest = [r for r in it if r is not None]
    assert clock.now - t0 < 5  # the source's seconds (at speed 1 this would be about 35)
    assert first[0] == 1 and len(rest) == 16
