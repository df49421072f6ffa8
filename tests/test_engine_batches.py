"""How frames are batched never shows: the same frames fed in batches of any sizes give the
same timeline as one batch, and after every batch what is published is a prefix of it.

The frames (:func:`enginecheck.varied_frames`) hold every kind of conversation the tracker
knows, on eight link types, IPv4 and IPv6, with timers that fire part-way. Hypothesis picks a
seed and a largest batch size; the seed splits the frames at random, picks how each part is
fed (``feed_batch``, ``feed_records`` or ``feed_frame`` one by one) and how small the tables
start (so they grow in the middle of a batch, or not at all).

After every part: every table's published rows are the first rows of the whole timeline's,
and each connection's ladder is exactly its segments so far (frames in order, the states
after each), the first rows of its ladder in the whole timeline, timers that fired included.
At the end: the same tables byte for byte, the same segments, transitions and counters.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from enginecheck import (
    MSL2,
    TABLES,
    assert_ladder_is_segments,
    assert_same_timeline,
    feed_part,
    random_splits,
    records,
    table_bytes,
    varied_frames,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tcpview.engine.output.ladder import ladder_count, ladder_rows
from tcpview.engine.timeline.timeline import Timeline
from tcpview.engine.timeline.tracker import Tracker
from tcpview.jit import JIT_DISABLED
from tcpview.sources.batch import FrameBatch

RECS = records(varied_frames())
N = len(RECS)


class Whole:
    """The frames fed as one batch, and what each step is compared with."""

    def __init__(self) -> None:
        tr = Tracker(msl2=MSL2, fin_timeout=MSL2)
        tr.feed_batch(FrameBatch.of_records(RECS))
        self.tl = tl = tr.tl
        v = tl.view()
        self.v = v
        self.tables = table_bytes(v)
        self.ladders = [ladder_rows(tl, cid) for cid in range(v.n_conn)]
        self.first_frame = np.array([tl.conns[cid].record(0)[1] for cid in range(v.n_conn)])
        frames = v.segs.frame[: v.n_seg]
        real = np.array([v.seg_real_ts(r) for r in range(v.n_seg)])
        # the latest time a TCP frame among the first k brought (timers fire by it)
        self.clock = np.full(N + 1, -np.inf)
        for f, ts in zip(frames.tolist(), real.tolist(), strict=True):
            self.clock[f] = ts
        self.clock = np.maximum.accumulate(self.clock)

    def ladder_after(self, cid: int, fed: int) -> list:
        """Connection cid's ladder rows once the first ``fed`` frames are in."""
        return [r for r in self.ladders[cid]
                if (r.frame <= fed if r.seg >= 0 else r.ts <= self.clock[fed])]


@pytest.fixture(scope="module")
def whole() -> Whole:
    w = Whole()
    v = w.v
    # the frames hold what this test is about
    assert v.n_conn >= 20 and v.n["trans_ts"] >= 5 and v.n["addrs6"] and v.n["long"] and v.n["seg_back"]
    assert v.n["anom"] and w.tl.counters_at(None)["TIME_WAIT"]
    assert len(v.skipped) >= 3 and len({r[2] for r in RECS}) >= 9
    return w


def check_step(tl: Timeline, w: Whole, fed: int, before: dict[str, int]) -> None:
    """What is published after the first ``fed`` frames is a prefix of the whole timeline.

    ``before``: the table lengths the previous step published. Ladders are checked for every
    connection with a new segment or transition since (the others' rows are unchanged, as the
    prefix check of the tables shows).
    """
    v = tl.view()
    assert v.packets == fed
    mine = table_bytes(v)
    for name in TABLES:
        if name != "conns":  # (a connection's working fields are as of now)
            prefix = w.tables[name].startswith(mine[name])
            assert prefix, f"after {fed} frames, {name}'s {v.n[name]} rows are not the whole timeline's first"
    assert v.n_conn == int(np.count_nonzero(w.first_frame <= fed))
    touched = {*v.segs.conn[before["segs"]: v.n_seg].tolist(),
               *v.trans.conn[before["trans"]: v.n_trans].tolist()}
    for cid in sorted(touched):
        rows = ladder_rows(tl, cid)
        assert_ladder_is_segments(rows, tl.conns[cid])
        assert rows == w.ladder_after(cid, fed), (cid, fed)
        assert ladder_count(tl, cid) == len(rows)


def feed_in_parts(seed: int, largest: int, w: Whole) -> Tracker:
    rng = random.Random(seed)
    tr = Tracker(Timeline(rows=rng.choice([None, 4, 16, 64])), msl2=MSL2, fin_timeout=MSL2)
    fed = 0
    for size in random_splits(N, rng, largest):
        before = tr.tl.view().n
        feed_part(tr, RECS[fed:fed + size], rng.choice(("batch", "records", "frame")))
        fed += size
        check_step(tr.tl, w, fed, before)
    return tr


@settings(max_examples=6 if JIT_DISABLED else 40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), largest=st.integers(1, N))
@example(seed=1, largest=1)
@example(seed=2, largest=N)
def test_any_batches_give_the_timeline_of_one_batch(whole, seed, largest):
    tr = feed_in_parts(seed, largest, whole)
    assert_same_timeline(tr.tl, whole.tl)
