"""Option types and option groups shared by the sub-commands; a bad value is a one-line usage
error."""

from __future__ import annotations

import argparse
import math
import os
import re


def _number(v: str, kind: type, base: int = 10) -> float | int:
    try:
        return int(v, base) if kind is int else float(v)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {v!r}") from None


def positive_int(v: str) -> int:
    """A whole number > 0 (counts, sizes)."""
    n = int(_number(v, int))
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {v}")
    return n


def nonnegative_int(v: str) -> int:
    """A whole number >= 0, also written 0x.. (seeds)."""
    n = int(_number(v, int, 0))
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {v}")
    return n


def positive_float(v: str) -> float:
    """A finite number > 0 (speeds, durations, periods)."""
    f = float(_number(v, float))
    if not f > 0 or math.isinf(f):
        raise argparse.ArgumentTypeError(f"must be a positive number: {v}")
    return f


def play_speed(v: str) -> float:
    """A playback speed: a finite number > 0 (capture seconds per second), or ``max``."""
    if v.strip().lower() == "max":
        return math.inf  # the player's "max": a share of the segments per tick
    try:
        return positive_float(v)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a speed: {v!r} (a number > 0 such as 0.25 or 10, or max)") \
            from None


def nonnegative_float(v: str) -> float:
    """A finite number >= 0 (times from the start, timer lengths)."""
    f = float(_number(v, float))
    if not f >= 0 or math.isinf(f):
        raise argparse.ArgumentTypeError(f"must not be negative: {v}")
    return f


def add_capture(p: argparse.ArgumentParser, interface_help: str, filter_help: str) -> None:
    """``-i IFACE`` and ``-f BPF``: where to capture and the kernel's capture filter, spelled
    the same in every command that captures (``live``, ``summary -i``)."""
    p.add_argument("-i", "--interface", metavar="IFACE", help=interface_help)
    p.add_argument("-f", "--filter", metavar="BPF", help=filter_help)


def add_save(p: argparse.ArgumentParser) -> None:
    """``-w FILE [--force] [--ring N] [--ring-size MB]``: save what a live capture captures."""
    p.add_argument("-w", "--write", metavar="FILE", help="also save what is captured to this pcap file "
                   "(with --kernel a pcapng, which keeps the kernel's events too)")
    p.add_argument("--force", action="store_true", help="let -w overwrite an existing file")
    p.add_argument("--ring-size", type=positive_float, metavar="MB",
                   help="with -w: start a new file whenever one would pass MB megabytes "
                   "(FILE_00001_YYYYmmddHHMMSS.pcap, FILE_00002_..., as dumpcap -b filesize)")
    p.add_argument("--ring", type=positive_int, metavar="N",
                   help="with --ring-size: keep only the newest N files (a ring buffer, as dumpcap -b files)")


def save_options(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``--ring-size`` in bytes and ``--ring``, checked against each other and ``-w``."""
    from .errors import UsageError

    size, files = getattr(args, "ring_size", None), getattr(args, "ring", None)
    if (size is not None or files is not None) and not getattr(args, "write", None):
        raise UsageError("--ring and --ring-size say how to save: they need -w FILE")
    if files is not None and size is None:
        raise UsageError("--ring N needs --ring-size MB (when a file is full, the next one starts)")
    return (max(1, round(size * 1_000_000)) if size is not None else None), files


def add_timers(p: argparse.ArgumentParser) -> None:
    """``--msl2`` and ``--fin-timeout``: every command that tracks states takes them."""
    p.add_argument("--msl2", type=nonnegative_float, default=60.0, metavar="S",
                   help="TIME_WAIT duration, 2*MSL (default 60 s, as Linux)")
    p.add_argument("--fin-timeout", type=nonnegative_float, default=60.0, metavar="S",
                   help="orphaned FIN_WAIT_2 lifetime (default 60 s, as Linux)")


def add_app_options(p: argparse.ArgumentParser) -> None:
    """Options every command that runs the UI takes (replay, demo, live, sockets):
    ``--theme NAME|FILE``, resolved while parsing so a bad one is a one-line usage error."""
    p.add_argument("--theme", type=_theme_arg, metavar="NAME|FILE",
                   help="colour theme: tcpview-dark (default), tcpview-light, tcpview-high-contrast, "
                   "tcpview-colorblind, tcpview-mono, one of yours, or a .toml file "
                   "(default: tcpview-mono when NO_COLOR is set)")


def _theme_arg(value: str):
    from ..ui.themes.catalog import resolve_theme
    from ..ui.themes.spec import ThemeError

    try:
        return resolve_theme(value)
    except ThemeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def app_options(args: argparse.Namespace) -> dict:
    """The options a command passes on to the UI: timers, theme and memory budget (those given)."""
    return {k: getattr(args, k) for k in ("msl2", "fin_timeout", "theme", "memory")
            if getattr(args, k, None) is not None}


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_size(v: str) -> int:
    """A size in bytes: ``512M``, ``2G``, ``64MiB``, ``1048576`` (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(v)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {v!r} (say 512M or 2G)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 1 << 20:
        raise argparse.ArgumentTypeError(f"too small a memory budget: {v} (at least 1M)")
    return n


def default_memory() -> int:
    """The budget live captures and streams get unless told: 1 GiB, or a quarter of the RAM if
    that is less, so a capture left running never takes the host down."""
    from ..sources.drain import total_ram

    return min(1 << 30, total_ram(4 << 30) // 4)


def add_memory(p: argparse.ArgumentParser, unbounded_default: bool) -> None:
    """``--memory SIZE``: the most the timeline may use; beyond it the oldest part leaves."""
    default = "no limit for a file (1 GiB or a quarter of the RAM for a stream)" if unbounded_default \
        else "1 GiB or a quarter of the RAM, whichever is less"
    p.add_argument("--memory", type=memory_size, metavar="SIZE",
                   help=f"the most the timeline may use, e.g. 512M or 2G; beyond it the oldest connections "
                   f"and segments leave it, and that is counted (default: {default})")


def add_sources(p: argparse.ArgumentParser, what: str, optional: bool = False) -> None:
    """The capture(s) a command reads: ``SOURCE...`` (one file or ``-``, or several files
    and quoted globs, merged by time as mergecap merges them) and ``--offset FILE=SECONDS``."""
    p.add_argument("source", nargs="*" if optional else "+", metavar="SOURCE",
                   help=f"{what}; several files (or a quoted glob: a ring's files) are read as one, merged "
                   "by time; two captures of the same connections (client's and server's side) are joined")
    p.add_argument("--offset", action="append", type=_offset, metavar="FILE=SECONDS", default=[],
                   help="with several files: add SECONDS to FILE's time stamps (its clock against the first "
                   "file's) instead of the offset estimated from the traffic")
    p.add_argument("--no-join", action="store_true",
                   help="with several files: merge them by time as they are, even those that hold the same "
                   "connections (as mergecap would: each segment seen at both points is then in twice)")


def _offset(v: str) -> tuple[str, float]:
    name, eq, secs = v.rpartition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"not FILE=SECONDS: {v!r}")
    f = float(_number(secs, float))
    if math.isnan(f) or math.isinf(f):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {secs!r}")
    return name, f


def capture_args(args: argparse.Namespace) -> None:
    """Resolve the captures a command was given: ``args.sources`` (globs expanded, in order),
    ``args.source`` (the one path, or the first and how many more, for what is shown) and
    ``args.offsets`` ({index of a file: seconds} from ``--offset``).

    Raises:
        UsageError: ``-`` among several, or ``--offset`` for a file not given.
    """
    from ..sources.merge import expand
    from .errors import UsageError

    given = getattr(args, "source", None)
    if not isinstance(given, list):
        return
    paths = expand(given)
    if "-" in paths and len(paths) > 1:
        raise UsageError("- reads one stream from standard input: give it alone, not with other captures")
    args.sources = paths
    args.source = (paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)") if paths else None
    args.offsets = {}
    for name, secs in getattr(args, "offset", None) or []:
        hits = [i for i, p in enumerate(paths) if p == name] or \
            [i for i, p in enumerate(paths) if os.path.basename(p) == os.path.basename(name)]
        if len(hits) != 1:
            raise UsageError(f"--offset {name}={secs:g}: {name} is not " +
                             ("one of the captures given" if not hits else "one capture (several have that name)"))
        if hits[0] == 0 and secs:
            raise UsageError(f"--offset {name}: the first capture's clock is the one the others are put on")
        args.offsets[hits[0]] = secs
    if args.offsets and len(paths) < 2:
        raise UsageError("--offset goes with several captures")


def add_remote(p: argparse.ArgumentParser) -> None:
    """``--remote [USER@]HOST[:IFACE] ... [--ssh-option OPT ...] [--remote-tcpdump CMD]``:
    capture on other hosts over ssh instead of here (``live``, ``summary``)."""
    p.add_argument("--remote", action="append", metavar="[USER@]HOST[:IFACE]", default=[],
                   help="capture on HOST over ssh (its tcpdump, with the same filter) instead of here; "
                   "repeat for several hosts, merged by time into one view with a host column. Also "
                   "ssh://[USER@]HOST[:PORT][/IFACE]; without IFACE: -i, else tcpdump's default")
    p.add_argument("--ssh-option", action="append", metavar="OPT", default=[],
                   help="with --remote: an ssh -o option for every host, e.g. Port=2222 or "
                   "IdentityFile=~/.ssh/capture (repeat; ~/.ssh/config is read as ssh always does)")
    p.add_argument("--remote-tcpdump", metavar="CMD", default="tcpdump",
                   help="with --remote: the command that runs tcpdump on the hosts (default tcpdump; "
                   "e.g. 'sudo -n tcpdump' for a user sudo lets capture without a password)")


def add_cluster(p: argparse.ArgumentParser) -> None:
    """``--jobs N | --scheduler ADDRESS``: the command's capture files (an archive) read on a
    Dask cluster."""
    p.add_argument("--jobs", type=positive_int, metavar="N", help="run on a local Dask cluster of N processes "
                   '(needs pip install "tcpview-tui[cluster]")')
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS, e.g. tcp://host:8786 "
                   "(its workers read the files by the same paths)")
