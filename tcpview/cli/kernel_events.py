"""``--kernel``: the kernel's own TCP events (tracefs tracepoints) beside a live capture, or alone.

- :func:`open_feed` opens tcpview's trace instance and its reader thread (or says in one
  line what is missing: root, tracefs); :func:`tie_to_capture` keeps only the events of the
  sockets a capture filter is about, and keeps them in the pcapng ``-w`` writes;
- :func:`add_kernel_states` gives each connection of a summary its endpoints' kernel states;
- :func:`terminate_as_exit` makes SIGTERM unwind like Ctrl-C, so the instance is removed by
  the command itself (its watchdog would otherwise do it).
"""

from __future__ import annotations

import signal
import sys
import time

from ..textutil import plural


def terminate_as_exit() -> None:
    """SIGTERM raises ``SystemExit(143)`` in the main thread: ``finally`` blocks run."""
    def _exit(_sig, _frame):
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, _exit)


def open_feed(msl2: float = 60.0, start: bool = True):
    """The :class:`~tcpview.engine.timeline.kernel_feed.KernelFeed`, started unless ``start``
    is False (then the caller starts it, once its ``tap`` is set: ``-w``); a tracepoint this
    kernel lacks is said on stderr (the rest works). With the compiled kernels cached, the
    decoder is loaded first, so the first events are shown as they come.

    Raises:
        PrivilegeError: not root.
        TraceError: no tracefs, or none of the tracepoints.
    """
    from ..engine.timeline.kernel_feed import KernelFeed
    from ..engine.timeline.kernel_log import KernelLog
    from ..engine.warm import cache_is_warm, ready

    terminate_as_exit()
    if cache_is_warm():
        ready(groups=("kernel",))
    feed = KernelFeed(KernelLog(msl2=msl2))
    for ev in feed.missing:
        print(f"tcpview: this kernel has no {ev} tracepoint: {_WHAT.get(ev, 'its events')} are not shown",
              file=sys.stderr)
    return feed.start() if start else feed


def tie_to_capture(source, feed) -> None:
    """``--kernel`` beside a capture: with a capture filter, the feed keeps only the events of
    the sockets whose 4-tuple the filter lets packets of through (the view, the summary and
    the file hold no other service's); with ``-w`` its batches go into the capture's pcapng
    as they come. Before the feed starts."""
    if feed is None:
        return
    if source.bpf:
        from ..sources.live.tuplefilter import TupleFilter
        from ..sources.tracefs.sockselect import SocketSelect

        feed.select = SocketSelect(TupleFilter(source.bpf, source.linktype).accepts)
    if source.sink is not None:
        feed.tap = source.sink.write_kernel


_WHAT = {
    "sock:inet_sock_set_state": "the kernel's state changes",
    "tcp:tcp_probe": "cwnd, ssthresh and srtt",
    "tcp:tcp_retransmit_skb": "retransmissions",
    "tcp:tcp_send_reset": "resets sent",
    "tcp:tcp_receive_reset": "resets received",
    "tcp:tcp_cong_state_set": "congestion state changes",
    "tcp:tcp_destroy_sock": "socket ends",
}


def add_kernel_states(summary: dict, log, until: float | None = None) -> dict:
    """Give each connection of ``summary`` (a :func:`~tcpview.cli.report.summary_dict`)
    ``"kernel": {"client": [{"ts", "state"}], "server": [...]}``, with only the endpoints
    that live on this host (``{}`` for a connection with none); ``until``: only the states
    set by then (a file's summary ``--at``)."""
    for c in summary["connections"]:
        cl, sv = c["client"], c["server"]
        c["kernel"] = log.for_connection((cl["ip"], cl["port"]), (sv["ip"], sv["port"]), c.get("first_ts"))
        if until is not None:
            c["kernel"] = {side: [s for s in states if s["ts"] <= until] for side, states in c["kernel"].items()}
    return summary


def status_line(feed) -> str:
    """What the kernel events came to, for stderr: events read (those of sockets a capture
    filter leaves out apart) and lost."""
    st = feed.status()
    lost = f"{st['lost']} lost (trace buffer full)" if st["lost"] else "none lost"
    other = st.get("left_out", 0)
    kept = f", {other} of sockets outside the capture filter left out" if other else ""
    return f"kernel: {plural(st['events'] + other, 'event')} read{kept}, {lost}"


def kernel_only_summary(args) -> int:
    """``tcpview summary --kernel [--duration S] [--json]``: every TCP socket of this host from
    the tracepoints alone, watched for S seconds (or until Ctrl-C), then printed as
    ``tcpview sockets --once`` prints the socket table."""
    from ..kernel.traced import traced_snapshot
    from .errors import UsageError
    from .report import print_kernel_summary

    if args.source or args.filter or args.write:
        raise UsageError("summary --kernel without -i reads no packets: no SOURCE, -f or -w")
    if args.at is not None:
        raise UsageError("--at is for files; a kernel summary is as of its end")
    feed = open_feed(args.msl2)
    how_long = f"for {args.duration:g} s" if args.duration is not None else "until Ctrl-C"
    print(f"tcpview: reading the kernel's TCP events {how_long}", file=sys.stderr, flush=True)
    interrupted = False
    try:
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
            if feed.error:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        feed.stop()
    print_kernel_summary(traced_snapshot(feed.log), args.json)
    print(f"tcpview: {status_line(feed)}" + (" (interrupted)" if interrupted else ""), file=sys.stderr)
    if feed.error:
        print(f"tcpview: error: {feed.error}", file=sys.stderr)
        return 2
    return 0


def kernel_only_live(args) -> int:
    """``tcpview live --kernel`` without ``-i``: the sockets view fed by the tracepoints."""
    from ..kernel.traced import TracedTable
    from ..ui.run import require_terminal
    from ..ui.sockets_app import run_sockets_app

    require_terminal()
    feed = open_feed(args.msl2)
    try:
        return run_sockets_app(0.5, theme=getattr(args, "theme", None), table=TracedTable(feed.log))
    finally:
        feed.stop()
        print(f"tcpview: {status_line(feed)}", file=sys.stderr)
