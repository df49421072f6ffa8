"""The engine under reader threads: while a large capture loads (a pump on its own thread, the
compiled loop without the GIL, every table starting at 64 rows so each grows many times),
another thread asks every question the viewer asks, over and over, and each answer must be
that of a published prefix; a third asks the cheap questions about "now" as fast as it can
(two readers share the timeline's caches).

How an answer is checked, for a view ``v`` the reader takes at the start of a round:

- what takes a view (``states_at``, ``conn_stats_at``, a ``ConnView``) equals the answer
  recomputed from scratch with plain numpy over ``v``'s rows;
- what takes a time ``t`` before ``v``'s last segment (counters, series, connection count,
  connection dicts, ladders, the table's filter and sort) is final: it equals the same
  question asked of the whole capture loaded on one thread (its clock never steps back, so
  every later frame is later than t);
- what asks about "now" must not fail, and in a round where the writer waited for the reader
  (so nothing was published meanwhile) equals the answer from scratch over ``v``;
- published rows are never rewritten and counts never go backwards between views.

At the end the timeline equals the single-threaded one, table by table.

A connection's notes (reset, refused, anomaly, partial) are left out of the comparisons at a
time t: they are read from the connection's working flags, i.e. as of now, not as of t.

The writer waits for the reader every few batches (a gate, not a sleep), so the reader is
guaranteed rounds all through the load; between gates both run freely.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from enginecheck import (
    CONN_FIXED,
    TABLES,
    assert_conn_consistent,
    assert_ladder_is_segments,
    assert_same_timeline,
    busy_frames,
    busy_template,
    records,
    scratch_conn_stats,
    scratch_counters,
    scratch_states,
    seg_count,
)
from helpers import many_connections, wait_until, write_frames_pcap

from tcpview.engine.analysis.diagnosis import breakdown_at, diagnose, sender_at, verdicts_at
from tcpview.engine.analysis.query import SORT_KEYS, ConnRows, read_ahead
from tcpview.engine.output.ladder import ladder_count, ladder_rows, ladder_window
from tcpview.engine.pump import Pump, PumpThread, load
from tcpview.engine.timeline.conns import ConnView
from tcpview.engine.timeline.timeline import Timeline
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources import pcap
from tcpview.sources.base import FileSource
from tcpview.sources.batch import FrameBatch

TIMER = 5.0  # 2*MSL and the FIN timeout: timers fire all through the capture
COPIES = 250  # of a 40-connection template: about 250,000 frames, 10,000 connections
GATE_EVERY = 25  # batches between the writer's waits for the reader
QUERIES = ("port:443 state:est", "10.1.0. state:time-wait")
DEADLINE = 300.0  # keeps a broken test from hanging, nothing more


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    frames = busy_frames(COPIES, template=busy_template(40))
    return write_frames_pcap(tmp_path_factory.mktemp("busy") / "busy.pcap", frames), len(frames)


@pytest.fixture(scope="module")
def reference(capture):
    """The capture loaded on this thread, in the pump's usual batches, before any other."""
    path, n = capture
    res = load(str(path), msl2=TIMER, fin_timeout=TIMER)
    assert res.error is None
    assert res.timeline.packets == n
    return res.timeline


class Gate:
    """The writer waits here until the reader has checked a view as new as the writer's."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.checked = -1
        self.failed = False

    def reader_checked(self, version: int) -> None:
        with self.cond:
            self.checked = version
            self.cond.notify_all()

    def reader_failed(self) -> None:
        with self.cond:
            self.failed = True
            self.cond.notify_all()

    def wait(self, version: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.failed or self.checked >= version, timeout=DEADLINE)


class GatedCapture:
    """A source: the capture read by the real reader, in small chunks (many batches, frames
    cut across chunk boundaries), pausing at the gate every ``GATE_EVERY`` batches."""

    def __init__(self, path, tl: Timeline, gate: Gate) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.tl = tl
        self.gate = gate
        self.batches_read = 0

    def batches(self, stop: threading.Event):  # type: ignore[no-untyped-def]
        with pcap.CaptureReader(str(self.path)) as reader:
            for batch in reader.batches():
                if self.batches_read and self.batches_read % GATE_EVERY == 0:
                    self.gate.wait(self.tl.version)
                self.batches_read += 1
                yield batch


class Reader:
    """The reader thread's rounds: every query, checked against the round's view."""

    def __init__(self, tl: Timeline, ref: Timeline) -> None:
        self.tl = tl
        self.ref = ref
        self.rng = random.Random(1234)
        self.rows = [ConnRows() for _ in QUERIES]
        self.ref_rows = [ConnRows() for _ in QUERIES]
        for r, rr, q in zip(self.rows, self.ref_rows, QUERIES, strict=True):
            r.set_query(q)
            rr.set_query(q)
        self.prev = None  # (view, copies of its rows)
        self.rounds = 0
        self.quiet = 0
        self.capacities: set[tuple[int, int, int]] = set()
        self.sorted_by: set[str] = set()

    def round(self) -> None:
        tl, ref, rng = self.tl, self.ref, self.rng
        v = tl.view()
        self.rounds += 1
        self.capacities.add((len(v.conns), len(v.segs), len(v.trans)))
        self.check_prefix(v)
        # "now": must not fail; exact when nothing was published meanwhile
        now_counters = tl.counters_at(None)
        now_dicts = tl.connection_dicts(None)
        now_rows = [r.compute(tl, None) for r in self.rows]
        if tl.view() is v:
            self.quiet += 1
            assert now_counters == scratch_counters(v, None)
            assert len(now_dicts) == v.n_conn
            for d in now_dicts[-3:]:
                assert _stable(d) == _stable(ConnView(tl, v, d["id"]).as_dict(None))
            for got in now_rows:
                assert all(0 <= i < v.n_conn for i in got)
        if v.n_seg < 2:
            return
        last = float(v.segs.ts[v.n_seg - 1])
        t = rng.choice((rng.uniform(v.first_ts - 1, last), float(v.segs.ts[rng.randrange(v.n_seg)])))
        if t >= last:
            t = float(v.segs.ts[0])
        for when in (t, None):
            # questions of this view
            assert np.array_equal(tl.states_at(when, v), scratch_states(v, when)), when
            for got, exp in zip(tl.conn_stats_at(when, v), scratch_conn_stats(v, when), strict=True):
                assert np.array_equal(got[: v.n_conn], exp), when
            for cid in {rng.randrange(v.n_conn), v.n_conn - 1}:
                assert_conn_consistent(tl, v, cid, when)
        # questions of a time before the view's last segment: final, whatever comes later
        assert tl.seg_index_at(t) == seg_count(v, t)
        assert tl.counters_at(t) == ref.counters_at(t) == scratch_counters(v, t), t
        state = rng.choice((4, 6, 7, 10))
        assert tl.counter_series(state, 16, t) == ref.counter_series(state, 16, t), t
        n = tl.conn_count_at(t)
        assert n == ref.conn_count_at(t) == int(np.count_nonzero(v.conns.first_ts[: v.n_conn] <= t)), t
        assert list(map(_stable, tl.connection_dicts(t))) == list(map(_stable, ref.connection_dicts(t))), t
        if n:
            cid = rng.randrange(n)
            rows = ladder_rows(tl, cid, t)
            assert rows == ladder_rows(ref, cid, t), (cid, t)
            c = ConnView(tl, v, cid)
            assert_ladder_is_segments(rows, c, c.count_at(t))
            assert ladder_count(tl, cid, t) == len(rows)
            first = rng.randrange(len(rows) + 1)
            assert ladder_window(tl, cid, t, False, first, 7) == rows[first:first + 7], (cid, t, first)
        # the table: each filter with one sort key a round, every key in turn
        for j, (r, rr) in enumerate(zip(self.rows, self.ref_rows, strict=True)):
            key = SORT_KEYS[(self.rounds + 5 * j) % len(SORT_KEYS)]
            r.sort = rr.sort = key
            r.reverse = rr.reverse = rng.random() < 0.5
            got, exp = list(r.compute(tl, t)), list(rr.compute(ref, t))
            if key == "notes":  # a connection's notes are as of now, not as of t
                got, exp = sorted(got), sorted(exp)
            assert got == exp, (r.query.text, key, t)
            self.sorted_by.add(key)

    def check_prefix(self, v) -> None:  # type: ignore[no-untyped-def]
        """Counts never go back; rows published before are as they were."""
        if self.prev is not None:
            pv, copies = self.prev
            assert v.version >= pv.version
            for name in TABLES:  # (not the timer heap: timers come and go)
                assert v.n[name] >= pv.n[name], name
            assert (v.packets, v.tcp_packets) >= (pv.packets, pv.tcp_packets)
            assert pv.last_ts is None or v.last_ts >= pv.last_ts
            for name, rows in copies.items():
                assert _rows(v, name, pv.n[name]) == rows, f"published rows of {name} changed"
        self.prev = (v, {name: _rows(v, name, v.n[name]) for name in TABLES})


def hammer(tl: Timeline, rows: ConnRows) -> None:
    """Cheap questions about "now" as fast as they come (a second reader, like a UI tick with
    nothing to wait for): none may fail, and none may see past what was published."""
    n_conn = len(tl.conns)
    counters = tl.counters_at(None)
    assert 0 <= sum(counters.values()) <= 2 * len(tl.conns)
    assert all(0 <= i < len(tl.conns) for i in rows.compute(tl, None))
    assert len(tl.states_at(None)) <= len(tl.conns)
    if n_conn:
        c = tl.conns[n_conn - 1]
        assert_ladder_is_segments(ladder_rows(tl, c.id), c)


def _rows(v, name: str, k: int) -> bytes:  # type: ignore[no-untyped-def]
    """The first k rows of a table as bytes (of a connection, the fields that never change)."""
    rows = getattr(v, name)[:k]
    if name == "conns":
        return b"".join(np.ascontiguousarray(rows[f]).tobytes() for f in CONN_FIXED)
    return np.ascontiguousarray(rows).tobytes()


def _stable(d: dict) -> dict:
    """A connection dict without its notes (a connection's notes are as of now, not of t)."""
    return {k: v for k, v in d.items() if k != "notes"}


def test_every_query_while_a_large_capture_loads(capture, reference, monkeypatch):
    path, n = capture
    monkeypatch.setattr(pcap, "CHUNK", 1 << 17)  # ~300 batches
    tl = Timeline(rows=64)
    tracker = Tracker(tl, msl2=TIMER, fin_timeout=TIMER)
    gate = Gate()
    source = GatedCapture(path, tl, gate)
    reader = Reader(tl, reference)
    errors: list[BaseException] = []
    pump = PumpThread(source, tracker)

    def read() -> None:
        try:
            while True:
                done = pump.pump.done
                reader.round()
                gate.reader_checked(reader.prev[0].version)
                if done:
                    return
        except BaseException as e:
            errors.append(e)
            gate.reader_failed()

    hammered = []

    def hammering() -> None:
        rows = ConnRows()
        rows.set_query("state:est")
        try:
            while True:
                done = pump.pump.done
                hammer(tl, rows)
                hammered.append(tl.version)
                rows.sort = SORT_KEYS[(SORT_KEYS.index(rows.sort) + 1) % len(SORT_KEYS)]
                if done:
                    return
        except BaseException as e:
            errors.append(e)
            gate.reader_failed()

    threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (read, hammering)]
    for thread in threads:
        thread.start()
    pump.start()
    assert wait_until(lambda: not any(thread.is_alive() for thread in threads), timeout=DEADLINE)
    pump.stop()
    if errors:
        raise errors[0]
    assert source.batches_read > 10 * GATE_EVERY
    assert reader.rounds > source.batches_read // GATE_EVERY
    assert reader.quiet >= (source.batches_read - 1) // GATE_EVERY  # a quiet round at each gate
    assert hammered
    # the tables grew many times, and the reader saw them at many sizes
    assert len(tl.view().segs) >= 64 << 12
    assert len({c[1] for c in reader.capacities}) >= 5
    assert tl.packets == n
    assert reader.sorted_by == set(SORT_KEYS)
    assert_same_timeline(tl, reference, every=97)
    assert reference.view().n["trans_ts"] > 1000  # timers fired all along


# -- a publish at the worst moment, made to happen -------------------------------------------------
def racing_tracker(frames: list, k: int) -> tuple[Tracker, Timeline]:
    """A tracker fed the first k frames whose timeline's ``view()`` lets the writer publish
    the rest right after it hands a reader its view (once); and the timeline of the first k
    frames alone, the answers expected."""
    recs = records(frames)
    tr = Tracker()
    tr.feed_batch(FrameBatch.of_records(recs[:k]))
    early = Tracker()
    early.feed_batch(FrameBatch.of_records(recs[:k]))
    take = tr.tl.view
    rest = [FrameBatch.of_records(recs[k:])]

    def view():  # type: ignore[no-untyped-def]
        v = take()
        if rest:
            tr.feed_batch(rest.pop())
        return v

    tr.tl.view = view  # type: ignore[method-assign]
    return tr, early.tl


def test_reader_keeps_its_view_while_a_batch_is_published():
    """Regression: the table's facts and ``connection_dicts`` took the connection count from
    the newest view but the states from their own, so "now" failed (mismatched shapes, an
    IndexError) whenever a batch was published in between."""
    frames = many_connections(40)
    tr, early = racing_tracker(frames, 100)
    dicts = tr.tl.connection_dicts(None)
    assert tr.tl.view().n_conn > len(dicts)  # the rest was published meanwhile
    assert [_stable(d) for d in dicts] == [_stable(d) for d in early.connection_dicts(None)]
    for key in SORT_KEYS:
        tr, early = racing_tracker(frames, 100)
        got, exp = ConnRows(), ConnRows()
        for r in (got, exp):
            r.set_query("state:est")
            r.sort = key
        ids, exp_ids = list(got.compute(tr.tl, None)), list(exp.compute(early, None))
        if key == "notes":
            ids, exp_ids = sorted(ids), sorted(exp_ids)
        assert ids == exp_ids, key
        assert tr.tl.view().n_conn > early.view().n_conn


# -- the reader's thread carries the passes on ahead of the viewer ----------------------------------
def test_passes_carried_on_by_the_reader_while_the_viewer_asks(capture, reference, monkeypatch):
    """The thread that reads a live source carries the passes on after each batch
    (``read_ahead``), while another asks what the viewer asks of them, as fast as it can: the
    diagnosis's state is changed in place by both, under its lock. At the end every answer
    equals the capture's loaded on one thread, where nobody read ahead."""
    path, n = capture
    monkeypatch.setattr(pcap, "CHUNK", 1 << 16)  # ~600 batches
    tracker = Tracker(Timeline(rows=64), msl2=TIMER, fin_timeout=TIMER)
    tl = tracker.tl
    pump = Pump(FileSource(str(path)), tracker, keep_frames=False, pause_seconds=0.0, batch_seconds=0.0)
    stop, errors, asked = threading.Event(), [], []
    carried = []

    def ahead(_info) -> None:  # type: ignore[no-untyped-def]
        read_ahead(tl)
        carried.append(tl.view().n_seg)

    def ask() -> None:
        rows = ConnRows()
        rows.sort = "slow"
        try:
            while not pump.done:
                ids = rows.compute(tl, None)
                if len(ids):
                    cid = int(ids[0])
                    breakdown_at(tl, cid)
                    sender_at(tl, cid)
                asked.append(len(ids))
        except BaseException as e:
            errors.append(e)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    pump.run(stop, ahead)
    asker.join(DEADLINE)
    if errors:
        raise errors[0]
    assert len(carried) > 100 and len(asked) > 10
    assert tl.packets == n
    assert verdicts_at(tl).tolist() == verdicts_at(reference).tolist()
    got, want = diagnose(tl), diagnose(reference)
    assert [got.of(r).as_dict() for r in range(len(got))] == [want.of(r).as_dict() for r in range(len(want))]
    for cid in range(0, len(tl.conns), 101):
        assert breakdown_at(tl, cid) == breakdown_at(reference, cid)
