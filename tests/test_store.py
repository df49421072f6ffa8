"""The timeline store: the world as of any cursor time is a query (counters, connections,
both states), checked against the per-segment states recorded as the segments arrived."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from helpers import Flow, many_connections, states, track
from uihelp import T0, write_capture

from tcpview.engine.core.columns import SEG, TRANS
from tcpview.engine.core.tcp import STATE_NAMES
from tcpview.engine.timeline import reader
from tcpview.engine.timeline.conns import ConnView
from tcpview.engine.timeline.timeline import Timeline
from tcpview.engine.timeline.tracker import Tracker


@pytest.fixture(scope="module")
def busy():
    frames = many_connections()
    # timers far away, so the per-segment states are the whole truth; small tables, so they
    # grow several times while it is read
    tr = track(frames, msl2=1e9, fin_timeout=1e9, timeline=Timeline(rows=64))
    return frames, tr


_RECORDED: dict[int, list] = {}


def oracle_counters(tl, t: float) -> Counter:
    """Endpoints per state at t, from the states recorded on each connection's segments."""
    if id(tl) not in _RECORDED:
        _RECORDED[id(tl)] = [[(s.ts, s.client_state, s.server_state) for s in tl.segments(cid)]
                             for cid in range(len(tl.conns))]
    out: Counter = Counter()
    for segs in _RECORDED[id(tl)]:
        last = None
        for rec in segs:
            if rec[0] <= t:
                last = rec
        if last is not None:
            out[last[1]] += 1
            out[last[2]] += 1
    out.pop("CLOSED", None)
    return out


def test_enough_transitions_to_grow_the_tables(busy):
    """The capture fills the first tables many times over, so the answers below cross table
    growth (readers keep the older arrays)."""
    _frames, tr = busy
    assert sum(len(c.trans) for c in tr.tl.conns) > 16 * 64
    assert len(tr.tl.view().trans) >= 16 * 64


def test_counters_at_any_time_match_the_recorded_states(busy):
    frames, tr = busy
    tl = tr.tl
    rng = random.Random(3)
    times = [frames[0][0] - 1, frames[-1][0] + 1] + [rng.uniform(frames[0][0], frames[-1][0]) for _ in range(25)]
    times += [frames[i][0] for i in rng.sample(range(len(frames)), 10)]
    # forwards, backwards, random order: the answer depends only on t
    for t in times + sorted(times) + sorted(times, reverse=True):
        got = {k: v for k, v in tl.counters_at(t).items() if v}
        assert got == dict(oracle_counters(tl, t)), t


def test_counters_now_equal_counters_at_the_end(busy):
    frames, tr = busy
    tl = tr.tl
    assert tl.counters_at(None) == tl.counters_at(frames[-1][0])
    assert all(v >= 0 for v in tl.counters_at(None).values())


def test_counter_series_samples_the_same_counts(busy):
    frames, tr = busy
    tl = tr.tl
    t0, t1 = tl.first_ts, tl.last_ts
    for state in ("ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT"):
        idx = STATE_NAMES.index(state)
        series = tl.counter_series(idx, 20)
        assert len(series) == 20
        for b, v in enumerate(series):
            tb = t0 + (t1 - t0) * (b + 1) / 20
            assert v == tl.counters_at(tb)[state]


def test_counts_from_marks_match_the_recorded_states(monkeypatch):
    """The counters start from the nearest mark before the cursor (each state's count after
    every few transitions, made as transitions come): with a mark every 7 transitions, a cursor
    anywhere, moved forwards and back, and each sparkline sample count what was recorded."""
    monkeypatch.setattr(reader, "MARK_EVERY", 7)
    frames = many_connections()
    tr = Tracker(msl2=1e9, fin_timeout=1e9, timeline=Timeline(rows=64))
    half = len(frames) // 2
    for i, (ts, lt, raw) in enumerate(frames, 1):
        tr.feed_frame(i, ts, lt, raw)
        if i == half:
            tr.tl.counters_at(None)  # the marks so far, extended below as the rest comes
    tl = tr.tl
    assert tl.view().n_trans > 100 * 7
    rng = random.Random(5)
    times = [rng.uniform(frames[0][0], frames[-1][0]) for _ in range(20)]
    for t in times + sorted(times) + sorted(times, reverse=True):
        got = {k: v for k, v in tl.counters_at(t).items() if v}
        assert got == dict(oracle_counters(tl, t)), t
    t0, t1 = tl.first_ts, tl.last_ts
    for state in ("ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT"):
        series = tl.counter_series(STATE_NAMES.index(state), 12)
        assert series == [oracle_counters(tl, t0 + (t1 - t0) * (b + 1) / 12)[state] for b in range(12)]


def test_states_at_and_connection_at_every_segment_time(busy):
    _frames, tr = busy
    tl = tr.tl
    for cid in range(0, len(tl.conns), 7):
        c = tl.conns[cid]
        segs = list(tl.segments(cid))
        for k, s in enumerate(segs):
            if k + 1 < len(segs) and segs[k + 1].ts == s.ts:
                continue
            assert tuple(STATE_NAMES[x] for x in c.states_at(s.ts)) == (s.client_state, s.server_state)
            m = tl.connection(cid, s.ts)
            assert m.packets == k + 1
            assert m.bytes == sum(x.len for x in segs[: k + 1])
            assert (m.client.state, m.server.state) == (s.client_state, s.server_state)
            assert m.last_ts == s.ts
        assert c.states_at(segs[0].ts - 1e-6) == (0, 0)


def test_conn_count_and_connections_at(busy):
    _frames, tr = busy
    tl = tr.tl
    firsts = sorted(c.first_ts for c in tl.conns)
    assert [c.first_ts for c in tl.conns] == firsts  # ids in order of first packet
    for t in (firsts[0] - 1, firsts[10], firsts[-1] + 0.5):
        n = sum(1 for f in firsts if f <= t)
        assert tl.conn_count_at(t) == n
        assert [m.id for m in tl.connections(t)] == list(range(n))


def test_transitions_up_to_a_time(busy):
    _frames, tr = busy
    tl = tr.tl
    c = tl.conns[0]
    all_t = tl.transitions(0)
    assert len(all_t) == len(c.trans) >= 4
    mid = all_t[2].ts
    cut = tl.transitions(0, mid)
    assert cut == [t for t in all_t if t.ts <= mid]
    assert all(t.conn == 0 for t in all_t)


def test_segments_and_transitions_are_packed_rows(busy):
    _frames, tr = busy
    v = tr.tl.view()
    assert v.segs.dtype == SEG and SEG.itemsize == 32
    assert v.trans.dtype == TRANS and TRANS.itemsize == 10
    assert v.n_seg == sum(c.n for c in tr.tl.conns) == tr.tl.tcp_packets


def test_time_wait_expiry_is_visible_at_the_cursor():
    f = Flow(t0=0.0, dt=0.01)
    f.handshake()
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    t_tw = f.frames[5][0]
    g = Flow(cport=40001, t0=100.0, frames=f.frames)
    g.c("S")
    tr = track(f.frames, msl2=60.0)
    tl = tr.tl
    assert tl.counters_at(t_tw + 59)["TIME_WAIT"] == 1
    assert tl.counters_at(t_tw + 60.5)["TIME_WAIT"] == 0
    assert tl.conns[0].states_at(t_tw + 30) == (10, 0)
    assert tl.conns[0].states_at(t_tw + 61) == (0, 0)
    assert tl.connection(0, t_tw + 30).client.state == "TIME_WAIT"
    assert tl.connection(0, None).client.state == "CLOSED"


def test_timestamps_going_backwards_keep_counters_consistent():
    f = Flow(t0=10.0)
    f.handshake()
    f.c("PA", b"x", at=9.0)  # a frame stamped before its predecessors
    f.c("FA", at=10.5)
    f.s("A")
    tr = track(f.frames)
    tl = tr.tl
    assert states(tr) == ("FIN_WAIT_2", "CLOSE_WAIT")
    now = tl.counters_at(None)
    assert (now["FIN_WAIT_2"], now["CLOSE_WAIT"]) == (1, 1)
    assert sum(now.values()) == 2
    assert tl.counters_at(tl.last_ts) == now


def test_connections_when_the_clock_stepped_back_are_read_in_one_pass(monkeypatch):
    """A capture whose clock steps back now and then (tcpdump on a busy loopback writes a few
    such frames) still gives every connection as its own view does, and without one scan of
    the segment and transition tables per connection (that took minutes on 60k connections)."""
    import tcpview.engine.timeline.reader as store

    frames = many_connections(60)
    k = len(frames) // 2
    ts, lt, raw = frames[k]
    frames[k] = (frames[k - 1][0] - 0.5, lt, raw)  # stamped before its predecessor
    tl = track(frames).tl
    v = tl.view()
    assert v.clock_stepped_back
    scans = []
    real_conn_rows = store.conn_rows
    monkeypatch.setattr(store, "conn_rows", lambda *a: scans.append(a) or real_conn_rows(*a))
    mid = frames[k][0]
    got = {t: tl.connection_dicts(t) for t in (None, mid, tl.last_ts)}
    assert scans == []
    for t, dicts in got.items():
        n = tl.conn_count_at(t)
        assert 0 < n and len(dicts) == n
        assert dicts == [ConnView(tl, v, i).as_dict(t) for i in range(n)]


@pytest.mark.parametrize("step_back", [False, True])
def test_a_connections_rows_are_looked_for_from_its_first_segment(step_back: bool, monkeypatch):
    """A connection's segments and transitions are looked for from its first segment on (not
    from the capture's first row): the rows found are those of a scan of every row, when the
    clock stepped back too (the stored times never go back), and the scans start late."""
    import numpy as np

    import tcpview.engine.timeline.reader as store
    from tcpview.engine.core.passes import conn_rows

    starts = []
    monkeypatch.setattr(store, "conn_rows", lambda table, row, k0, k: starts.append(k0) or conn_rows(table, row, k0, k))
    frames = many_connections(80)
    if step_back:
        k = len(frames) // 2
        frames[k] = (frames[k - 1][0] - 0.5, *frames[k][1:])
    tl = track(frames, msl2=0.5, fin_timeout=0.5).tl  # timers' transitions too
    v = tl.view()
    assert v.clock_stepped_back == step_back or v.n["trans_ts"] > 0
    for row in range(v.n_conn):
        segs, trans = tl.rows_of(row, v), tl.trans_rows_of(row, v)
        assert np.array_equal(segs, conn_rows(v.segs, row, 0, v.n_seg)), row
        assert np.array_equal(trans, conn_rows(v.trans, row, 0, v.n_trans)), row
    assert len(starts) == 2 * v.n_conn and sum(k0 > 0 for k0 in starts) > 1.5 * v.n_conn


def test_one_segment_connections_keep_no_analysis_state(tmp_path):
    """Wireshark's analysis state is made at a connection's second segment (from its first):
    a flood of SYNs that are never answered needs none, and the ones answered get theirs."""
    from helpers import Flow, write_frames_pcap

    from tcpview.engine.core import columns as col
    from tcpview.engine.pump import load

    frames: list = []
    for i in range(500):
        Flow(cip=f"10.1.{i // 250}.{i % 250 + 1}", cport=1024 + i, t0=1.0 + i * 1e-4, frames=frames).c("S")
    answered = Flow(cport=60000, t0=2.0, frames=frames)
    answered.handshake()
    answered.c("PA", b"x" * 10)
    answered.c("PA", b"x" * 10, seq=answered.nxt[0] - 10)  # a retransmission: the state was kept
    tl = load(str(write_frames_pcap(tmp_path / "flood.pcap", frames))).timeline
    v = tl.view()
    assert v.n_conn == 501
    assert v.n["ana"] == 2  # the scratch row and the answered connection's
    assert (v.conns.ana[:500] == 0).all() and v.conns.ana[500] == 1
    assert "retransmission" in list(tl.segments(500))[-1].analysis
    assert v.initial_rtts(501)[500] == pytest.approx(0.002)
    assert col.ANA.itemsize > 64 and col.CONN.itemsize < 110  # what it saves per connection


def test_the_compile_cache_follows_every_kernel_source(tmp_path):
    """numba reuses a cached kernel when its own file is unchanged, even if a function it
    compiled in changed: tcpview's cache directory is named by a digest of all of them."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import tcpview

    src = Path(tcpview.__file__).parent
    copy = tmp_path / "tcpview"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def cache_dir() -> str:
        code = "import tcpview.jitcache as j; print(j.CACHE_DIR)"
        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        env.pop("NUMBA_CACHE_DIR", None)
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                              check=True).stdout.strip()

    first = cache_dir()
    assert first == cache_dir()
    Path(first).mkdir(parents=True)  # as numba makes it when it compiles
    helper = copy / "engine" / "core" / "seqanalysis.py"  # in a subfolder, compiled into the loop
    # of loop.py, not a kernel itself
    helper.write_text(helper.read_text() + "\n# changed\n")
    second = cache_dir()
    assert second != first and Path(second).parent == Path(first).parent
    assert not Path(first).exists()  # beside the engine, the old version's cache is removed


def test_states_of_every_connection_agree_with_the_store_back_and_forth(tmp_path: Path) -> None:
    """The bulk per-connection states (kept per cursor and moved forward incrementally) equal
    each connection's own states_at at every time, in either direction."""
    from tcpview.engine.pump import load

    tl = load(str(write_capture(tmp_path / "late.pcap", late=True))).timeline
    times = [0.05, 0.55, 1.65, 61.7, 0.25, 2.05, 70.0, 0.0, 1.75, 100.0, 0.15]
    for off in times + times[::-1]:
        t = T0 + off
        states = tl.states_at(t)
        for c in tl.conns:
            assert tuple(states[c.id]) == c.states_at(t), (off, c.id)
    states = tl.states_at(None)
    assert [tuple(states[c.id]) for c in tl.conns] == [tuple(c.state) for c in tl.conns]
    assert states[1][0] == 0  # conn 1's TIME_WAIT expired (60 s after 1.6) before the SYN at 70 s


def test_states_at_jumps_across_a_busy_capture() -> None:
    """Jumps back and forth across a capture with several transitions per connection give
    the store's per-connection states each time."""
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=6)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    assert tl.view().n_trans > 3 * len(tl.conns) > 90  # several transitions per connection
    span = tl.last_ts - tl.first_ts
    for frac in (0.02, None, 0.95, 0.9, 0.05, 0.5, 0.51, 0.3, 0.99, 0.0, None):
        t = None if frac is None else tl.first_ts + span * frac
        states = tl.states_at(t)
        for c in tl.conns:
            assert tuple(states[c.id]) == c.states_at(t), (t, c.id)


def test_a_loaded_file_leaves_no_python_object_per_connection(tmp_path: Path) -> None:
    """The store is columns: reading many connections adds arrays, not objects the garbage
    collector has to walk (which once paused the viewer for most of a second)."""
    import gc
    import threading

    from helpers import many_connections, write_frames_pcap

    from tcpview.engine.pump import Pump
    from tcpview.sources.base import FileSource

    path = str(write_frames_pcap(tmp_path / "many.pcap", many_connections()))
    gc.collect()
    before = len(gc.get_objects())
    pump = Pump(FileSource(path))
    pump.run(threading.Event(), lambda info: None)
    gc.collect()
    assert pump.done and len(pump.tl.conns) >= 100
    assert len(gc.get_objects()) - before < len(pump.tl.conns)
