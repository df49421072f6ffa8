"""The headless commands that read a capture and print: ``summary``, ``ladder``, ``export``.

None of them imports Textual: they run where there is no terminal, in scripts and pipes.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..textutil import plural
from .cluster import cmd_cluster, wants_cluster
from .errors import EXIT_USAGE, UsageError
from .kernel_events import add_kernel_states
from .options import (
    add_capture,
    add_cluster,
    add_memory,
    add_remote,
    add_save,
    add_sources,
    add_timers,
    default_memory,
    nonnegative_float,
)
from .report import print_summary


def add_summary(sub) -> None:
    """``tcpview summary``."""
    s = sub.add_parser("summary", help="print the connection table and counters of a capture")
    add_sources(s, "pcap/pcapng file, or - for a stream on stdin", optional=True)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--at", type=nonnegative_float, metavar="SECONDS", help="as of SECONDS after the first packet")
    add_capture(s, "capture live on IFACE instead of reading a file",
                "with -i: capture filter, tcpdump syntax, applied in the kernel")
    s.add_argument("--duration", type=nonnegative_float, metavar="S",
                   help="with -i or --remote: capture for S seconds")
    s.add_argument("--kernel", action="store_true",
                   help="with -i: also read the kernel's own TCP events (tracefs, root): each connection gets "
                   "\"kernel\", the states its endpoints on this host went through; without -i: those events "
                   "alone, no capture")
    add_save(s)
    add_remote(s)
    add_timers(s)
    add_memory(s, unbounded_default=True)
    add_cluster(s)


def add_ladder(sub) -> None:
    """``tcpview ladder``."""
    p = sub.add_parser("ladder", help="print one connection's ladder diagram")
    add_sources(p, "pcap/pcapng file")
    p.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--absolute", action="store_true", help="raw sequence numbers")
    p.add_argument("--at", type=nonnegative_float, metavar="SECONDS")
    add_timers(p)


def add_expert(sub) -> None:
    """``tcpview expert``."""
    e = sub.add_parser("expert", help="count Wireshark's TCP analysis flags and the RTTs, per connection")
    add_sources(e, "pcap/pcapng file, or - for a stream on stdin")
    e.add_argument("--json", action="store_true", help="print JSON")
    add_timers(e)
    add_cluster(e)


def cmd_expert(args: argparse.Namespace) -> int:
    """``tcpview expert``: like ``tshark -q -z expert``, for TCP, with the RTTs."""
    from ..engine.analysis.expert_report import expert_report
    from .report import print_expert

    if wants_cluster(args):
        return cmd_cluster(args, "expert")
    res = _load(args)
    print_expert(expert_report(res.timeline), args.source, args.json)
    return _finish(res)


def _load(args: argparse.Namespace, until: float | None = None):
    """Read the command's capture. A small one is read as plain Python (no compiler, no numba:
    at once), a large one compiled; on the first run after install the compile starts in the
    background and a large capture is read as plain Python until it is done (said on stderr)."""
    from ..engine.pump import load

    budget = getattr(args, "memory", None)
    if budget is None and args.source == "-" and hasattr(args, "memory"):
        budget = default_memory()  # a stream may never end
    paths = getattr(args, "sources", None) or [args.source]
    offsets = args.offsets if len(paths) > 1 else None
    res = load(paths if len(paths) > 1 else paths[0], offsets=offsets, join=not getattr(args, "no_join", False),
               msl2=args.msl2, fin_timeout=args.fin_timeout, budget=budget, until=until, warm=True,
               say=lambda text: print(f"tcpview: {text}", file=sys.stderr, flush=True))
    if res.error and res.timeline.packets == 0:
        raise UsageError(res.error)
    if len(paths) > 1:
        from .spans import far_apart_hint

        hint = far_apart_hint(res.timeline)
        if hint:
            print(f"tcpview: {hint}", file=sys.stderr, flush=True)
    return res


def frames_of(args: argparse.Namespace, tl):
    """Where a command reads frames again: the capture file, or several captures' map."""
    return tl.captures if tl.captures is not None else args.source


def _finish(res) -> int:
    """Exit status after printing what was read: damage part-way is reported last."""
    if res.error:
        print(f"tcpview: error: {res.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """``tcpview summary``."""
    if wants_cluster(args):
        return cmd_cluster(args, "summary")
    if args.interface is not None or args.duration is not None or args.kernel or args.remote:
        from .live import live_summary

        return live_summary(args)
    if not args.source:
        raise UsageError("summary needs a SOURCE (file or -) or -i IFACE --duration S")
    if args.write or args.ring is not None or args.ring_size is not None:
        raise UsageError("-w, --ring and --ring-size save a live capture: they go with -i IFACE")
    res = _load(args)
    whole = None
    tl = res.timeline
    if args.at is not None and tl.horizon is not None and tl.first_ts + args.at < tl.horizon:
        # the budget let the part at the cursor go: read the capture again, only up to it
        if args.source == "-":
            raise UsageError(f"--at {args.at:g}: the memory budget kept only what came after "
                             f"{tl.horizon - tl.first_ts:.6f} s of the stream; give a larger --memory")
        whole = tl
        res = _load(args, until=args.at)
    if args.at is not None and res.timeline.first_ts is not None:
        # capture time passes to the cursor even after the last packet: timers still fire
        res.tracker.advance(res.timeline.first_ts + args.at)
    log = res.timeline.kernel  # a pcapng of live --kernel -w: the kernel's events, as live gave them
    until = res.timeline.first_ts + args.at if args.at is not None and res.timeline.first_ts is not None else None
    print_summary(res.timeline, args.source, args.json, args.at, totals=whole,
                  kernel=None if log is None else (lambda s: add_kernel_states(s, log, until)))
    if res.dropped:
        print(f"tcpview: the capture dropped {plural(res.dropped, 'packet')}, as its statistics say: "
              "some connections may look half-open or unfinished that were not", file=sys.stderr)
    return _finish(res)


def cmd_ladder(args: argparse.Namespace) -> int:
    """``tcpview ladder``."""
    res = _load(args)
    tl = res.timeline
    if not tl.conns.has(args.conn):
        n = tl.view().next_id
        raise UsageError(f"no connection {args.conn} (the capture has {n}: 0..{n - 1})")
    t = tl.first_ts + args.at if args.at is not None and tl.first_ts is not None else None
    if args.format == "json":
        from ..engine.output.writers import with_capture

        conn = tl.connection(args.conn, t)
        data = {
            "connection": conn.model_dump(),
            "segments": [with_capture(tl, s.model_dump()) for s in tl.segments(args.conn, t)],
            "transitions": [tr.model_dump() for tr in tl.transitions(args.conn, t)],
        }
        if tl.kernel is not None:  # a pcapng of live --kernel -w: its endpoints' states, as summary gives them
            cl, sv = conn.client, conn.server
            states = tl.kernel.for_connection((cl.ip, cl.port), (sv.ip, sv.port), conn.first_ts)
            data["kernel"] = {side: [s for s in got if t is None or s["ts"] <= t] for side, got in states.items()}
        if args.absolute:
            for s in data["segments"]:
                s["seq"], s["ack"] = s["seq_raw"], s["ack_raw"]
        from ..engine.output.outer import outer_by_frame

        outer = outer_by_frame(tl.view(), args.source, [args.conn])
        for s in data["segments"]:
            if s["frame"] in outer:
                s["outer"] = outer[s["frame"]]
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        from ..engine.output.ladder import kernel_rows, render_text

        # a pcapng of live --kernel -w: the kernel's own state changes as rows, as the viewer shows them
        sys.stdout.write(render_text(tl, args.conn, t, args.absolute, kernel=kernel_rows(tl, args.conn)) + "\n")
    return _finish(res)
