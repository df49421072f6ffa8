"""A memory budget: past it the oldest part of the timeline leaves, what stays is exact, and
nothing leaves silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import Flow, cli, wait_until, write_frames_pcap

from tcpview.engine.pump import load


def churn(n: int, t0: float = 1000.0, gap: float = 0.01) -> list:
    """n short connections one after another: handshake, a request, the answer, a close."""
    frames: list = []
    for i in range(n):
        f = Flow(cport=20000 + i % 40000, t0=t0 + i * gap, dt=0.001, frames=frames)
        f.handshake()
        f.c("PA", b"GET /")
        f.s("PA", b"200 ok")
        f.c("FA")
        f.s("FA")
        f.c("A")
    frames.sort(key=lambda x: x[0])
    return frames


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    path = write_frames_pcap(tmp_path_factory.mktemp("mem") / "churn.pcap", churn(4000))
    full = load(str(path), msl2=2.0).timeline
    small = load(str(path), msl2=2.0, budget=300_000).timeline
    return path, full, small


def test_the_oldest_connections_leave_and_are_counted(loads):
    _path, full, small = loads
    ev = small.evicted
    assert ev["connections"] > 1000 and ev["segments"] > 8 * 1000
    assert full.evicted == {"connections": 0, "segments": 0}
    assert len(small.conns) + ev["connections"] == len(full.conns)
    assert small.horizon is not None and full.first_ts < small.horizon <= full.last_ts
    # what stays takes far less room than the whole timeline
    assert small.view().n_seg + ev["segments"] == full.view().n_seg


def test_what_stays_is_exact_from_the_horizon_on(loads):
    _path, full, small = loads
    ids = small.conns.ids()
    assert ids == sorted(ids) and ids[0] > 0  # ids stay those of the whole capture
    whole = {d["id"]: d for d in full.connection_dicts()}
    for d in small.connection_dicts():
        assert d == whole[d["id"]]
    span = full.last_ts - small.horizon
    for frac in (0.0, 0.3, 0.7, 1.0):
        t = small.horizon + span * frac
        assert small.counters_at(t) == full.counters_at(t), frac
        kept = {d["id"]: d for d in small.connection_dicts(t)}
        for cid, d in kept.items():
            assert (d["client"]["state"], d["server"]["state"]) == \
                (whole[cid]["client"]["state"], whole[cid]["server"]["state"]) or t < full.last_ts
    assert small.counters_at(None) == full.counters_at(None)
    # a kept connection's segments are those after the horizon, its states the same
    c = small.conns[ids[-1]]
    f = full.conns[ids[-1]]
    assert [s.model_dump() for s in small.segments(c.id)] == [s.model_dump() for s in full.segments(f.id)][-c.n:]
    assert c.state == f.state


def test_the_counters_history_outlives_the_connections(loads):
    _path, full, small = loads
    # before the horizon the sparkline draws samples kept when the rows left
    series = small.counter_series(10, 16)  # TIME_WAIT
    assert len(series) == 16 and max(series) > 0
    assert series[-1] == full.counter_series(10, 16)[-1]


def test_an_evicted_connection_is_no_longer_there(loads):
    _path, _full, small = loads
    with pytest.raises(IndexError):
        small.conns[0]


def test_half_open_connections_beyond_the_cap_are_only_counted(tmp_path, monkeypatch):
    """A SYN flood: nothing ever finishes; past the budget the oldest half-open connections
    leave beyond a cap, and their endpoints stay in the counters."""
    from tcpview.engine.timeline import evict

    monkeypatch.setattr(evict, "HALF_OPEN_CAP", 500)
    frames: list = []
    for i in range(3000):
        Flow(cip=f"10.{i // 250}.{i % 250}.9", cport=1024 + i, t0=10.0 + i * 0.001, frames=frames).c("S")
    frames.sort(key=lambda x: x[0])
    path = write_frames_pcap(tmp_path / "flood.pcap", frames)
    tl = load(str(path), budget=150_000).timeline
    assert tl.evicted["segments"] > 0 and tl.evicted["connections"] > 0
    assert len(tl.conns) + tl.evicted["connections"] == 3000 and len(tl.conns) >= 500
    assert tl.counters_at(None)["SYN_SENT"] == 3000 and tl.counters_at(None)["LISTEN"] == 3000
    full = load(str(path)).timeline
    t = tl.horizon + (full.last_ts - tl.horizon) / 2
    assert tl.counters_at(t) == full.counters_at(t)


def test_summary_json_says_what_left(tmp_path):
    path = write_frames_pcap(tmp_path / "churn.pcap", churn(5000, gap=0.02))
    rc, out, err = cli("summary", str(path), "--json", "--memory", "1M")
    assert rc == 0, err
    s = json.loads(out)
    assert s["evicted"]["connections"] > 0 and s["evicted"]["segments"] > 0
    assert len(s["connections"]) + s["evicted"]["connections"] == 5000
    rc, out, _err = cli("summary", str(path), "--json")
    whole = json.loads(out)
    assert whole["evicted"] == {"connections": 0, "segments": 0}
    assert s["counters"] == whole["counters"]  # the last minute's clients still in TIME_WAIT
    rc, out, _err = cli("summary", str(path), "--memory", "1M")
    assert "evicted (memory budget):" in out


def test_summary_at_a_cursor_the_budget_let_go_reads_again_up_to_it(tmp_path):
    """``summary --at T --memory`` where the part at T left while the whole file was read: the
    file is read again up to T, so the answer is the unbounded one (what the budget still let
    go before T is counted, as ever); a stream cannot be read again: one line, exit 2."""
    path = write_frames_pcap(tmp_path / "churn.pcap", churn(5000, gap=0.02))
    full = load(str(path), budget=1 << 20).timeline
    for at in ((full.horizon - full.first_ts) / 3, (full.horizon - full.first_ts) + 1.0):  # before, after
        rc, bounded, err = cli("summary", str(path), "--memory", "1M", "--at", f"{at:.3f}", "--json")
        assert rc == 0, err
        rc, whole, err = cli("summary", str(path), "--at", f"{at:.3f}", "--json")
        assert rc == 0, err
        b, w = json.loads(bounded), json.loads(whole)
        assert b["packets"] == full.packets and b["last_ts"] == full.last_ts  # the capture's totals
        left = b.pop("evicted")["connections"]
        w.pop("evicted")
        kept = {c["id"] for c in b["connections"]}
        assert len(kept) + left == len(w["connections"]) > 100
        w["connections"] = [c for c in w["connections"] if c["id"] in kept]
        assert b == w, at
    rc, text, _ = cli("summary", str(path), "--memory", "1M", "--at", f"{(full.horizon - full.first_ts) / 3:.3f}")
    assert rc == 0 and "TIME_WAIT" in text
    rc, out, err = cli("summary", "-", "--memory", "1M", "--at", "1", input=path.read_bytes())
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "larger --memory" in err


def test_a_pinned_file_keeps_its_cursor_and_waits_past_it(tmp_path):
    """A file read for a cursor (``Timeline.pin``): the horizon never passes the pin, reading
    waits once it is a share of the budget past it, goes on as the pin moves, and what is
    kept at any cursor is what the unbounded timeline says."""
    import threading

    from tcpview.engine.pump import Pump
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sources.base import FileSource

    path = write_frames_pcap(tmp_path / "churn.pcap", churn(5000, gap=0.02))
    full = load(str(path), msl2=2.0).timeline
    budget = 1 << 20
    tracker = Tracker(msl2=2.0)
    tl = tracker.tl
    tl.budget = budget
    tl.pin = full.first_ts + 30.0  # a third of the way
    pump = Pump(FileSource(str(path)), tracker, keep_frames=False, pause_seconds=0.0)
    stop = threading.Event()
    reader = threading.Thread(target=pump.run, args=(stop,), daemon=True)
    reader.start()
    try:
        for pin in (30.0, 45.0, 60.0, 75.0):
            tl.pin = full.first_ts + pin
            wait_until(lambda: pump.done or (tl.held and tl.last_ts > tl.pin), 20)
            assert not pump.done, pin  # waiting, well before the end of the file
            assert tl.horizon is not None and tl.horizon <= tl.pin
            assert tl.last_ts < full.last_ts, pin
            # exact wherever it is kept (at the last time read, another frame may follow at that time)
            for t in (tl.horizon, tl.pin, tl.last_ts - 1e-6):
                assert tl.counters_at(t) == full.counters_at(t), (pin, t)
            assert tl.held
        tl.pin = None  # let go: it reads to the end
        reader.join(20)
        assert pump.done and tl.last_ts == full.last_ts
        assert tl.counters_at(None) == full.counters_at(None)
    finally:
        stop.set()
        reader.join(5)


@pytest.mark.parametrize("bad", ["lots", "-5M", "12Q", "100"])
def test_a_bad_memory_size_is_one_line(bad: str, tmp_path: Path):
    rc, out, err = cli("summary", str(tmp_path / "x.pcap"), "--memory", bad)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "--memory" in err and "Traceback" not in err


def test_connections_whose_4_tuple_was_reused_leave(tmp_path):
    """A busy client reuses its ports while the server's side is still in TIME_WAIT (as Linux
    does on loopback): the old connection is over at once, though its TIME_WAIT timer stays
    queued for a minute. Such connections leave with the horizon like any other finished one,
    and what stays is still exact."""
    frames: list = []
    n, ports = 3000, 50
    for i in range(n):
        f = Flow(cport=20000 + i % ports, cisn=1000 + i * 100_000, t0=1000.0 + i * 0.01, dt=0.001, frames=frames)
        f.handshake()
        f.c("PA", b"GET /")
        f.s("PA", b"200 ok")
        f.s("FA")  # the server closes first: its side goes to TIME_WAIT
        f.c("FA")
        f.s("A")
    frames.sort(key=lambda x: x[0])
    path = write_frames_pcap(tmp_path / "reuse.pcap", frames)
    full_res, small_res = load(str(path)), load(str(path), budget=200_000)
    full, small = full_res.timeline, small_res.timeline
    assert full.counters_at(None)["TIME_WAIT"] == ports  # only the last of each port is left
    ev = small.evicted
    assert ev["connections"] > n // 2, ev
    assert len(small.conns) + ev["connections"] == n
    assert small.counters_at(None) == full.counters_at(None)
    whole = {d["id"]: d for d in full.connection_dicts()}
    for d in small.connection_dicts():
        assert d == whole[d["id"]]
    # the timers that stay still fire: a minute later every TIME_WAIT is over in both
    for res in (full_res, small_res):
        res.tracker.advance(full.last_ts + 61)
    assert full.counters_at(None)["TIME_WAIT"] == 0
    assert small.counters_at(None) == full.counters_at(None)


async def test_the_viewer_reads_a_file_again_for_a_cursor_the_budget_let_go(tmp_path):
    """In the viewer under --memory, going to the start of a file whose start has left reads
    it again up to there: the cursor is at the start, its connections are listed, the counters
    are the unbounded ones, and reading goes on as the cursor moves; End reads to the end."""
    from tcpview.sources.base import FileSource
    from tcpview.ui.app import TcpviewApp
    from tcpview.ui.widgets.conn_table import ConnectionTable

    path = write_frames_pcap(tmp_path / "churn.pcap", churn(5000, gap=0.02))
    full = load(str(path)).timeline
    app = TcpviewApp(FileSource(str(path)), memory=1 << 20, tick=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_until(lambda: app.loaded, 60, 0.05, pilot.pause)
        first = app.tl.first_ts
        assert app.tl.horizon > first + 50  # the start has left
        await pilot.press("g")  # to the start
        assert await wait_until(lambda: app.tl.pin is not None and app.player.t == first
                                and app.tl.held, 60, 0.05, pilot.pause)
        assert app.tl.horizon is None or app.tl.horizon <= first
        assert app.tl.counters_at(first) == full.counters_at(first)
        table = app.query_one(ConnectionTable)
        assert await wait_until(lambda: 0 in table.rows, 10, 0.05, pilot.pause)
        assert app.tl.last_ts < full.last_ts  # read only a little past the cursor
        at = first + 60
        app.seek_offset(60)  # on, within what is kept now or past it: it reads on
        assert await wait_until(lambda: app.tl.last_ts is not None and app.tl.last_ts > at, 60, 0.05, pilot.pause)
        assert await wait_until(lambda: app.tl.held, 60, 0.05, pilot.pause)  # read as far ahead as it may
        assert app.tl.horizon <= at and app.tl.counters_at(at) == full.counters_at(at)
        await pilot.press("G")  # the end: read to the end
        assert await wait_until(lambda: app.loaded and app.tl.last_ts == full.last_ts, 60, 0.05, pilot.pause)
        assert app.tl.counters_at(None) == full.counters_at(None)


def test_notes_flags_and_rtt_of_what_stays_are_those_of_the_whole_timeline(tmp_path):
    """Connections whose first segments left with the horizon keep what those segments said
    (partial, retransmissions, a SYN the initial RTT counts from), and what comes later is
    added as of the cursor."""
    frames = churn(3000, t0=1000.0)
    late = 1000.0 + 3000 * 0.01 - 1.0  # after the horizon
    x = Flow(cport=61000, t0=1000.5, frames=frames)
    x.c("S")
    x.s("SA")
    x.c("A", at=late)  # the handshake ends after the horizon: the initial RTT from its SYN
    y = Flow(cport=61001, t0=1000.5, frames=frames)
    y.handshake()
    y.c("PA", b"abc")
    y.c("R", at=late + 0.1)  # reset after the horizon
    z = Flow(cport=61002, t0=1000.5, frames=frames)
    z.c("PA", b"mid-stream")  # partial, from its first segment (which leaves)
    z.s("A", at=late + 0.2)
    w = Flow(cport=61003, t0=1000.5, frames=frames)
    w.handshake()
    w.c("PA", b"abc")
    w.c("PA", b"abc", seq=1001)  # a retransmission before the horizon
    w.c("PA", b"abc", seq=1001, at=late + 0.3)  # and one after
    frames.sort(key=lambda f: f[0])
    path = write_frames_pcap(tmp_path / "straddle.pcap", frames)
    full = load(str(path), msl2=2.0).timeline
    small = load(str(path), msl2=2.0, budget=300_000).timeline
    assert small.horizon is not None and small.horizon < late
    v = small.view()
    ids = {c.cport: c.id for c in small.conns if c.cport >= 61000}
    assert sorted(ids) == [61000, 61001, 61002, 61003]  # they stayed, their first rows left
    assert all(v.base_counts[small.conns[i].row, 0] > 0 for i in ids.values())
    for t in (small.horizon, late - 0.01, late + 0.15, late + 0.25, None):
        mine, whole = small.progress_at(t), full.progress_at(t)
        n = small.conn_count_at(t)
        cids = v.conns.cid[:n].astype(np.int64)
        for name in ("notes", "ana", "retr", "irtt"):
            assert mine[name][:n].tolist() == whole[name][cids].tolist(), (name, t)
        assert small.connection_dicts(t) == [d for d in full.connection_dicts(t) if d["id"] in set(cids.tolist())]
    end = small.progress_at(None)
    row = {p: small.conns[i].row for p, i in ids.items()}
    assert end.irtt[row[61000]] == pytest.approx(late - 1000.501) and end.retr[row[61003]] == 2
    assert small.conns[ids[61001]].notes() == ["reset"] and small.conns[ids[61002]].notes() == ["partial"]
    assert small.conns[ids[61001]].notes(late) == []


def test_room_made_ahead_for_a_stream_is_not_what_the_budget_counts(loads):
    """A stream's size is not known: its tables are made with room ahead (zeroed memory,
    nothing until rows are written), so they do not grow as it comes; the budget counts the
    rows in use, so the same connections leave as when the file is read."""
    from tcpview.engine.core.columns import STREAM_AHEAD
    from tcpview.engine.timeline.tracker import Tracker

    _path, full, small = loads
    frames = churn(4000)
    for budget, like in ((None, full), (300_000, small)):
        tr = Tracker(msl2=2.0)
        tr.tl.budget = budget
        tr.tl.tables.expect_stream()
        w = tr.tl.tables
        made = {name: getattr(w, name) for name in STREAM_AHEAD}
        assert {name: len(a) for name, a in made.items()} == STREAM_AHEAD
        tr.feed_records((i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(frames))
        if budget is None:  # not one table grew
            assert all(getattr(w, name) is a for name, a in made.items())
        assert tr.tl.evicted == like.evicted
        assert tr.tl.counters_at(None) == like.counters_at(None)
