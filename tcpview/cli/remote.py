"""``--remote``: ``tcpview live`` and ``tcpview summary`` capturing on other hosts over ssh
(:class:`~tcpview.sources.live.remote_merge.RemoteCapture`)."""

from __future__ import annotations

import argparse
import shlex

from ..textutil import plural
from .errors import UsageError


def check_remote(args: argparse.Namespace) -> None:
    """Refuse what does not go with ``--remote`` (before anything starts), and ssh options
    without ``--remote``.

    Raises:
        UsageError: ``-w``, ``--ring``, ``--kernel`` or a SOURCE with ``--remote``; an ssh option
            that is not KEY=VALUE; a tcpdump command that is not shell words.
    """
    if not args.remote:
        if args.ssh_option or args.remote_tcpdump != "tcpdump":
            raise UsageError("--ssh-option and --remote-tcpdump go with --remote HOST")
        return
    if getattr(args, "write", None) or getattr(args, "ring", None) or getattr(args, "ring_size", None):
        raise UsageError("-w saves this host's capture; with --remote, run tcpview on the host, or save "
                         "from the viewer (export)")
    if getattr(args, "kernel", False):
        raise UsageError("--kernel reads this host's kernel: it does not go with --remote")
    if getattr(args, "source", None):
        raise UsageError("give either a SOURCE file or --remote HOST, not both")
    for opt in args.ssh_option:
        key, eq, _value = opt.partition("=")
        if not eq or not key or not key.replace("_", "").isalnum():
            raise UsageError(f"--ssh-option {opt}: not an ssh option KEY=VALUE (as ssh -o takes it)")
    try:
        args.tcpdump_words = shlex.split(args.remote_tcpdump)
    except ValueError as e:
        raise UsageError(f"--remote-tcpdump {args.remote_tcpdump}: {e}") from None
    if not args.tcpdump_words:
        raise UsageError("--remote-tcpdump: empty command")


def open_remote(args: argparse.Namespace, bpf: str | None):
    """Start the capture on every ``--remote`` host (after :func:`check_remote`).

    Raises:
        LiveError: a bad host spec, or a host that did not start capturing (one line each).
    """
    from ..sources.live.remote import BUFFER_MB, parse_remote
    from ..sources.live.remote_merge import RemoteCapture
    from ..sources.live.ring import DEFAULT_SNAPLEN

    specs = [parse_remote(text) for text in args.remote]
    return RemoteCapture(specs, iface=args.interface, bpf=bpf, snaplen=getattr(args, "snaplen", None) or DEFAULT_SNAPLEN,
                         options=args.ssh_option, tcpdump=args.tcpdump_words, buffer_mb=getattr(args, "buffer", BUFFER_MB))


def host_lines(source) -> list[str]:
    """Each host's last words for stderr: what it captured and dropped, and how it ended."""
    out = []
    for h in source.hosts():
        dropped = "drops unknown" if h["dropped"] is None else f"{h['dropped']} dropped by its kernel"
        line = f"{h['host']}: {plural(h['captured'], 'packet')} captured, {dropped}"
        out.append(line + (f"; {h['problem']}" if h["problem"] else ""))
    return out


def add_hosts(summary: dict, tl, source) -> None:
    """The JSON summary of a remote capture: ``"hosts"`` (each host's figures and state) and,
    for each connection, ``"host"``: the host its first packet was captured on."""
    from ..engine.output.writers import first_capture

    summary["hosts"] = source.hosts()
    for c in summary["connections"]:
        c["host"] = first_capture(tl, c["id"])
