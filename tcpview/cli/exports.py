"""``tcpview export`` (segments as JSONL or CSV, the frames as pcap, the ladders as Mermaid,
PlantUML or SVG) and ``tcpview stream`` (what a connection carried, as Wireshark's Follow
TCP Stream shows it).

Both choose connections with ``--conn N`` or ``--filter EXPR`` (the table's filter language,
as of the end of the capture). An output file is never overwritten without ``--force``, and
is written beside its place first, so a failure leaves what was there.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

from .errors import UsageError
from .offline import _finish, _load
from .options import add_timers

FORMATS = ("jsonl", "csv", "pcap", "mermaid", "plantuml", "svg")


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conn", type=int, metavar="ID", help="only this connection (ids from summary)")
    p.add_argument("--filter", metavar="EXPR", help="only connections the table's filter passes, e.g. "
                   "'port:443 analysis:retransmission' (as of the end of the capture)")


def add_export(sub) -> None:  # type: ignore[no-untyped-def]
    """``tcpview export``."""
    e = sub.add_parser("export", help="export segments (jsonl, csv), frames (pcap) or ladders "
                       "(mermaid, plantuml, svg)")
    e.add_argument("source")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    _add_selection(e)
    e.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    e.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_timers(e)


def add_stream(sub) -> None:  # type: ignore[no-untyped-def]
    """``tcpview stream``."""
    s = sub.add_parser("stream", help="a connection's payload in order, both directions (Follow TCP Stream)")
    s.add_argument("source", help="pcap/pcapng file")
    s.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    s.add_argument("--hex", action="store_true", help="hex dump instead of escaped text")
    s.add_argument("--raw", action="store_true", help="write one direction's bytes exactly (needs --dir)")
    s.add_argument("--dir", choices=("c2s", "s2c"), help="with --raw: the client's or the server's bytes")
    add_timers(s)


def _selected(tl, args: argparse.Namespace) -> list[int]:  # type: ignore[no-untyped-def]
    """Connection ids --conn and --filter choose (all by default)."""
    from ..engine.query import ConnRows

    v = tl.view()
    if args.conn is not None and not tl.conns.has(args.conn):
        n = v.next_id
        raise UsageError(f"no connection {args.conn} (the capture has {n}: 0..{n - 1})" if n else
                         f"no connection {args.conn} (the capture has none)")
    rows = ConnRows()
    if args.filter is not None:
        q = rows.set_query(args.filter)
        if q.errors:
            raise UsageError(f"bad filter {args.filter!r}: {'; '.join(q.errors)}")
    ids = [int(i) for i in rows.compute(tl, None)]
    if args.conn is not None:
        ids = [i for i in ids if i == args.conn]
    return ids


@contextlib.contextmanager
def _output(path: str | None, force: bool, binary: bool) -> Iterator[IO]:
    """Standard output, or ``path`` written in full beside it first, then moved in place."""
    if path is None:
        if binary and sys.stdout.isatty():
            raise UsageError("a pcap to a terminal: give -o FILE or redirect the output")
        yield sys.stdout.buffer if binary else sys.stdout
        return
    if os.path.exists(path) and not force:
        raise UsageError(f"{path} exists (--force overwrites it)")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tcpview-", dir=folder)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


CSV_FIELDS = ("frame", "ts", "conn", "dir", "flags", "seq", "ack", "seq_raw", "ack_raw", "len", "win",
              "client_state", "server_state", "anomalies", "analysis", "ack_rtt", "bytes_in_flight",
              "dup_ack_num", "dup_ack_frame")


def _segments(tl, ids: list[int]) -> Iterator:  # type: ignore[no-untyped-def]
    wanted = set(ids)
    for seg in tl.all_segments_in_frame_order():
        if seg.conn in wanted:
            yield seg


def cmd_export(args: argparse.Namespace) -> int:
    """``tcpview export``."""
    res = _load(args)
    tl = res.timeline
    ids = _selected(tl, args)
    fmt = args.format
    if fmt == "pcap":
        from ..sources.extract import write_frames

        frames = [s.frame for s in _segments(tl, ids)]
        with _output(args.output, args.force, binary=True) as out:
            write_frames(args.source, frames, out)
        return _finish(res)
    with _output(args.output, args.force, binary=False) as out:
        if fmt == "jsonl":
            for seg in _segments(tl, ids):
                out.write(seg.model_dump_json() + "\n")
        elif fmt == "csv":
            w = csv.writer(out, lineterminator="\n")
            w.writerow(CSV_FIELDS)
            for seg in _segments(tl, ids):
                d = seg.model_dump()
                w.writerow(["" if d[k] is None else " ".join(d[k]) if isinstance(d[k], list) else d[k]
                            for k in CSV_FIELDS])
        elif fmt == "mermaid":
            from ..engine.diagram import mermaid

            out.write(mermaid(tl, ids))
        elif fmt == "plantuml":
            from ..engine.diagram import plantuml

            out.write(plantuml(tl, ids))
        else:
            out.write(_svg(tl, ids, args.source))
    return _finish(res)


_KIND_COLOURS = {"syn": "#7fb069", "fin": "#e6aa68", "rst": "#d17e92", "data": "#6fa8dc", "ack": "#9a9a9a"}


def _svg(tl, ids: list[int], source: str) -> str:  # type: ignore[no-untyped-def]
    """The ladders as tcpview prints them, coloured by segment kind, as an SVG (Rich)."""
    from rich.console import Console
    from rich.text import Text

    from ..engine.ladder import ladder_rows, render_text

    console = Console(record=True, width=120, file=io.StringIO(), color_system="truecolor")
    for cid in ids:
        lines = render_text(tl, cid, width=120).splitlines()
        rows = ladder_rows(tl, cid)
        console.print(Text(lines[0], style="bold"))
        console.print(Text(lines[1], style="dim"))
        for line, row in zip(lines[2:], rows, strict=False):
            f = row.flags
            kind = ("rst" if f & 0x04 else "syn" if f & 0x02 else "fin" if f & 0x01 else
                    "data" if "len=" in row.label else "ack")
            console.print(Text(line, style=_KIND_COLOURS[kind] if row.seg >= 0 else "italic"))
        console.print()
    return console.export_svg(title=f"tcpview {os.path.basename(source)}")


def cmd_stream(args: argparse.Namespace) -> int:
    """``tcpview stream``."""
    from ..engine.follow import follow_connection, stream_lines
    from ..textutil import safe

    if args.source == "-":
        raise UsageError("stream needs a capture file (the payload is read from it again), not -")
    if args.raw and args.dir is None:
        raise UsageError("--raw needs --dir c2s or --dir s2c")
    if args.dir is not None and not args.raw:
        raise UsageError("--dir goes with --raw")
    res = _load(args)
    tl = res.timeline
    if not tl.conns.has(args.conn):
        n = tl.view().next_id
        raise UsageError(f"no connection {args.conn} (the capture has {n}: 0..{n - 1})" if n else
                         f"no connection {args.conn} (the capture has none)")
    f = follow_connection(tl, args.conn, args.source)
    c = tl.conns[args.conn]
    first_dir = 0 if f.node_of(0) == 0 else 1
    if args.raw:
        node = f.node_of(0 if args.dir == "c2s" else 1)
        out = sys.stdout.buffer
        for chunk in f.chunks:
            if chunk.node == node:
                out.write(chunk.data)
        out.flush()
        return _finish(res)
    ends = (c.client_text(), c.server_text())
    names = (f"{ends[first_dir]} → {ends[1 - first_dir]}", f"{ends[1 - first_dir]} → {ends[first_dir]}")
    w = sys.stdout.write
    w(f"#{c.id}  {safe(ends[0])} <-> {safe(ends[1])}\n")
    for _kind, line in stream_lines(f, names, args.hex):
        w(line + "\n")
    total = [len(f.stream(k)) for k in (0, 1)]
    w(f"{names[0]}: {total[0]} bytes; {names[1]}: {total[1]} bytes\n")
    return _finish(res)


def add_graph(sub) -> None:  # type: ignore[no-untyped-def]
    """``tcpview graph``."""
    from ..engine.graphs import KINDS

    g = sub.add_parser("graph", help="draw a connection's time-sequence, throughput, RTT or window graph")
    g.add_argument("source", help="pcap/pcapng file, or - for a stream on stdin")
    g.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    g.add_argument("--kind", choices=KINDS, default="tseq",
                   help="tseq (Stevens), tcptrace (segments as bars, ACK and window lines), throughput, rtt, window")
    g.add_argument("--dir", choices=("c2s", "s2c"), help="the data direction of a time-sequence graph "
                   "(default: the one that sent more)")
    g.add_argument("--format", choices=("text", "svg"), default="text")
    g.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    g.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_timers(g)


def cmd_graph(args: argparse.Namespace) -> int:
    """``tcpview graph``: the graph as braille text in the terminal's size, or an SVG."""
    import shutil

    from ..engine import graphs

    res = _load(args)
    tl = res.timeline
    if not tl.conns.has(args.conn):
        n = tl.view().next_id
        raise UsageError(f"no connection {args.conn} (the capture has {n}: 0..{n - 1})" if n else
                         f"no connection {args.conn} (the capture has none)")
    direction = None if args.dir is None else (0 if args.dir == "c2s" else 1)
    g = graphs.build(tl, args.conn, args.kind, direction)
    with _output(args.output, args.force, binary=False) as out:
        if args.format == "svg":
            out.write(graphs.svg(g))
        else:
            size = shutil.get_terminal_size((100, 30))
            out.write(graphs.text(g, size.columns, size.lines - 1) + "\n")
    return _finish(res)
