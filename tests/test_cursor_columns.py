"""Every column of the connection table is as of the cursor: notes (partial, refused, reset,
anomaly), analysis flags, retransmissions and the initial RTT included.

The reference is a fresh read of only the frames at or before the cursor: the engine that has
seen nothing later. Its flag word, analysis rows and segments are then the world as of that
cursor, and the replay (``Reader.progress_at``) must say the same at every cursor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cursorhelp import as_then, fresh, mixed
from helpers import cli_here, corpus_dir, write_frames_pcap

from tcpview.engine.analysis.query import ConnRows
from tcpview.engine.core import columns as col
from tcpview.engine.pump import load
from tcpview.engine.timeline.timeline import Timeline


def shown(notes: np.ndarray) -> list[list[str]]:
    """The notes the replay's bits say."""
    from tcpview.engine.timeline.conns import notes_of

    return [notes_of(int(b)) for b in notes]


def assert_as_of(tl: Timeline, t: float | None, then: Timeline, where: str) -> None:
    """The replay at t equals what the engine that read up to t holds."""
    notes, irtt, retr, ana = as_then(then)
    n = len(notes)
    assert tl.conn_count_at(t) == n, where
    got = tl.progress_at(t)[:n]
    assert shown(got.notes & col.NOTE_SHOWN) == notes, where
    assert got.irtt.tolist() == irtt.tolist(), where
    assert got.retr.astype(np.int64).tolist() == retr.tolist(), where
    assert got.ana.astype(np.int64).tolist() == ana.tolist(), where


def test_every_cursor_of_a_mixed_capture_agrees_with_a_fresh_read_up_to_it() -> None:
    frames = mixed()
    tl = fresh(frames)
    # at the end, every note and flag has begun (the SYN after SYN+FIN is a new connection)
    notes, irtt, retr, _ana = as_then(tl)
    assert notes == [[], ["refused"], ["reset"], ["partial"], ["partial"], ["anomaly"], [],
                            ["partial", "reset"], [], []]
    assert retr.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert irtt[0] == pytest.approx(0.04) and irtt[8] == pytest.approx(0.03)  # from the second SYN
    times = [ts for ts, _lt, _raw in frames]
    cursors = list(range(1, len(frames)))
    for k in cursors + cursors[::-1]:  # forward (carried on from the last cursor) and back
        t = (times[k - 1] + times[k]) / 2
        assert_as_of(tl, t, fresh(frames[:k]), f"after frame {k}")
    assert_as_of(tl, None, tl, "the end")


def test_the_table_shows_no_rtt_or_retransmission_before_they_happen() -> None:
    """What a user saw: at the first segment, connection 0 had rtt and retr of the whole capture."""
    frames = mixed()
    tl = fresh(frames)
    rows = ConnRows()
    start = rows.facts(tl, frames[0][0])
    assert start.n == 1 and start.progress.irtt[0] == 0 and start.progress.retr[0] == 0
    handshake_done = frames[4][0]  # the ACK that completes connection 0's handshake
    assert rows.facts(tl, handshake_done - 0.001).progress.irtt[0] == 0
    assert rows.facts(tl, handshake_done).progress.irtt[0] == pytest.approx(handshake_done - frames[0][0])
    assert rows.facts(tl, None).progress.retr[0] == 2
    # the refused connection is not refused before the RST
    assert rows.facts(tl, frames[2][0]).notes(1) == []
    assert rows.facts(tl, frames[3][0]).notes(1) == ["refused"]
    # is: and analysis: filters follow the cursor too
    rows.set_query("is:refused")
    assert list(rows.compute(tl, frames[2][0])) == [] and list(rows.compute(tl, frames[3][0])) == [1]
    rows.set_query("an:retrans")
    assert list(rows.compute(tl, frames[9][0])) == [] and list(rows.compute(tl, frames[10][0])) == [0]


def test_sorting_on_notes_rtt_and_retransmissions_follows_the_cursor() -> None:
    frames = mixed()
    tl = fresh(frames)
    rows = ConnRows()
    for k in range(1, len(frames) + 1):
        t = frames[k - 1][0]
        notes, irtt, retr, _ana = as_then(fresh(frames[:k]))
        ids = list(range(len(notes)))
        for key, value in (("notes", [",".join(x) for x in notes]), ("rtt", irtt.tolist()),
                           ("retr", retr.tolist())):
            rows.sort = key
            assert list(rows.compute(tl, t)) == sorted(ids, key=lambda i: value[i]), (key, k)


def test_summary_at_a_cursor_says_what_the_table_says(tmp_path: Path) -> None:
    frames = mixed()
    path = write_frames_pcap(tmp_path / "mixed.pcap", frames)
    tl = load(str(path)).timeline
    rows = ConnRows()
    for k in (3, 4, 9, 13, 19, 21, len(frames)):
        at = float(frames[k - 1][0] - frames[0][0])
        rc, out, err = cli_here("summary", str(path), "--json", "--at", repr(at))
        assert rc == 0, err
        conns = json.loads(out)["connections"]
        assert [c["notes"] for c in conns] == as_then(fresh(frames[:k]))[0], k
        t = tl.first_ts + at
        facts = rows.facts(tl, t)
        assert [c["notes"] for c in conns] == [facts.notes(i) for i in range(facts.n)], k
        assert [c["partial"] for c in conns] == ["partial" in facts.notes(i) for i in range(facts.n)], k
        assert [tl.connection_dict(i, t)["notes"] for i in range(facts.n)] == [c["notes"] for c in conns]
    assert any(c["notes"] for c in conns)


CORPUS = corpus_dir()
SMALL = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 3_000_000) \
    if CORPUS else []


@pytest.mark.skipif(CORPUS is None, reason="corpus of public captures not found")
@pytest.mark.parametrize("path", SMALL, ids=[p.name for p in SMALL])
def test_corpus_captures_agree_with_a_fresh_read_up_to_the_cursor(path: Path) -> None:
    """On real captures (scans, resets, retransmissions, missing SYNs, reused ports...): at a
    dozen cursors, the replay equals the engine that read the file only up to there; and a
    connection replayed alone (what one whose clock stepped back uses) equals the bulk replay."""
    tl = load(str(path)).timeline
    v = tl.view()
    if not v.n_seg:
        return
    times = np.unique(v.segs.ts[: v.n_seg])
    picks = np.unique(np.linspace(0, len(times) - 2, 12).astype(np.int64)) if len(times) > 1 else []
    for i in picks:
        t = float(times[i] + times[i + 1]) / 2
        assert_as_of(tl, t, load(str(path), until=t - tl.first_ts).timeline, f"at {t}")
    assert_as_of(tl, None, tl, "the end")
    from tcpview.engine.core.passes import one_conn_progress

    whole = tl.progress_at(None)
    for c in tl.conns:
        alone = v.start_progress(c.row + 1)[c.row:]
        one_conn_progress(v.segs, v.trans, v.conns.fl, v.seg_back[: v.n["seg_back"]], v.anom[: v.n["anom"]],
                          c.rows, c.trans_rows, v.start_states(c.row + 1)[c.row:], alone, np.zeros(2, np.int64))
        assert alone[0].tolist() == whole[c.row].tolist(), c.id
