"""Sub-commands for this host: ``tcpview live`` (capture) and ``tcpview sockets`` (kernel table),
and the headless ``tcpview summary -i IFACE --duration S``.

Every user error (no privileges, unknown interface, bad filter, existing output file) is a
:class:`tcpview.cli.UsageError`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from .argtypes import positive_float, positive_int

Handler = Callable[[argparse.Namespace], int]


def add_commands(sub, commands: dict[str, Handler]) -> None:  # type: ignore[no-untyped-def]
    """Add ``live`` and ``sockets`` to the ``tcpview`` parser."""
    from .cli import _add_timers

    p = sub.add_parser("live", help="capture on an interface and watch TCP live (needs capture privileges)",
                       description="Capture on an interface (default: the one holding the default route) "
                       "and show every connection's states as packets arrive.",
                       epilog="In the viewer, i captures on another interface (same filter; the timeline "
                       "starts over; saving with -w goes on into the same file), K puts the kernel's own "
                       "state of this host's sockets beside the captured states and D lists the "
                       "connections where they differ. The status line counts packets captured, "
                       "dropped by the kernel, skipped by the decoder and saved. Loopback "
                       "packets are counted once. Without capture privileges, `tcpview sockets` shows "
                       "the kernel's table alone.")
    p.add_argument("-i", "--interface", metavar="IFACE", help="interface to capture on, or 'any' "
                   "(default: the interface of the default route, else lo)")
    p.add_argument("-f", "--filter", metavar="BPF", help="capture filter, tcpdump syntax, applied in the kernel")
    p.add_argument("-w", "--write", metavar="FILE", help="also save what is captured to this pcap file")
    p.add_argument("--force", action="store_true", help="let -w overwrite an existing file")
    p.add_argument("-s", "--snaplen", type=positive_int, metavar="BYTES",
                   help="bytes kept per packet (default: 512, headers only; 262144 with -w)")
    p.add_argument("-B", "--buffer", type=positive_int, default=32, metavar="MiB",
                   help="kernel capture ring size (default 32 MiB)")
    p.add_argument("expression", nargs="*", help="capture filter words, as for tcpdump (instead of -f)")
    _add_timers(p)
    commands["live"] = cmd_live

    s = sub.add_parser("sockets", help="this host's TCP sockets from the kernel (no privileges needed)",
                       description="The kernel's TCP socket table (/proc/net/tcp and tcp6, what ss reads) "
                       "as connections with client and server states, refreshed every second.",
                       epilog="A socket is one endpoint. Two sockets of this host talking to each other "
                       "are one connection; a peer on another host shows as UNKNOWN (? in the table), a "
                       "local peer without a socket as CLOSED. The server is the end whose port a "
                       "listening socket holds; failing that, the end whose peer listens is the client; "
                       "failing that, the end with the ephemeral port (ip_local_port_range), else the "
                       "higher port, is the client. Counters count sockets per state, as ss -tan does.")
    s.add_argument("--once", action="store_true", help="print the table once and exit")
    s.add_argument("--json", action="store_true", help="with --once: print JSON")
    s.add_argument("--interval", type=positive_float, default=1.0, metavar="S", help="refresh period (default 1 s)")
    commands["sockets"] = cmd_sockets
    try:
        from .ui_cli import add_app_options
    except ModuleNotFoundError:  # a build without the UI: live/sockets then say so when run
        return
    add_app_options(p)
    add_app_options(s)


def _filter_of(args: argparse.Namespace) -> str | None:
    words = getattr(args, "expression", None) or []
    if args.filter and words:
        from .cli import UsageError

        raise UsageError("give the capture filter either with -f or as words after the options, not both")
    return args.filter or (" ".join(words) if words else None)


def open_live(args: argparse.Namespace, write: bool = True):  # type: ignore[no-untyped-def]
    """Open the capture the arguments ask for; user errors become UsageError."""
    from .cli import UsageError
    from .sources.live import SAVE_SNAPLEN, LiveError, LiveSource

    try:
        return LiveSource(
            interface=args.interface,
            bpf=_filter_of(args),
            write=getattr(args, "write", None) if write else None,
            force=getattr(args, "force", False),
            snaplen=getattr(args, "snaplen", None) or (SAVE_SNAPLEN if getattr(args, "write", None) else None),
            buffer_mb=getattr(args, "buffer", 32),
        )
    except LiveError as e:
        raise UsageError(str(e)) from None


def _run_app():  # type: ignore[no-untyped-def]
    from .cli import UsageError

    try:
        from .ui_cli import require_terminal, run_app
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("tcpview"):
            raise UsageError("the terminal UI is not available in this build; "
                             "use `tcpview summary -i IFACE --duration S`") from None
        raise
    require_terminal()  # before -w creates its file
    return run_app


def cmd_live(args: argparse.Namespace) -> int:
    """``tcpview live``: capture and show it in the terminal UI."""
    import os

    from .cli import UsageError
    from .sources.live import LiveError

    source = open_live(args, write=False)  # first: a missing privilege is the first thing to tell
    sources = [source]  # the viewer's key i adds one per interface switched to
    try:
        if args.write and not args.force and os.path.lexists(args.write):
            raise UsageError(f"{args.write}: file exists (use --force to overwrite it)")
        run_app = _run_app()
        try:  # the viewer plus the kernel's view (key K) and the interface picker (key i)
            from functools import partial

            from .ui.kernel_view import run_live_app

            run_app = partial(run_live_app, on_switch=sources.append)
        except ImportError:
            pass
        if args.write:
            try:
                source.save_to(args.write, args.force)
            except LiveError as e:
                raise UsageError(str(e)) from None
        return _call_app(run_app, source, args)
    finally:
        for s in sources:
            s.close()
        # saving moves with a switch: the file is the newest source's that has one
        sink = next((s.sink for s in reversed(sources) if s.sink is not None), None)
        if sink is not None:
            print(f"tcpview: saved {sink.count} packets to {sink.path}", file=sys.stderr)
        dropped = sum(s.status().get("dropped", 0) for s in sources)
        if dropped:
            print(f"tcpview: the kernel dropped {dropped} packets (capture ring full)", file=sys.stderr)
        for error in dict.fromkeys(s.error for s in sources if s.error):
            print(f"tcpview: error: {error}", file=sys.stderr)


def _call_app(run_app, source, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Call ``run_app(source)`` passing the timers when it accepts them."""
    import inspect

    params = inspect.signature(run_app).parameters
    any_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kw = {k: getattr(args, k) for k in ("msl2", "fin_timeout", "theme")
          if (k in params or any_kw) and hasattr(args, k)}
    rc = run_app(source, **kw)
    return int(rc or 0)


def live_summary(args: argparse.Namespace) -> int:
    """``tcpview summary -i IFACE [-f BPF] --duration S [--json]``: capture, then summarize.

    Without ``--duration`` it captures until Ctrl-C. The summary is the one printed for a
    file; how many packets the kernel dropped goes to stderr.
    """
    from .cli import UsageError, print_summary
    from .sources.live import CaptureThread
    from .tracker import Tracker

    if args.source:
        raise UsageError("give either a SOURCE file or -i IFACE, not both")
    if args.at is not None:
        raise UsageError("--at is for files; a live summary is as of the end of the capture")
    source = open_live(args)
    tracker = Tracker(msl2=args.msl2, fin_timeout=args.fin_timeout)
    cap = CaptureThread(source, tracker).start()
    # like tcpdump's "listening on": from here on, packets are caught
    how_long = f"for {args.duration:g} s" if args.duration is not None else "until Ctrl-C"
    what = source.interface + (f" ({source.bpf})" if source.bpf else "")
    print(f"tcpview: capturing on {what} {how_long}", file=sys.stderr, flush=True)
    interrupted = False
    try:
        if args.duration is not None:
            cap.stop_event.wait(args.duration)
        else:
            while not cap.stop_event.wait(1.0):
                pass
    except KeyboardInterrupt:
        interrupted = True
    finally:
        cap.stop()
        tracker.advance(time.time())  # let TIME_WAITs that ended during the capture end
        source.close()
    print_summary(tracker.tl, source.name, args.json)
    st = source.status()
    print(f"tcpview: {source.name}: {st['captured']} packets captured, {st['dropped']} dropped by the kernel"
          + (" (interrupted)" if interrupted else ""), file=sys.stderr)
    return 0


def print_kernel_summary(snap, as_json: bool, out=None) -> None:  # type: ignore[no-untyped-def]
    """Print a kernel snapshot in the shape of ``tcpview summary`` (JSON or a table)."""
    out = out or sys.stdout
    s = snap.summary()
    if as_json:
        out.write(s.model_dump_json(indent=1) + "\n")
        return
    nsock = len(snap.sockets)
    out.write(f"kernel: {nsock} TCP sockets, {len(s.connections)} connections\n")
    nz = {k: v for k, v in s.counters.items() if v}
    out.write("sockets: " + (", ".join(f"{k} {v}" for k, v in nz.items()) or "none") + "\n")
    out.write(f"TIME_WAIT {s.counters['TIME_WAIT']}  CLOSE_WAIT {s.counters['CLOSE_WAIT']}\n\n")
    rows = [("id", "client", "server", "client state", "server state", "notes")]
    for c in s.connections:
        rows.append((str(c.id), _ep(c.client.ip, c.client.port), _ep(c.server.ip, c.server.port),
                     c.client.state, c.server.state, ",".join(c.notes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i == 0 else r[i].ljust(widths[i]) for i in range(len(r))]
        out.write("  ".join(cells).rstrip() + "\n")


def _ep(ip: str, port: int) -> str:
    if ip == "*":
        return "*:*"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def cmd_sockets(args: argparse.Namespace) -> int:
    """``tcpview sockets``: the kernel's TCP table, once or refreshed in the terminal UI."""
    from .sockets import snapshot

    if args.once:
        print_kernel_summary(snapshot(), args.json)
        return 0
    if args.json:
        from .cli import UsageError

        raise UsageError("--json needs --once")
    if not sys.stdout.isatty():
        from .cli import UsageError

        raise UsageError("sockets: the live table needs a terminal; use --once (with --json) for a one-shot print")
    from .ui.sockets_app import run_sockets_app

    return run_sockets_app(args.interval, theme=getattr(args, "theme", None))
