"""Sub-commands of the simulator: ``tcpview demo`` and ``tcpview simulate``.

``demo`` opens the UI on a scenario: one that ends (a teaching scenario: the handshake, a
close, a retransmission) is built at once and opens paused at its beginning, so the user
plays or steps through it; an endless one (``busy``) runs paced in real time, live.
``simulate`` writes a scenario's frames to a pcap that tcpview, Wireshark or tshark can read.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import os_problem
from ..textutil import plural
from .errors import UsageError
from .options import (
    add_app_options,
    add_memory,
    add_timers,
    app_options,
    default_memory,
    nonnegative_int,
    positive_float,
    positive_int,
)

DEFAULT_BOUND_SECONDS = 60.0
"""How much of an endless scenario ``simulate`` writes when given no bound."""


def add_demo(sub) -> None:
    """``tcpview demo``."""
    d = sub.add_parser("demo", help="watch a simulated scenario live (the default command)",
                       description="Run a built-in or user scenario in real time and watch it in the UI.")
    d.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    d.add_argument("--scenario", "-s", default=None, metavar="NAME|FILE",
                   help="built-in scenario name or a .toml file (default: busy)")
    d.add_argument("--seed", type=nonnegative_int, default=None, metavar="N",
                   help="random seed (same seed, same frames; default: the scenario's)")
    d.add_argument("--speed", type=positive_float, default=1.0, metavar="X",
                   help="simulated seconds per real second (default 1): the pace of an endless scenario, "
                   "the playback speed of one that ends (which starts paused: space plays, → steps)")
    add_timers(d)
    add_memory(d, unbounded_default=False)
    add_app_options(d)


def add_simulate(sub) -> None:
    """``tcpview simulate``."""
    s = sub.add_parser("simulate", help="write a simulated scenario to a pcap file",
                       description="Run a scenario and write its frames to a pcap (Ethernet) file.")
    s.add_argument("scenario", nargs="?", metavar="NAME|FILE", help="built-in scenario name or a .toml file")
    s.add_argument("-w", "--write", metavar="FILE", help="the pcap file to write (- for standard output)")
    s.add_argument("--seed", type=nonnegative_int, default=None, metavar="N", help="random seed (default: the scenario's)")
    s.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    s.add_argument("--duration", type=positive_float, default=None, metavar="S",
                   help=f"stop after S simulated seconds (endless scenarios: default {DEFAULT_BOUND_SECONDS:g})")
    s.add_argument("--packets", type=positive_int, default=None, metavar="N", help="stop after N frames")
    s.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")


def print_list(out=None) -> None:
    """Print the built-in scenarios, one per line with its description."""
    from ..sim import DEFAULT_SCENARIO, ScenarioError, builtin_names, load_builtin

    out = out or sys.stdout
    names = builtin_names()
    width = max(len(n) for n in names)
    for n in names:
        try:
            desc = (load_builtin(n).description.splitlines() or [""])[0]
        except ScenarioError as e:
            desc = f"(broken: {e})"
        mark = "  (default)" if n == DEFAULT_SCENARIO else ""
        out.write(f"{n.ljust(width)}  {desc}{mark}\n")


def demo_source(args: argparse.Namespace) -> tuple[object, dict]:
    """The source ``tcpview demo`` shows and the options of its app (see :func:`cmd_demo`)."""
    from ..sim import DEFAULT_SCENARIO, SimSource, load

    scen = load(args.scenario or DEFAULT_SCENARIO)
    opts = app_options(args)
    opts.setdefault("memory", default_memory())
    if not scen.finite:
        return SimSource(scen, seed=args.seed, speed=args.speed, paced=True), opts
    # built at once and shown paused at its beginning: a scenario that is over in 0.1 s
    # would otherwise end before the first screen
    source = SimSource(scen, seed=args.seed, paced=False)
    source.name = f"demo {scen.name}"
    opts.update(speed=args.speed, paused_at_start=True)
    return source, opts


def cmd_demo(args: argparse.Namespace) -> int:
    """``tcpview demo``: a scenario in the UI; an endless one paced in real time (live), one
    that ends paused at its beginning."""
    if args.list:
        print_list()
        return 0
    source, opts = demo_source(args)
    from ..ui.run import run_app

    return run_app(source, **opts)


def cmd_simulate(args: argparse.Namespace) -> int:
    """``tcpview simulate NAME|FILE -w out.pcap``."""
    if args.list:
        print_list()
        return 0
    if not args.scenario:
        raise UsageError("simulate needs a scenario (a built-in name or a .toml file; see --list)")
    if not args.write:
        raise UsageError("simulate needs -w FILE (the pcap to write, or - for standard output)")
    from ..sim import load, write_pcap

    if args.write == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write a capture to a terminal; redirect it (-w - > file, or | tcpview summary -)")
    scen = load(args.scenario)
    duration = args.duration
    bounded = duration is not None or args.packets is not None
    if not scen.finite and not bounded:
        duration = DEFAULT_BOUND_SECONDS
    try:
        res = write_pcap(scen, args.write, seed=args.seed, max_packets=args.packets, max_seconds=duration,
                         force=args.force)
    except OSError as e:
        raise UsageError(os_problem(args.write, e, "cannot write")) from None
    note = ""
    if res.truncated and not scen.finite and not bounded:
        note = f" (the scenario runs until stopped: first {duration:g} s; use --duration/--packets)"
    elif res.truncated:
        note = " (cut at the given bound)"
    where = "standard output" if args.write == "-" else args.write
    print(f"tcpview: wrote {plural(res.frames, 'frame')}, {plural(res.connections, 'connection')}, {res.seconds:.3f} s "
          f"of scenario {scen.name} to {where}{note}", file=sys.stderr)
    return 0
