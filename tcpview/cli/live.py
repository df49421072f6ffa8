"""Sub-commands for this host: ``tcpview live`` (capture) and ``tcpview sockets`` (kernel table),
and the headless ``tcpview summary -i IFACE --duration S``.

Every user error (no privileges, unknown interface, bad filter, existing output file) is a
:class:`~tcpview.errors.UserError`: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from ..textutil import plural
from .errors import EXIT_USAGE, UsageError
from .kernel_events import (
    add_kernel_states,
    kernel_only_live,
    kernel_only_summary,
    open_feed,
    status_line,
    tie_to_capture,
)
from .options import (
    add_app_options,
    add_capture,
    add_memory,
    add_remote,
    add_save,
    add_timers,
    app_options,
    default_memory,
    positive_float,
    positive_int,
    save_options,
)
from .remote import add_hosts, check_remote, host_lines, open_remote
from .report import kernel_notes, print_kernel_summary, print_summary


def add_live(sub) -> None:
    """``tcpview live``."""
    p = sub.add_parser("live", help="capture on an interface and watch TCP live (root, or the wireshark group)",
                       description="Capture on an interface (default: the one holding the default route) "
                       "and show every connection's states as packets arrive.",
                       epilog="With root (or CAP_NET_RAW) tcpview reads its own packet ring; without, it "
                       "captures through Wireshark's dumpcap when you may run it (Debian: sudo "
                       "dpkg-reconfigure wireshark-common, answer yes, then sudo usermod -aG wireshark $USER "
                       "and log in again). In the viewer, i captures on another interface (same filter; the timeline "
                       "starts over; saving with -w goes on into the same file), K puts the kernel's own "
                       "state of this host's sockets beside the captured states and D lists the "
                       "connections where they differ. The status line names the way of capture (packet "
                       "ring or dumpcap) and counts packets captured, dropped (dumpcap tells its drops "
                       "when it stops: ? until then), skipped by the decoder and saved. Loopback "
                       "packets are counted once. Without capture privileges, `tcpview sockets` shows "
                       "the kernel's table alone. With --remote HOST (repeatable) the capture runs on each "
                       "host over ssh instead (ssh -o BatchMode=yes: keys or an agent, no prompts; the "
                       "host's tcpdump, which needs root there, a user allowed to capture, or "
                       "--remote-tcpdump 'sudo -n tcpdump'), with the same filter; the hosts' streams are "
                       "merged by time (their clocks are taken to agree, as NTP keeps them; a quiet host "
                       "holds the others back by 0.25 s at most), the table gains a host column, the "
                       "status line each host's drops and state, and a host that drops out is told while "
                       "the others go on. The ssh connection that carries a host's capture is left out of "
                       "it.")
    add_capture(p, "interface to capture on, or 'any' (default: the interface of the default route, else lo)",
                "capture filter, tcpdump syntax, applied in the kernel")
    add_save(p)
    p.add_argument("-s", "--snaplen", type=positive_int, metavar="BYTES",
                   help="bytes kept per packet (default: 512, headers only; 262144 with -w)")
    p.add_argument("-B", "--buffer", type=positive_int, default=32, metavar="MiB",
                   help="capture buffer in the kernel: the packet ring's size, or dumpcap's -B, or each "
                        "--remote host's tcpdump -B (default 32 MiB)")
    p.add_argument("expression", nargs="*", help="capture filter words, as for tcpdump (instead of -f)")
    p.add_argument("--kernel", action="store_true",
                   help="also read the kernel's own TCP events (tracefs tracepoints, root): the ladder shows "
                   "the states the kernel set on this host's endpoints, K and D compare them with the "
                   "inferred ones, the graph pane adds cwnd and srtt; without -i (and no filter): every "
                   "TCP socket of the host from those events alone, in the sockets view, no capture")
    add_remote(p)
    add_timers(p)
    add_memory(p, unbounded_default=False)
    add_app_options(p)


def add_sockets(sub) -> None:
    """``tcpview sockets``."""
    s = sub.add_parser("sockets", help="this host's TCP sockets from the kernel (no privileges needed)",
                       description="The kernel's TCP socket table (a sock_diag netlink dump, as ss asks it; "
                       "/proc/net/tcp where netlink cannot be asked) as connections with client and server "
                       "states, the process holding each socket and its tcp_info, refreshed every second.",
                       epilog="A socket is one endpoint. Two sockets of this host talking to each other "
                       "are one connection; a peer on another host shows as UNKNOWN, a local peer "
                       "without a socket as CLOSED, a listener's missing client as NONE. The server is the "
                       "end whose port a listening socket holds; failing that, the end whose peer listens is "
                       "the client; failing that, the end with the ephemeral port (ip_local_port_range), else "
                       "the higher port, is the client. Counters count sockets per state, as ss -tan does. "
                       "The table also shows the process holding each socket (command and pid, found as "
                       "ss -p finds it; other users' processes only with root), its RTT and congestion "
                       "window, Recv-Q, Send-Q and timer, as ss -tinpo does; Enter shows a connection's "
                       "every field and its whole tcp_info as ss -ti writes it. Filters: state:, port:, "
                       "proc:nginx, pid:1234, user:www-data, an address or a word. --json gives each end "
                       "its \"process\" {pid, comm, user} and \"info\" (tcp_info: times in µs, rates in "
                       "bytes/s).")
    s.add_argument("--once", action="store_true", help="print the table once and exit")
    s.add_argument("--json", action="store_true", help="with --once: print JSON")
    s.add_argument("--interval", type=positive_float, default=1.0, metavar="S", help="refresh period (default 1 s)")
    add_app_options(s)


def _filter_of(args: argparse.Namespace) -> str | None:
    words = getattr(args, "expression", None) or []
    if args.filter and words:
        raise UsageError("give the capture filter either with -f or as words after the options, not both")
    return args.filter or (" ".join(words) if words else None)


def open_live(args: argparse.Namespace, write: bool = True):
    """Open the capture the arguments ask for: the packet ring with root or CAP_NET_RAW, else
    through dumpcap (:func:`~tcpview.sources.live.choose.open_capture`).

    Raises:
        LiveError: no privileges, no such interface, a bad filter (one line).
    """
    from ..sources.live.choose import open_capture
    from ..sources.live.ring import SAVE_SNAPLEN

    if getattr(args, "remote", None):
        return open_remote(args, _filter_of(args))
    ring_size, ring_files = save_options(args)
    return open_capture(
        interface=args.interface,
        bpf=_filter_of(args),
        write=getattr(args, "write", None) if write else None,
        force=getattr(args, "force", False),
        snaplen=getattr(args, "snaplen", None) or (SAVE_SNAPLEN if getattr(args, "write", None) else None),
        buffer_mb=getattr(args, "buffer", 32),
        ring_size=ring_size,
        ring_files=ring_files,
    )


def cmd_live(args: argparse.Namespace) -> int:
    """``tcpview live``: capture and show it in the terminal UI."""
    from ..ui.run import require_terminal, run_app

    check_remote(args)
    if args.kernel and args.interface is None and not _filter_of(args) and not args.write:
        return kernel_only_live(args)  # no capture: the tracepoints alone
    source = open_live(args, write=False)  # first: a missing privilege is the first thing to tell
    sources = [source]  # the viewer's key i adds one per interface switched to
    feed = None
    try:
        if args.kernel:
            feed = open_feed(args.msl2, start=False)
        ring_size, ring_files = save_options(args)
        if args.write and ring_size is None and not args.force and os.path.lexists(args.write):
            raise UsageError(f"{args.write}: file exists (use --force to overwrite it)")
        require_terminal()  # before -w creates its file
        if args.write:  # with --kernel a pcapng, which keeps the kernel's events too
            source.save_to(args.write, args.force, ring_size, ring_files, kernel=feed is not None)
        if feed is not None:
            tie_to_capture(source, feed)
            feed.start()
        # the viewer plus the kernel's view (key K) and the interface picker (key i)
        opts = app_options(args)
        opts.setdefault("memory", default_memory())
        if feed is not None:
            opts["kernel"] = feed.log
        return run_app(source, live=True, on_switch=sources.append, **opts)
    finally:
        if feed is not None:  # first: its last events go into the file -w writes
            feed.stop()
            print(f"tcpview: {status_line(feed)}", file=sys.stderr)
        for s in sources:
            s.close()
        # saving moves with a switch: the file is the newest source's that has one
        sink = next((s.sink for s in reversed(sources) if s.sink is not None), None)
        if sink is not None:
            print(f"tcpview: {sink.saved()}", file=sys.stderr)
        for s in sources:
            line = _drops_line(s)
            if line:
                print(f"tcpview: {line}", file=sys.stderr)
            for line in host_lines(s) if s.method == "ssh" else ():
                print(f"tcpview: {line}", file=sys.stderr)
        for error in dict.fromkeys(s.error for s in sources if s.error):
            print(f"tcpview: error: {error}", file=sys.stderr)


def live_summary(args: argparse.Namespace, report: Callable[..., None] | None = None, chrono=None) -> int:
    """``tcpview summary -i IFACE [-f BPF] --duration S [--json]``: capture, then summarize.

    Without ``--duration`` it captures until Ctrl-C. The summary is the one printed for a
    file (``report(timeline, source name, as_json)`` prints another instead: ``tcpview
    diagnose -i``); how many packets the kernel dropped goes to stderr. ``chrono``: a
    :class:`~tcpview.kernel.chrono.ChronoWatch` to keep up to date during the capture (the
    socket table read every :data:`CHRONO_PERIOD`, the counters vanish with their sockets).
    """
    kernel = getattr(args, "kernel", False)  # diagnose -i has no --kernel
    if hasattr(args, "remote"):  # diagnose -i has no --remote
        check_remote(args)
    if kernel and args.interface is None:
        return kernel_only_summary(args)
    if args.source:
        raise UsageError("give either a SOURCE file or -i IFACE, not both")
    if args.at is not None:
        raise UsageError("--at is for files; a live summary is as of the end of the capture")
    # first: a missing privilege is the first thing to tell (with --kernel, -w writes a
    # pcapng, which keeps the kernel's events too)
    source = open_live(args, write=not kernel)
    from ..engine.pump import PumpThread
    from ..engine.timeline.tracker import Tracker
    from ..engine.warm import VIEW_GROUPS, ready

    try:
        if kernel and args.write:
            ring_size, ring_files = save_options(args)
            source.save_to(args.write, args.force, ring_size, ring_files, kernel=True)
        # the compiled kernels (a first run compiles them), the kernel events' decoder too
        # with --kernel, before anything is read
        ready(say=lambda text: print(f"tcpview: {text}", file=sys.stderr, flush=True),
              groups=(*VIEW_GROUPS, "kernel") if kernel else VIEW_GROUPS)
        feed = open_feed(args.msl2, start=False) if kernel else None
        if feed is not None:
            tie_to_capture(source, feed)
            feed.start()
    except BaseException:
        source.close()
        raise
    tracker = Tracker(msl2=args.msl2, fin_timeout=args.fin_timeout)
    tracker.tl.budget = args.memory or default_memory()
    watch = _ProcessLooker(tracker.tl)  # before the line: a Ctrl-C after it finds the capture set up
    sampler = _ChronoLooker(tracker.tl, chrono) if chrono is not None else None
    step = 1.0 if sampler is None else CHRONO_PERIOD
    cap = PumpThread(source, tracker).start()
    # like tcpdump's "listening on": from here on, packets are caught
    how_long = f"for {args.duration:g} s" if args.duration is not None else "until Ctrl-C"
    what = source.interface + (f" ({source.bpf})" if source.bpf else "")
    print(f"tcpview: capturing on {what} {how_long}, through {_way(source)}", file=sys.stderr, flush=True)
    interrupted = False
    try:
        end = time.monotonic() + args.duration if args.duration is not None else None
        # once a second, which process holds each connection's sockets here (for the JSON)
        while not cap.wait(step if end is None else max(0.0, min(step, end - time.monotonic()))):
            watch.look()
            if sampler is not None:
                sampler.look()
            if end is not None and time.monotonic() >= end:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finish = getattr(source, "finish", None)
        if finish is not None:  # the last milliseconds' packets are read before the end
            finish()
            try:
                cap.wait(1.0)
            except KeyboardInterrupt:  # a second Ctrl-C: stop at once
                pass
        try:
            cap.stop()
        except RuntimeError:
            pass  # the capture failed part-way: what it read is summarized, then the error
        tracker.advance(time.time())  # let TIME_WAITs that ended during the capture end
        if feed is not None:  # first: its last events go into the file -w writes
            feed.stop()
        source.close()
    watch.look(last=True)
    if sampler is not None:
        sampler.look(last=True)
    if report is not None:
        report(tracker.tl, source.name, args.json)
    elif source.method == "ssh":  # each connection's host, and each host's figures
        print_summary(tracker.tl, source.name, args.json, processes=watch.watch,
                      kernel=lambda s: add_hosts(s, tracker.tl, source))
    else:
        print_summary(tracker.tl, source.name, args.json, processes=watch.watch,
                      kernel=(lambda s: add_kernel_states(s, feed.log)) if feed is not None else None)
    if feed is not None:
        print(f"tcpview: {status_line(feed)}", file=sys.stderr)
    if source.sink is not None:
        print(f"tcpview: {source.sink.saved()}", file=sys.stderr)
    st = source.status()
    by = {"packet ring": "by the kernel", "ssh": "by the hosts' kernels (as their tcpdump says)"}.get(
        source.method, "(as dumpcap says)")
    dropped = f"{st['dropped']} dropped {by}" if "dropped" in st else "drops unknown (dumpcap did not say)"
    print(f"tcpview: {source.name}: {plural(st['captured'], 'packet')} captured through {_way(source)}, {dropped}"
          + (" (interrupted)" if interrupted else ""), file=sys.stderr)
    for line in host_lines(source) if source.method == "ssh" else ():
        print(f"tcpview: {line}", file=sys.stderr)
    if cap.error:
        print(f"tcpview: error: {cap.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


class _ProcessLooker:
    """Looks up, in the kernel's table, the processes holding a live capture's connections
    (:class:`~tcpview.kernel.compare.ProcessWatch`); a table that cannot be read is skipped."""

    def __init__(self, tl) -> None:
        from ..kernel.compare import ProcessWatch

        self.tl = tl
        self.watch = ProcessWatch()
        self._at = self._cost = 0.0

    def look(self, last: bool = False) -> None:
        """Read the table and remember the processes found: when a connection's process is
        still to be found, and at most a fifth of the time (a big table takes a second or
        more to read); ``last``: the capture is over, read it anyway."""
        from ..kernel.snapshot import snapshot

        if not self.watch.pending(self.tl):
            return
        if not last and time.monotonic() - self._at < 5 * self._cost:
            return
        self._at = time.monotonic()
        try:
            self.watch.update(self.tl, snapshot())
        except OSError:
            pass
        self._cost = time.monotonic() - self._at


CHRONO_PERIOD = 0.2
"""Seconds between reads of the socket table for the chrono counters (at most a fifth of the
time goes to reading it: a big table is read less often)."""


class _ChronoLooker:
    """Reads the kernel's table for a :class:`~tcpview.kernel.chrono.ChronoWatch` during a
    live capture; a table that cannot be read is skipped."""

    def __init__(self, tl, chrono) -> None:
        self.tl, self.chrono = tl, chrono
        self._at = self._cost = 0.0

    def look(self, last: bool = False) -> None:
        """Read the table (without the processes: only the counters are wanted) unless the
        last read was too recent for its cost; ``last``: read it anyway."""
        from ..kernel.snapshot import snapshot

        if not last and time.monotonic() - self._at < 5 * self._cost:
            return
        self._at = time.monotonic()
        try:
            self.chrono.update(self.tl, snapshot(owners=False))
        except OSError:
            pass
        self._cost = time.monotonic() - self._at


def _way(source) -> str:
    """How the capture goes, in words: ``tcpview's packet ring`` or ``dumpcap``."""
    return "tcpview's packet ring" if source.method == "packet ring" else source.method


def _drops_line(source) -> str:
    """What a capture lost, for its last words (empty: nothing)."""
    dropped = source.status().get("dropped", 0)
    if not dropped:
        return ""
    if source.method == "packet ring":
        return f"the kernel dropped {plural(dropped, 'packet')} (capture ring full)"
    if source.method == "ssh":
        return f"the hosts' kernels dropped {plural(dropped, 'packet')} (their capture buffers were full)"
    were = "was" if dropped == 1 else "were"
    return f"dumpcap says {plural(dropped, 'packet')} {were} dropped (its capture buffer was full)"


def cmd_sockets(args: argparse.Namespace) -> int:
    """``tcpview sockets``: the kernel's TCP table, once or refreshed in the terminal UI."""
    from ..kernel.snapshot import snapshot

    if args.once:
        snap = snapshot()
        print_kernel_summary(snap, args.json)
        for note in kernel_notes(snap):
            print(f"tcpview: {note}", file=sys.stderr)
        return 0
    if args.json:
        raise UsageError("--json needs --once")
    if not sys.stdout.isatty():
        raise UsageError("sockets: the live table needs a terminal; use --once (with --json) for a one-shot print")
    from ..ui.sockets_app import run_sockets_app

    return run_sockets_app(args.interval, theme=getattr(args, "theme", None))
