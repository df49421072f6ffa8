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
import os
import sys
from collections.abc import Iterator
from typing import IO

from ..textutil import plural
from .cluster import cmd_cluster, wants_cluster
from .errors import UsageError
from .offline import _finish, _load, frames_of
from .options import add_cluster, add_sources, add_timers

# the engine's names (tcpview.engine.output.writers.FORMATS, tcpview.engine.analysis.graphs.KINDS), spelled
# here so that building the parser imports no engine (numpy, numba) for commands that need none
FORMATS = ("jsonl", "csv", "pcap", "mermaid", "plantuml", "svg")
GRAPH_KINDS = ("tseq", "tcptrace", "throughput", "rtt", "window", "cwnd", "srtt", "owd")


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conn", type=int, metavar="ID", help="only this connection (ids from summary)")
    p.add_argument("--filter", metavar="EXPR", help="only connections the table's filter passes, e.g. "
                   "'port:443 analysis:retransmission' (as of the end of the capture)")


def add_export(sub) -> None:
    """``tcpview export``."""
    e = sub.add_parser("export", help="export segments (jsonl, csv), frames (pcap) or ladders "
                       "(mermaid, plantuml, svg)")
    add_sources(e, "pcap/pcapng file, or - for a stream on stdin")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    _add_selection(e)
    e.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    e.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_timers(e)
    add_cluster(e)


def add_stream(sub) -> None:
    """``tcpview stream``."""
    s = sub.add_parser("stream", help="a connection's payload in order, both directions (Follow TCP Stream)")
    add_sources(s, "pcap/pcapng file")
    s.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    s.add_argument("--hex", action="store_true", help="hex dump instead of escaped text")
    s.add_argument("--raw", action="store_true", help="write one direction's bytes exactly (needs --dir)")
    s.add_argument("--dir", choices=("c2s", "s2c"), help="with --raw: the client's or the server's bytes")
    add_timers(s)


def _need_conn(tl, cid: int) -> None:
    """A connection id that does not exist is the user's error."""
    if not tl.conns.has(cid):
        n = tl.view().next_id
        raise UsageError(f"no connection {cid} (the capture has {n}: 0..{n - 1})" if n else
                         f"no connection {cid} (the capture has none)")


def _selected(tl, args: argparse.Namespace) -> list[int]:
    """Connection ids --conn and --filter choose (all by default)."""
    from ..engine.analysis.query import ConnRows

    if args.conn is not None:
        _need_conn(tl, args.conn)
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
    from ..engine.output.writers import new_file

    if path is None:
        if binary and sys.stdout.isatty():
            raise UsageError("a pcap to a terminal: give -o FILE or redirect the output")
        yield sys.stdout.buffer if binary else sys.stdout
        return
    with new_file(path, force, binary) as f:
        yield f


def cmd_export(args: argparse.Namespace) -> int:
    """``tcpview export``."""
    from ..engine.output.writers import write_pcap, write_text

    if wants_cluster(args):
        return cmd_cluster(args, "export")
    res = _load(args)
    tl = res.timeline
    ids = _selected(tl, args)
    if args.format == "pcap":
        with _output(args.output, args.force, binary=True) as out:
            write_pcap(tl, ids, frames_of(args, tl), out)
    elif args.format == "svg":
        from ..ui.ladder_svg import ladder_svg

        with _output(args.output, args.force, binary=False) as out:
            out.write(ladder_svg(tl, ids, f"tcpview {os.path.basename(args.source)}"))
    else:
        with _output(args.output, args.force, binary=False) as out:
            write_text(tl, ids, args.format, out, args.source)
    return _finish(res)


def cmd_stream(args: argparse.Namespace) -> int:
    """``tcpview stream``."""
    from ..engine.analysis.follow import follow_connection, stream_lines
    from ..textutil import safe

    if args.source == "-":
        raise UsageError("stream needs a capture file (the payload is read from it again), not -")
    if args.raw and args.dir is None:
        raise UsageError("--raw needs --dir c2s or --dir s2c")
    if args.dir is not None and not args.raw:
        raise UsageError("--dir goes with --raw")
    res = _load(args)
    tl = res.timeline
    _need_conn(tl, args.conn)
    f = follow_connection(tl, args.conn, frames_of(args, tl))
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
    w(f"{names[0]}: {plural(total[0], 'byte')}; {names[1]}: {plural(total[1], 'byte')}\n")
    return _finish(res)


def add_graph(sub) -> None:
    """``tcpview graph``."""
    g = sub.add_parser("graph", help="draw a connection's time-sequence, throughput, RTT or window graph")
    add_sources(g, "pcap/pcapng file, or - for a stream on stdin")
    g.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    g.add_argument("--kind", choices=GRAPH_KINDS, default="tseq",
                   help="tseq (Stevens), tcptrace (segments as bars, ACK and window lines), throughput, rtt, window; "
                   "from the kernel's events a file of live --kernel -w holds: cwnd (and ssthresh), srtt; "
                   "from two captures of the same connections (client's and server's side): owd, the one-way delay")
    g.add_argument("--dir", choices=("c2s", "s2c"), help="the data direction of a time-sequence graph "
                   "(default: the one that sent more)")
    g.add_argument("--format", choices=("text", "svg"), default="text")
    g.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    g.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_timers(g)


def _kernel_graph(tl, args: argparse.Namespace):
    """The ``cwnd`` or ``srtt`` graph from the kernel's events the file holds.

    Raises:
        UsageError: the file holds none, or none of this connection's endpoints.
    """
    from ..engine.analysis.kernel_graphs import build_kernel

    if tl.kernel is None:
        raise UsageError(f"{args.source} holds no kernel events: --kind {args.kind} needs a pcapng saved by "
                         "tcpview live (or summary -i) with --kernel -w")
    g = build_kernel(tl, args.conn, args.kind, tl.kernel)
    if g is None:
        raise UsageError(f"connection {args.conn}: the kernel's events in {args.source} say nothing of its "
                         f"endpoints (--kind {args.kind} needs tcp_probe events of a socket of the capturing host)")
    return g


def cmd_graph(args: argparse.Namespace) -> int:
    """``tcpview graph``: the graph as braille text in the terminal's size, or an SVG."""
    import shutil

    from ..engine.analysis import graphs

    res = _load(args)
    tl = res.timeline
    _need_conn(tl, args.conn)
    direction = None if args.dir is None else (0 if args.dir == "c2s" else 1)
    if args.kind in ("cwnd", "srtt"):
        g = _kernel_graph(tl, args)
    elif args.kind == "owd":
        from ..engine.analysis.vantage import build_owd

        g = build_owd(tl, args.conn)
        if g is None:
            raise UsageError(f"connection {args.conn}: --kind owd needs two captures that both saw it "
                             "(the client's side and the server's), given together")
    else:
        g = graphs.build(tl, args.conn, args.kind, direction, frames=None if args.source == "-" else frames_of(args, tl))
    with _output(args.output, args.force, binary=False) as out:
        if args.format == "svg":
            out.write(graphs.svg(g))
        else:
            size = shutil.get_terminal_size((100, 30))
            out.write(graphs.text(g, size.columns, size.lines - 1) + "\n")
    return _finish(res)
