"""``tcpview diagnose``: why each connection was slow, as a time breakdown, a verdict and the
evidence (:mod:`tcpview.engine.analysis.diagnosis`), for a capture file or a live capture.

Like the other headless commands it never imports Textual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..textutil import plural, safe
from .cluster import cmd_cluster, wants_cluster
from .errors import UsageError
from .options import add_capture, add_cluster, add_sources, add_timers, nonnegative_float
from .report import write_diagnosis, write_json_list


def add_diagnose(sub) -> None:
    """``tcpview diagnose``."""
    p = sub.add_parser("diagnose", help="say why each connection was slow: its time split into what held it "
                       "back, a verdict, and the frames that show it")
    add_sources(p, "pcap/pcapng file, or - for a stream on stdin", optional=True)
    p.add_argument("--conn", type=int, metavar="ID", help="only this connection, with every episode of its verdict")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_capture(p, "capture live on IFACE instead of reading a file",
                "with -i: capture filter, tcpdump syntax, applied in the kernel")
    p.add_argument("--duration", type=nonnegative_float, metavar="S", help="with -i: capture for S seconds")
    add_timers(p)
    add_cluster(p)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """``tcpview diagnose``: read (or capture), then print each connection's diagnosis."""
    if wants_cluster(args):
        return cmd_cluster(args, "diagnose")
    if args.interface is not None or args.duration is not None:
        from ..kernel.chrono import ChronoWatch
        from .live import live_summary

        watch = ChronoWatch()

        def report(tl, source: str, as_json: bool) -> None:
            print_diagnoses(tl, source, as_json, args.conn, kernel=watch.ends)

        # what the live summary reads of a summary's options; the chrono counters come from
        # the socket table (sock_diag, no privileges), not from --kernel's tracepoints
        args.at, args.memory = None, None
        return live_summary(args, report, chrono=watch)
    if not args.source:
        raise UsageError("diagnose needs a SOURCE (file or -) or -i IFACE --duration S")
    from .offline import _finish, _load

    res = _load(args)
    if args.conn is not None and not res.timeline.conns.has(args.conn):
        n = res.timeline.view().next_id
        raise UsageError(f"no connection {args.conn} (the capture has {n}: 0..{n - 1})" if n
                         else f"no connection {args.conn} (the capture has none)")
    print_diagnoses(res.timeline, args.source, args.json, args.conn)
    return _finish(res)


def print_diagnoses(tl, source: str, as_json: bool, conn: int | None = None, out=None,
                    kernel: Callable[[int], dict] | None = None) -> None:
    """Print every connection's diagnosis (or connection ``conn``'s), as JSON or as text.

    ``kernel``: connection id -> the chrono counters read of its ends on this host (a live
    capture's, :meth:`tcpview.kernel.chrono.ChronoWatch.ends`), shown beside each diagnosis.
    """
    from ..engine.analysis.diagnosis import diagnose
    from ..engine.analysis.kernel_check import beside_kernel

    out = out or sys.stdout
    d = diagnose(tl)
    v = tl.view()
    rows = range(len(d)) if conn is None else [v.row_of(conn)]
    # one connection at a time, written as it is made: 300,000 connections' evidence held
    # together, and then as one JSON text, took 4 GB
    diags = (d.of(r) for r in rows)
    if kernel is not None:
        diags = (beside_kernel(g, kernel(g.id)) for g in diags)
    if as_json:
        write_json_list(out, {"source": source, "verdicts": d.counts()}, "connections",
                        (g.as_dict() for g in diags), ascii_only=False)
        return
    counts = {k: n for k, n in d.counts().items() if n}
    out.write(f"{safe(source)}: {plural(len(d), 'connection')}" + (": " if counts else "")
              + ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) + "\n")
    for g in diags:
        c = tl.conns[g.id]
        write_diagnosis(out, g, c.client_text(), c.server_text(), every=conn is not None)
