"""Command line: ``tcpview [demo|replay|live|summary|ladder|export|simulate|sockets|serve]``.

Every failure the user can cause (missing file, not a capture, bad option, no privileges)
ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .argtypes import nonnegative_float
from .model import STATE_NAMES, Summary

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _add_timers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--msl2", type=nonnegative_float, default=60.0, metavar="S",
                   help="TIME_WAIT duration, 2*MSL (default 60 s, as Linux)")
    p.add_argument("--fin-timeout", type=nonnegative_float, default=60.0, metavar="S",
                   help="orphaned FIN_WAIT_2 lifetime (default 60 s, as Linux)")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    p = _Parser(prog="tcpview", description="See what TCP is doing: both endpoints' states, "
                "a ladder of every segment, and the TIME_WAIT / CLOSE_WAIT counters.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"tcpview {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("summary", help="print the connection table and counters of a capture")
    s.add_argument("source", nargs="?", help="pcap/pcapng file, or - for a stream on stdin")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--at", type=nonnegative_float, metavar="SECONDS", help="as of SECONDS after the first packet")
    s.add_argument("-i", "--interface", help="capture live on IFACE instead of reading a file")
    s.add_argument("-f", "--filter", help="BPF capture filter (live)")
    s.add_argument("--duration", type=nonnegative_float, help="live capture duration in seconds")
    _add_timers(s)

    l_ = sub.add_parser("ladder", help="print one connection's ladder diagram")
    l_.add_argument("source")
    l_.add_argument("--conn", type=int, required=True, metavar="ID", help="connection id (from summary)")
    l_.add_argument("--format", choices=("text", "json"), default="text")
    l_.add_argument("--absolute", action="store_true", help="raw sequence numbers")
    l_.add_argument("--at", type=nonnegative_float, metavar="SECONDS")
    _add_timers(l_)

    e = sub.add_parser("export", help="export every TCP segment")
    e.add_argument("source")
    e.add_argument("--format", choices=("jsonl",), default="jsonl")
    _add_timers(e)

    from . import cli_more

    cli_more.add_commands(sub)
    return p


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .loader import load

    res = load(args.source, msl2=args.msl2, fin_timeout=args.fin_timeout)
    if res.error and res.timeline.packets == 0:
        raise UsageError(res.error)
    return res


def cmd_summary(args: argparse.Namespace) -> int:
    """``tcpview summary``."""
    if args.interface is not None or args.duration is not None:
        from . import cli_more

        return cli_more.live_summary(args)
    if not args.source:
        raise UsageError("summary needs a SOURCE (file or -) or -i IFACE --duration S")
    res = _load(args)
    if args.at is not None and res.timeline.first_ts is not None:
        # capture time passes to the cursor even after the last packet: timers still fire
        res.tracker.advance(res.timeline.first_ts + args.at)
    print_summary(res.timeline, args.source, args.json, args.at)
    if res.error:
        print(f"tcpview: error: {res.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def summary_dict(tl, source: str, at: float | None = None) -> dict:  # type: ignore[no-untyped-def]
    """The summary as plain data in the shape of :class:`tcpview.model.Summary`.

    ``at`` is seconds after the first packet (the end of the capture when None).
    """
    t = None
    if at is not None and tl.first_ts is not None:
        t = tl.first_ts + at
    return {
        "source": source,
        "packets": tl.packets,
        "tcp_packets": tl.tcp_packets,
        "skipped": dict(sorted(tl.skipped.items())),
        "first_ts": tl.first_ts,
        "last_ts": tl.last_ts,
        "at": at,
        "counters": tl.counters_at(t),
        "connections": tl.connection_dicts(t),
    }


def summary_model(tl, source: str, at: float | None = None) -> Summary:  # type: ignore[no-untyped-def]
    """The summary as a validated pydantic model (see :func:`summary_dict`)."""
    return Summary.model_validate(summary_dict(tl, source, at))


def print_summary(tl, source: str, as_json: bool, at: float | None = None, out=None) -> None:  # type: ignore[no-untyped-def]
    """Print the summary as JSON or as a readable table."""
    out = out or sys.stdout
    s = summary_dict(tl, source, at)
    if as_json:
        out.write(json.dumps(s, indent=1) + "\n")
        return
    from .textutil import safe

    first, last = s["first_ts"], s["last_ts"]
    dur = (last - first) if first is not None and last is not None else 0.0
    conns = s["connections"]
    counters = s["counters"]
    out.write(f"{safe(source)}: {s['packets']} packets, {s['tcp_packets']} TCP, "
              f"{len(conns)} connections, {dur:.6f} s\n")
    if s["skipped"]:
        out.write("skipped: " + ", ".join(f"{k} {v}" for k, v in s["skipped"].items()) + "\n")
    nz = {k: v for k, v in counters.items() if v}
    out.write("endpoints: " + (", ".join(f"{k} {v}" for k, v in nz.items()) or "none") + "\n")
    out.write(f"TIME_WAIT {counters['TIME_WAIT']}  CLOSE_WAIT {counters['CLOSE_WAIT']}\n\n")
    rows = [("id", "client", "server", "client state", "server state", "pkts", "bytes", "notes")]
    for c in conns:
        cl, sv = c["client"], c["server"]
        rows.append((str(c["id"]), _ep(cl), _ep(sv), cl["state"], sv["state"], str(c["packets"]),
                     str(c["bytes"]), ",".join(c["notes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 5, 6}
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))]
        out.write("  ".join(cells).rstrip() + "\n")


def _ep(e: dict) -> str:
    ip = e["ip"]
    return f"[{ip}]:{e['port']}" if ":" in ip else f"{ip}:{e['port']}"


def cmd_ladder(args: argparse.Namespace) -> int:
    """``tcpview ladder``."""
    res = _load(args)
    tl = res.timeline
    if not 0 <= args.conn < len(tl.conns):
        raise UsageError(f"no connection {args.conn} (the capture has {len(tl.conns)}: 0..{len(tl.conns) - 1})")
    t = tl.first_ts + args.at if args.at is not None and tl.first_ts is not None else None
    if args.format == "json":
        conn = tl.connection(args.conn, t)
        data = {
            "connection": conn.model_dump(),
            "segments": [s.model_dump() for s in tl.segments(args.conn, t)],
            "transitions": [tr.model_dump() for tr in tl.transitions(args.conn, t)],
        }
        if args.absolute:
            for s in data["segments"]:
                s["seq"], s["ack"] = s["seq_raw"], s["ack_raw"]
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        from .ladder import render_text

        sys.stdout.write(render_text(tl, args.conn, t, args.absolute) + "\n")
    if res.error:
        print(f"tcpview: error: {res.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``tcpview export --format jsonl``: one JSON object per segment, in frame order."""
    res = _load(args)
    w = sys.stdout.write
    for seg in res.timeline.all_segments_in_frame_order():
        w(seg.model_dump_json() + "\n")
    if res.error:
        print(f"tcpview: error: {res.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


COMMANDS.update(summary=cmd_summary, ladder=cmd_ladder, export=cmd_export)


def main(argv: Sequence[str] | None = None) -> int:
    """Run tcpview; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if not argv:
            argv = ["demo"]
        args = parser.parse_args(argv)
        if args.command is None:
            args = parser.parse_args(["demo", *argv])
        from . import cli_more

        handler = COMMANDS.get(args.command) or cli_more.COMMANDS[args.command]
        return handler(args)
    except UsageError as e:
        print(f"tcpview: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return 0  # noqa: B012


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()

_ = STATE_NAMES
