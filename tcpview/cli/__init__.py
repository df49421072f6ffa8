"""Command line: ``tcpview [demo|replay|live|sockets|summary|ladder|export|stream|graph|expert|diagnose|simulate|serve]``.

Every failure the user can cause (missing file, not a capture, bad option, no privileges)
ends in one line on stderr and exit status 2, never a traceback. Each command's module adds
its parser and handles it; modules import what their command needs when it runs, so
``tcpview summary`` never imports Textual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..errors import UserError
from . import diagnose, exports, live, offline, replay, serve, sim
from .errors import EXIT_USAGE, UsageError
from .options import capture_args

Handler = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, tuple[Callable[[object], None], Handler]] = {
    "demo": (sim.add_demo, sim.cmd_demo),
    "replay": (replay.add_replay, replay.cmd_replay),
    "live": (live.add_live, live.cmd_live),
    "sockets": (live.add_sockets, live.cmd_sockets),
    "summary": (offline.add_summary, offline.cmd_summary),
    "ladder": (offline.add_ladder, offline.cmd_ladder),
    "export": (exports.add_export, exports.cmd_export),
    "stream": (exports.add_stream, exports.cmd_stream),
    "graph": (exports.add_graph, exports.cmd_graph),
    "expert": (offline.add_expert, offline.cmd_expert),
    "diagnose": (diagnose.add_diagnose, diagnose.cmd_diagnose),
    "simulate": (sim.add_simulate, sim.cmd_simulate),
    "serve": (serve.add_serve, serve.cmd_serve),
}
"""Every sub-command: the function that adds its parser, and its handler."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    from .. import __version__

    p = _Parser(prog="tcpview", description="See what TCP is doing: both endpoints' states, "
                "a ladder of every segment, and the TIME_WAIT / CLOSE_WAIT counters.")
    p.add_argument("--version", action="version", version=f"tcpview {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for add, _handler in COMMANDS.values():
        add(sub)
    p.set_defaults(parser=p)  # a command that checks another command line (serve) parses with it
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run tcpview; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv or ["demo"])
        if args.command is None:  # options only, e.g. `tcpview --theme x`: they are the demo's
            args = parser.parse_args(["demo", *argv])
        _read_stdin_at_once(args)
        capture_args(args)
        return COMMANDS[args.command][1](args)
    except UserError as e:
        print(f"tcpview: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        finally:
            return 0


SHOWN_AS_IT_COMES = frozenset({"replay"})
"""The commands that show a stream as it comes (the viewer): the others answer at its end."""


def _read_stdin_at_once(args: argparse.Namespace) -> None:
    """A capture streamed on standard input (``-``) is read from now on, before the command
    loads its engine: its producer writes meanwhile (:func:`tcpview.sources.drain.start_early`).

    Raises:
        UsageError: standard input is a terminal (nobody types a capture: the pipe is missing).
    """
    given = getattr(args, "source", None)
    if "-" in (given if isinstance(given, list) else [given]):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError(f"-: stdin is a terminal; pipe a capture in, e.g. tcpdump -U -w - | tcpview {args.command} -")
        from ..sources.drain import end_stream_at_ctrl_c, hold_while_busy, start_early, wait_to_analyse

        start_early(0)
        if args.command not in SHOWN_AS_IT_COMES:
            end_stream_at_ctrl_c()  # Ctrl-C ends tcpdump and the stream: the answer is of what came
            hold_while_busy()  # its answer comes at the end: the producer goes first meanwhile,
            wait_to_analyse()  # even before the engine is loaded


def _no_blas_threads() -> None:
    """numpy's BLAS starts a pool of threads when numpy is imported, which spin for a while
    waiting for work that tcpview never gives them (its kernels and numpy calls use no BLAS):
    about 0.1 s of a CPU at every start, taken from a stream's producer at the worst moment
    (``perf sched``: tcpdump waited 94 ms on a run queue behind one). A pool of one thread is
    no pool. Only tcpview's own process: what the user set is kept."""
    import os

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _skip_scipy_blas() -> None:
    """numba looks for scipy's BLAS the first time it types a kernel (for ``np.dot`` and
    ``np.linalg``, which tcpview's kernels do not use); where scipy is installed, importing
    ``scipy.linalg`` for that is 0.3 s of every start. Only tcpview's own process skips it:
    importing tcpview as a library changes nothing."""
    # None in sys.modules is the import system's mark for "fails to import" (typed as modules only)
    sys.modules.setdefault("scipy.linalg.cython_blas", None)  # type: ignore[arg-type]


def _exit(status: int) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    Once the compiled kernels are loaded, tearing the interpreter down (numba's and LLVM's
    objects, every module) takes 0.25-0.3 s, a quarter of reading a million-packet capture;
    nothing is left to do by then: output is flushed here, files were closed by the command.
    While a thread of someone else's is still at work (not a daemon), it is the usual exit."""
    import os
    import threading

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that went away: nothing more to tell it
            pass
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(status)
    os._exit(status)


def run() -> None:
    """Console-script entry point."""
    _skip_scipy_blas()
    _no_blas_threads()
    from ..sources.drain import yield_to_producers

    yield_to_producers()  # a stream's producer (tcpdump) runs first where the CPUs are busy
    _exit(main())
