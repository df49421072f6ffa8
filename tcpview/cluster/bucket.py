"""Stage 3 of a cluster run: one bucket's frames from every file through the engine's tracker.

The bucket's pieces (one per file) are put in the order of the merged archive (each frame's
``frame`` field is already its place there) and read by the same :class:`~tcpview.engine.pump.Pump`
as a single file (plain Python for a small bucket, compiled for a large one). Capture time
then passes to the archive's last segment, so the timers a single read would have fired by
its end fire here too (a bucket's own last segment may come earlier). The bucket answers the
command for its connections with its own ids (0, 1, ... in its order of first packet) and
the archive's frame numbers; :mod:`.merge` gives the connections their ids in the archive.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..engine.pump import Pump
from ..engine.timeline.conn_columns import ConnColumns
from ..engine.timeline.timeline import Timeline
from ..engine.timeline.tracker import Tracker
from ..records import Records
from ..sources.batch import FRAME, FrameBatch
from .partition import Piece, SharedPiece, piece_frames, piece_size

COMMANDS = ("summary", "summary-json", "expert", "diagnose", "jsonl", "csv")
"""What a bucket can answer: ``summary``'s connections (as dicts, or as ``summary --json``'s
text), ``expert``'s, ``diagnose``'s and ``export --format jsonl|csv``'s."""

ROW_START = b'  {\n   "id": '
"""How each connection of ``summary --json`` starts (``json.dumps(..., indent=1)``'s layout)."""

_BATCH = 65536


@dataclass
class JsonRows:
    """The connections as ``summary --json`` writes them: one text, and each row's id and
    where the row's text after its id starts and ends (a few objects to hand on, not one per
    connection)."""

    ids: np.ndarray
    text: bytes
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class BucketAnswer:
    """One bucket's answer, with the bucket's connection ids (its rows).

    ``firsts[i]``: the archive's frame number of connection i's first segment (its id in the
    archive is its rank among every bucket's). ``head``: the timeline's totals (packets,
    skipped, times, counters, evicted). ``rows``: the command's per-connection items (for
    ``jsonl``/``csv``: per segment, ``(frame, connection, line or row)``). ``extra``: what
    the command sums over connections."""

    firsts: np.ndarray
    head: dict
    rows: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    cpu: float = 0.0
    """CPU seconds the worker's thread spent on the bucket."""
    json: JsonRows | None = None
    """``summary-json``'s rows."""
    columns: ConnColumns | None = None
    """``summary``'s connections, column by column (a few lists, where a dict per connection
    took the tracker 1.4 s more to make and hand over for 200,000 connections)."""


class _MergedSource:
    """The bucket's frames as a source the pump reads, in batches."""

    def __init__(self, batch: FrameBatch) -> None:
        self.batch = batch
        self.error: str | None = None

    def batches(self, stop: threading.Event):
        n = len(self.batch)
        for i in range(0, n, _BATCH):
            yield FrameBatch(self.batch.buf, self.batch.frames[i:i + _BATCH])

    def expected_frames(self) -> int:
        return len(self.batch)

    def progress(self) -> float | None:
        return None


def merge_pieces(pieces: list[Piece], offsets: list[int] | None = None) -> FrameBatch:
    """One batch of every piece's frames, by their ``frame`` field plus the piece's offset
    (their places in the archive). The pieces are read (or copied) once, each into its place
    in one buffer made for all of them: fresh memory is dear (a bucket is hundreds of MB), so
    none is made twice."""
    kept = [(p, o) for p, o in zip(pieces, offsets or [0] * len(pieces), strict=True) if piece_frames(p)]
    rows = np.empty(sum(piece_frames(p) for p, _o in kept), dtype=FRAME)
    buf = np.empty(sum(piece_size(p) for p, _o in kept), dtype=np.uint8)
    r0 = b0 = 0
    for p, o in kept:
        r1, b1 = r0 + piece_frames(p), b0 + piece_size(p)
        if isinstance(p, SharedPiece):
            _read_into(p.frames_path, rows[r0:r1].view(np.uint8))
            _read_into(p.buf_path, buf[b0:b1])
        else:
            rows[r0:r1] = p.frames
            buf[b0:b1] = p.buf
        rows["off"][r0:r1] += b0
        rows["frame"][r0:r1] += o
        r0, b0 = r1, b1
    frames = rows[np.argsort(rows["frame"], kind="stable")]
    # read-only, as every reader's buffer is: the compiled loop is typed (and cached) for
    # read-only bytes; a writable buffer made each worker compile another loop (12 s of CPU)
    # on a new install's first cluster run
    buf.flags.writeable = False
    return FrameBatch(buf, frames.view(Records))


def _read_into(path: str, out: np.ndarray) -> None:
    """The file ``path``, exactly ``out``'s size, read into ``out``."""
    view = out.data.cast("B")
    with open(path, "rb", buffering=0) as f:
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                raise OSError(f"{path}: {len(view) - got} bytes short")
            got += n


def track(pieces: list[Piece], last_tcp: float | None, msl2: float, fin_timeout: float,
          offsets: list[int] | None = None) -> Tracker:
    """The tracker after the bucket's frames (see :func:`merge_pieces`), capture time passed
    to ``last_tcp`` (the archive's latest segment time)."""
    tracker = Tracker(msl2=msl2, fin_timeout=fin_timeout)
    merged = merge_pieces(pieces, offsets)
    tracker.tl.tables.expect_segments(len(merged) + 1)
    pump = Pump(_MergedSource(merged), tracker, keep_frames=False, pause_seconds=0.0,
                batch_seconds=float("inf"), warm=True, wait_compiled=False)
    pump.run(threading.Event())
    if pump.error:
        raise RuntimeError(pump.error)
    if last_tcp is not None:
        tracker.advance(last_tcp)
    return tracker


def first_frames(tl: Timeline) -> np.ndarray:
    """The frame number of each connection's first segment, by row."""
    v = tl.view()
    n = v.n_seg
    conn = np.asarray(v.segs.conn[:n], dtype=np.int64)
    first = np.full(v.n_conn, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, conn, np.asarray(v.segs.frame[:n], dtype=np.int64))
    return first


def head(tl: Timeline) -> dict:
    """The totals of a summary's head (what merges by sums, minimum and maximum)."""
    return {"packets": tl.packets, "tcp_packets": tl.tcp_packets, "fragments": tl.fragments,
            "skipped": dict(tl.skipped),
            "first_ts": tl.first_ts, "last_ts": tl.last_ts, "counters": tl.counters_at(None), "evicted": tl.evicted}


_CONN = re.compile(r'"conn":(\d+)')


def answer(pieces: list[Piece], last_tcp: float | None, command: str, msl2: float = 60.0,
           fin_timeout: float = 60.0, offsets: list[int] | None = None) -> BucketAnswer:
    """Track the bucket (one piece per file, each piece's frame numbers plus its offset are
    their places in the archive) and answer ``command`` (one of :data:`COMMANDS`) for its
    connections."""
    import time

    cpu = time.thread_time()
    tl = track(pieces, last_tcp, msl2, fin_timeout, offsets).tl
    out = BucketAnswer(first_frames(tl), head(tl))
    if command == "summary":
        out.columns = tl.connection_columns(None)
    elif command == "summary-json":
        out.json = json_rows(tl)
    elif command == "expert":
        from ..engine.analysis.expert_report import expert_report

        samples: list[tuple[int, np.ndarray]] = []
        report = expert_report(tl, samples)
        out.rows = report["connections"]
        out.extra = {"flags": report["flags"], "verdicts": report["verdicts"], "samples": samples}
    elif command == "diagnose":
        from ..engine.analysis.diagnosis import diagnose

        d = diagnose(tl)
        rows: list[Any] = []
        for r in range(len(d)):
            g = d.of(r)
            c = tl.conns[g.id]
            rows.append((replace(g), c.client_text(), c.server_text()))
        out.rows = rows
        out.extra = {"verdicts": d.counts()}
    elif command in ("jsonl", "csv"):
        from ..engine.output.writers import CSV_FIELDS

        ids = list(range(tl.view().next_id))
        for seg in _segments(tl, ids):
            if command == "jsonl":
                out.rows.append((seg.frame, seg.conn, seg.model_dump_json()))
            else:
                d = seg.model_dump()
                out.rows.append((seg.frame, seg.conn, ["" if d[k] is None else " ".join(d[k])
                                                       if isinstance(d[k], list) else d[k] for k in CSV_FIELDS]))
    else:
        raise ValueError(f"not a command a bucket answers: {command}")
    out.cpu = time.thread_time() - cpu
    return out


_SEP = b",\n" + ROW_START


def json_rows(tl: Timeline) -> JsonRows:
    """The connections as ``summary --json`` writes them (the engine's compiled writer)."""
    from ..engine.output.json_rows import RowsWriter
    from ..engine.timeline.conn_columns import conn_array_chunks

    w = RowsWriter()
    text = b"".join(bytes(w.rows(part)) for part in conn_array_chunks(tl, None) if len(part))
    ids, starts, ends = [], [], []
    if text:
        assert text.startswith(ROW_START)
        at = len(ROW_START)
        for row in text[at:].split(_SEP):
            cut = row.index(b",")
            ids.append(int(row[:cut]))
            starts.append(at + cut)
            ends.append(at + len(row))
            at += len(row) + len(_SEP)
    return JsonRows(np.array(ids, dtype=np.int64), text, np.array(starts, dtype=np.int64),
                    np.array(ends, dtype=np.int64))


def _segments(tl: Timeline, ids: list[int]):
    from ..engine.output.writers import segments_of

    return segments_of(tl, ids)


def relabel_line(line: str, cid: int) -> str:
    """A segment's JSON line with its connection id ``cid`` (the first ``"conn":N`` in it:
    the model's fields come in a fixed order, ``frame``, ``ts``, ``conn`` first)."""
    return _CONN.sub(f'"conn":{cid}', line, count=1)
