"""The last step of a cluster run: the buckets' answers put together as one read would give them.

Connection ids count from 0 in order of first packet over the whole archive: a connection's
id is the rank of its first segment's frame number among every bucket's connections (a
bucket's own ids keep that order, so its connections stay sorted). Per-connection items are
merged by id, segments by frame; totals are summed (packets, skips, counters, evictions,
flags, verdicts), the first and last times are the earliest and the latest, and the RTTs over
all are figured from every sample, in the order a single read takes them.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import operator
from collections.abc import Iterator
from dataclasses import fields, replace

import numpy as np

from ..engine.timeline.conn_columns import ConnColumns
from .bucket import ROW_START, BucketAnswer, relabel_line


def archive_ids(answers: list[BucketAnswer]) -> list[np.ndarray]:
    """Each bucket's connections' ids in the archive, by the bucket's own id."""
    firsts = np.concatenate([a.firsts for a in answers]) if answers else np.zeros(0, dtype=np.int64)
    rank = np.empty(len(firsts), dtype=np.int64)
    rank[np.argsort(firsts, kind="stable")] = np.arange(len(firsts), dtype=np.int64)
    out, at = [], 0
    for a in answers:
        out.append(rank[at:at + len(a.firsts)])
        at += len(a.firsts)
    return out


def _add(total: dict, part: dict) -> dict:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v
    return total


def merged_head(answers: list[BucketAnswer], source: str) -> dict:
    """The summary's head (without its connections) over every bucket."""
    heads = [a.head for a in answers]
    firsts = [h["first_ts"] for h in heads if h["first_ts"] is not None]
    lasts = [h["last_ts"] for h in heads if h["last_ts"] is not None]
    counters: dict[str, int] = {}
    skipped: dict[str, int] = {}
    evicted: dict[str, int] = {}
    for h in heads:
        _add(counters, h["counters"])
        _add(skipped, h["skipped"])
        _add(evicted, h["evicted"])
    return {
        "source": source,
        "packets": sum(h["packets"] for h in heads),
        "tcp_packets": sum(h["tcp_packets"] for h in heads),
        "fragments": sum(h["fragments"] for h in heads),
        "skipped": dict(sorted(skipped.items())),
        "first_ts": min(firsts) if firsts else None,
        "last_ts": max(lasts) if lasts else None,
        "at": None,
        "counters": counters,
        "connections": [],
        "evicted": evicted or {"connections": 0, "segments": 0},
    }


def _by_id(answers: list[BucketAnswer], ids: list[np.ndarray], key: str = "id"):
    """Every bucket's per-connection dicts, relabelled, in id order."""
    def relabelled(a: BucketAnswer, gid: np.ndarray):
        for d in a.rows:
            yield {**d, key: int(gid[d[key]])}

    return heapq.merge(*(relabelled(a, g) for a, g in zip(answers, ids, strict=True)), key=lambda d: d[key])


def summary(answers: list[BucketAnswer], source: str) -> dict:
    """``summary --json``'s content (from buckets that answered ``summary``)."""
    s = merged_head(answers, source)
    cols = summary_columns(answers)
    with _collector_paused():
        s["connections"] = cols.dicts()
    return s


def summary_columns(answers: list[BucketAnswer]) -> ConnColumns:
    """Every bucket's connections (from buckets that answered ``summary``), column by column,
    in id order: the k-th is connection k."""
    cols = [a.columns for a in answers if a.columns is not None]
    assert len(cols) == len(answers)
    ids = archive_ids(answers)
    out = ConnColumns.empty()
    n = sum(len(p) for p in cols)
    if not n:
        return out
    gids = np.concatenate([g[np.asarray(p.ids, dtype=np.int64)] for p, g in zip(cols, ids, strict=True)])
    order = np.argsort(gids, kind="stable").tolist()
    pick = operator.itemgetter(*order) if n > 1 else lambda whole: (whole[0],)
    with _collector_paused():
        for f in fields(out):
            if f.name == "ids":
                out.ids = list(range(n))
            else:
                setattr(out, f.name, list(pick([x for p in cols for x in getattr(p, f.name)])))
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while hundreds of thousands of small objects
    are made that hold no cycles: each of its passes walks every object of the client, Dask's
    included (the ``summary --json`` of 200,000 connections took 0.20-0.38 s with it running,
    0.13-0.17 s without)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def summary_json(answers: list[BucketAnswer], source: str) -> list:
    """``summary --json``'s text (from buckets that answered ``summary-json``), as
    ``tcpview.cli.report.write_summary_json`` writes it (``json.dumps(..., indent=1)``'s), in
    pieces of bytes to write one after the other (the rows as the buckets wrote them: joined
    into one text they would be copied twice more, 80 MB for 200,000 connections)."""
    import json

    head = merged_head(answers, source)
    head["connections"] = "@@connections@@"
    before, after = json.dumps(head, indent=1).split('"@@connections@@"')
    ids = archive_ids(answers)
    parts = [a.json for a in answers if a.json is not None]
    assert len(parts) == len(answers)
    if not sum(len(p) for p in parts):
        return [before.encode(), b"[]", after.encode(), b"\n"]
    gids = np.concatenate([g[p.ids] for p, g in zip(parts, ids, strict=True)])
    which = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)])
    starts = np.concatenate([p.starts for p in parts])
    ends = np.concatenate([p.ends for p in parts])
    order = np.argsort(gids, kind="stable")  # the k-th row is connection k's: its id is k
    views = [memoryview(p.text) for p in parts]
    n = len(order)
    with _collector_paused():
        # the rows' pieces, made by the interpreter's own loops (no Python per row)
        flat: list = [b",\n" + ROW_START] * (3 * n)
        flat[0] = ROW_START
        flat[1::3] = map(str.encode, map(str, range(n)))
        flat[2::3] = map(memoryview.__getitem__, map(views.__getitem__, which[order].tolist()),
                         map(slice, starts[order].tolist(), ends[order].tolist()))
        return [before.encode(), b"[\n", *flat, b"\n ]", after.encode(), b"\n"]


def expert(answers: list[BucketAnswer]) -> dict:
    """``expert``'s report (without its source)."""
    ids = archive_ids(answers)
    flags: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    samples: list[tuple[int, np.ndarray]] = []
    for a, gid in zip(answers, ids, strict=True):
        _add(flags, a.extra["flags"])
        _add(verdicts, a.extra["verdicts"])
        samples += [(int(gid[cid]), s) for cid, s in a.extra["samples"]]
    samples.sort(key=lambda p: p[0])
    every = np.concatenate([s for _, s in samples]) if samples else np.zeros(0)
    # as expert_report figures them: numpy's mean of the samples in connection order
    ack_rtt = None if not len(every) else {"samples": len(every), "min": float(every.min()),
                                           "avg": float(every.mean()), "max": float(every.max())}
    with _collector_paused():
        rows = list(_by_id(answers, ids))
    return {"flags": flags, "ack_rtt": ack_rtt, "connections": rows, "verdicts": verdicts}


def diagnoses(answers: list[BucketAnswer], conn: int | None = None) -> tuple[dict[str, int], list[tuple]]:
    """``diagnose``'s verdict counts and its ``(Diagnosis, client, server)`` items by id (only
    connection ``conn``'s when given)."""
    ids = archive_ids(answers)
    verdicts: dict[str, int] = {}

    def relabelled(a: BucketAnswer, gid: np.ndarray):
        for g, client, server in a.rows:
            yield replace(g, id=int(gid[g.id])), client, server

    for a in answers:
        _add(verdicts, a.extra["verdicts"])
    items = heapq.merge(*(relabelled(a, g) for a, g in zip(answers, ids, strict=True)), key=lambda r: r[0].id)
    return verdicts, [r for r in items if conn is None or r[0].id == conn]


def segments(answers: list[BucketAnswer], fmt: str, conn: int | None = None):
    """``export --format jsonl|csv``'s lines (or CSV rows), in frame order."""
    ids = archive_ids(answers)

    def relabelled(a: BucketAnswer, gid: np.ndarray):
        for frame, cid, item in a.rows:
            g = int(gid[cid])
            if conn is not None and g != conn:
                continue
            if fmt == "jsonl":
                yield frame, relabel_line(item, g)
            else:
                row = list(item)
                row[2] = g
                yield frame, row

    for _frame, item in heapq.merge(*(relabelled(a, g) for a, g in zip(answers, ids, strict=True)),
                                    key=lambda r: r[0]):
        yield item


def connections(answers: list[BucketAnswer]) -> int:
    """How many connections the archive holds."""
    return sum(len(a.firsts) for a in answers)
