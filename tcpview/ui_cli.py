"""``tcpview replay FILE|- [--follow]`` and :func:`run_app`, the one entry into the Textual UI.

Other parts (``tcpview demo``, ``tcpview live``) build their source and call
:func:`run_app`. Problems the user can fix (no such file, not a capture, stdin is a
terminal) are found here, before the UI starts: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


def add_commands(sub, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:  # type: ignore[no-untyped-def]
    """Register ``replay`` with the argparse sub-parsers and the handler table."""
    from .argtypes import nonnegative_float
    from .cli import _add_timers

    p = sub.add_parser("replay", help="open a capture in the interactive viewer (play, pause, step, seek)")
    p.add_argument("source", help="pcap/pcapng file, or - for a stream on stdin (tcpdump -U -w - | tcpview replay -)")
    p.add_argument("--follow", action="store_true", help="keep reading a file that is still being written")
    p.add_argument("--at", type=nonnegative_float, metavar="SECONDS", help="start with the cursor SECONDS after the first packet")
    _add_timers(p)
    add_app_options(p)
    commands["replay"] = cmd_replay


def add_app_options(p: argparse.ArgumentParser) -> None:
    """Options every command that runs the UI takes (replay, demo, live, sockets):
    ``--theme NAME|FILE``. Pass ``theme=args.theme`` on to :func:`run_app`."""
    p.add_argument("--theme", type=_theme_arg, metavar="NAME|FILE",
                   help="colour theme: tcpview-dark (default), tcpview-light, tcpview-high-contrast, "
                   "tcpview-colorblind, tcpview-mono, one of yours, or a .toml file "
                   "(default: tcpview-mono when NO_COLOR is set)")


def _theme_arg(value: str):  # type: ignore[no-untyped-def]
    """Resolve ``--theme`` while parsing, so a bad one is a one-line usage error (exit 2)."""
    from .themes import ThemeError, resolve_theme

    try:
        return resolve_theme(value)
    except ThemeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def probe(path: str, follow: bool = False) -> None:
    """Check that ``path`` is a readable capture before the UI starts.

    Raises:
        UsageError: no such file, unreadable, or not a pcap/pcapng capture.
    """
    from .cli import UsageError
    from .sources.pcap import CaptureError, CaptureReader

    if follow:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as e:
            raise UsageError(f"{path}: {e.strerror}") from None
        if len(head) == 4 and head not in _MAGICS:
            raise UsageError(f"{path}: not a pcap or pcapng capture (unknown magic {head.hex()})")
        return
    try:
        with CaptureReader(path) as reader:
            next(iter(reader.records()), None)
    except CaptureError as e:
        raise UsageError(str(e)) from None


def _stdin_source():  # type: ignore[no-untyped-def]
    """A source reading the capture piped into stdin, with the keyboard moved to /dev/tty.

    Textual reads keys from file descriptor 0, so the pipe is moved to another descriptor
    and the controlling terminal is opened on 0.
    """
    from .cli import UsageError
    from .sources.base import FileSource

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("replay -: stdin is a terminal; pipe a capture in, e.g. tcpdump -U -w - | tcpview replay -")
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        raise UsageError("replay -: needs a terminal (/dev/tty) for the keyboard while the capture comes on stdin") from None
    data_fd = os.dup(0)
    os.dup2(tty, 0)
    os.close(tty)
    source = FileSource("-")
    source.reader._fd = data_fd  # the reader reads the pipe, Textual the terminal
    return source


def cmd_replay(args: argparse.Namespace) -> int:
    """``tcpview replay FILE|- [--follow]``."""
    from .cli import UsageError
    from .sources.base import FileSource
    from .sources.pcap import CaptureError

    if args.source == "-":
        source = _stdin_source()
    else:
        probe(args.source, follow=args.follow)
        try:
            source = FileSource(args.source, follow=args.follow)
        except CaptureError as e:
            raise UsageError(str(e)) from None
    return run_app(source, msl2=args.msl2, fin_timeout=args.fin_timeout, at=args.at, theme=args.theme)


def run_app(source, **opts) -> int:  # type: ignore[no-untyped-def]
    """Run the UI on ``source`` until the user quits; returns the exit status.

    Args:
        source: a :class:`tcpview.sources.base.Source`.
        **opts: ``msl2``, ``fin_timeout`` (seconds), ``at`` (start the cursor there, seconds
            after the first packet, once it has been read), ``tick`` (UI tick, seconds),
            ``theme`` (a Textual ``Theme`` from ``--theme``, a theme name, or None for the
            default).

    Returns:
        0, or 2 when the source failed (the reason is printed on stderr after the UI closes).
    """
    from .textutil import safe

    require_terminal()
    from .ui.app import TcpviewApp

    # The reader thread holds the GIL most of the time; the UI's event loop gives it up at
    # every await and must get it back, so a short switch interval keeps keys snappy.
    sys.setswitchinterval(0.001)
    app = TcpviewApp(source, **opts)
    app.run()
    if app.load_error:
        print(f"tcpview: error: {safe(app.load_error)}", file=sys.stderr)
        return 2
    return app.return_code or 0


def require_terminal() -> None:
    """Check that the UI can run here: a terminal on stdin and stdout (or a Textual driver
    chosen through ``TEXTUAL_DRIVER``, as tests and the web server do).

    Commands call it before they create anything (``tcpview live -w`` its file), so that
    without a terminal they leave nothing behind.

    Raises:
        UsageError: stdin or stdout is not a terminal.
    """
    if not os.environ.get("TEXTUAL_DRIVER") and not (_is_tty(sys.stdin) and _is_tty(sys.stdout)):
        # e.g. `ssh -T` into a demo account: without this the app would draw into a pipe forever
        from .cli import UsageError

        raise UsageError("the interactive view needs a terminal on stdin and stdout (over SSH: ssh -t); "
                         "tcpview summary and tcpview ladder print text")


def _is_tty(stream) -> bool:  # type: ignore[no-untyped-def]
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed
        return False
