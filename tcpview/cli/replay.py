"""``tcpview replay FILE|- [--follow]``: a capture in the interactive viewer.

Problems the user can fix (no such file, not a capture, no terminal for the keys) are found
here, before the UI starts: one line on stderr, exit status 2 (stdin being a terminal, for
every command's ``-``, in :mod:`tcpview.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import UsageError
from .options import (
    add_app_options,
    add_memory,
    add_sources,
    add_timers,
    app_options,
    default_memory,
    nonnegative_float,
    play_speed,
)


def add_replay(sub) -> None:
    """``tcpview replay``."""
    p = sub.add_parser("replay", help="open a capture in the interactive viewer (play, pause, step, seek)")
    add_sources(p, "pcap/pcapng file, or - for a stream on stdin (tcpdump -U -w - | tcpview replay -)")
    p.add_argument("--follow", action="store_true", help="keep reading a file that is still being written")
    p.add_argument("--at", type=nonnegative_float, metavar="SECONDS", help="start with the cursor SECONDS after the first packet")
    p.add_argument("--speed", type=play_speed, metavar="X",
                   help="playback speed: capture seconds per second, e.g. 0.25 or 10, or max (default 1; "
                   "+ and - change it in the app)")
    add_timers(p)
    add_memory(p, unbounded_default=True)
    add_app_options(p)


def _stdin_source():
    """A source reading the capture piped into stdin, with the keyboard moved to /dev/tty.

    Textual reads keys from file descriptor 0, so the pipe is moved to another descriptor
    and the controlling terminal is opened on 0.
    """
    from ..apart import terminal
    from ..sources.base import open_source

    tty = terminal()  # (a command in a session of its own has it from its keeper: tcpview.apart)
    try:
        if tty is None:
            tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        raise UsageError("replay -: needs a terminal (/dev/tty) for the keyboard while the capture comes on stdin") from None
    data_fd = os.dup(0)
    os.dup2(tty, 0)
    os.close(tty)
    return open_source("-", fd=data_fd)  # the source reads the pipe, Textual the terminal


def replay_source(args: argparse.Namespace) -> tuple[object, dict]:
    """The source ``tcpview replay`` shows and the options of its app. A file is checked
    here, before the UI starts: a problem is one line, exit 2."""
    from ..sources.base import open_source
    from ..sources.kblocks import holds_kernel_events
    from .options import capture_args

    capture_args(args)  # (done already when the command line came through main: nothing left to do)
    paths = getattr(args, "sources", None) or [args.source]
    if len(paths) > 1:
        if args.follow:
            raise UsageError("--follow reads one file as it is written, not several")
        from ..engine.pump import join_source

        joined: object = join_source(paths, args.offsets, args.msl2, args.fin_timeout, warm=True,
                             say=lambda text: print(f"tcpview: {text}", file=sys.stderr, flush=True),
                             join=not args.no_join)
        from .spans import far_apart_hint

        return joined, dict(app_options(args), at=args.at, speed=args.speed, read_hint=far_apart_hint)
    source = _stdin_source() if args.source == "-" else open_source(args.source, follow=args.follow)
    opts = app_options(args)
    if args.memory is None and (args.source == "-" or args.follow):
        opts["memory"] = default_memory()  # a stream may never end
    # a pcapng of live --kernel -w: K and D compare with its kernel events
    kernel = args.source != "-" and holds_kernel_events(args.source)
    return source, dict(opts, at=args.at, speed=args.speed, **({"kernel_file": True} if kernel else {}))


def cmd_replay(args: argparse.Namespace) -> int:
    """``tcpview replay FILE|- [--follow]``."""
    source, opts = replay_source(args)
    from ..ui.run import run_app

    return run_app(source, **opts)
