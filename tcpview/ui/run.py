"""Starting the Textual UI from a command: the terminal check and the one run loop."""

from __future__ import annotations

import os
import sys

from ..errors import UserError
from ..textutil import safe


def require_terminal() -> None:
    """Check that the UI can run here: a terminal on stdin and stdout (or a Textual driver
    chosen through ``TEXTUAL_DRIVER``, as tests and the web server do).

    Commands call it before they create anything (``tcpview live -w`` its file), so that
    without a terminal they leave nothing behind.

    Raises:
        UserError: stdin or stdout is not a terminal.
    """
    if not os.environ.get("TEXTUAL_DRIVER") and not (_is_tty(sys.stdin) and _is_tty(sys.stdout)):
        # e.g. `ssh -T` into a demo account: without this the app would draw into a pipe forever
        raise UserError("the interactive view needs a terminal on stdin and stdout (over SSH: ssh -t); "
                        "tcpview summary and tcpview ladder print text")


def _is_tty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed
        return False


def keep_what_is_loaded() -> None:
    """Move every object made so far out of the garbage collector's reach (``gc.freeze``):
    the engine, numba and Textual, loaded by now, are most of the process's objects and live as
    long as it does, and each of the collector's full passes walked them all, on the viewer's
    thread. Measured while a stream poured in under churn: its longest pause went from 93 ms
    to 33 ms, its time in all from 0.31 s to 0.14 s; a pause of the viewer's thread is time
    taken from the capture's producer (see :func:`tcpview.sources.drain.idle_this_thread`)."""
    import gc

    gc.freeze()


def run_app(source, live: bool = False, kernel_file: bool = False, **opts) -> int:
    """Run the UI on ``source`` until the user quits; returns the exit status.

    Args:
        source: a :class:`tcpview.sources.base.Source`.
        live: open the live-capture app (capture status line, kernel pane, interface
            picker) instead of the viewer.
        kernel_file: the file keeps the kernel's events (``live --kernel -w``): the viewer
            with ``K`` and ``D`` on them (:class:`tcpview.ui.kernel_replay.KernelReplayApp`).
        **opts: ``msl2``, ``fin_timeout`` (seconds), ``at`` (start the cursor there, seconds
            after the first packet, once it has been read), ``speed`` (the player's, None:
            1x), ``paused_at_start`` (a scenario), ``tick`` (UI tick, seconds),
            ``theme`` (a Textual ``Theme`` from ``--theme``, a theme name, or None for the
            default), and for ``live`` ``on_switch`` (see :class:`tcpview.ui.live_app.LiveApp`).

    Returns:
        0, or 2 when the source failed (the reason is printed on stderr after the UI closes).
    """
    require_terminal()
    from .app import TcpviewApp

    app_class: type[TcpviewApp] = TcpviewApp
    if live:
        from ..engine.warm import cache_is_warm, ready

        if cache_is_warm():
            # load the compiled kernels before the screen is drawn, so the first packets are
            # caught at once (a first run instead starts at once and compiles in another
            # process); for a file the reader chooses (a small one needs no compiled kernels)
            ready()
        from .live_app import LiveApp

        app_class = LiveApp  # the viewer with the capture's own parts
    elif kernel_file:
        from .kernel_replay import KernelReplayApp

        app_class = KernelReplayApp
    # The reader thread holds the GIL most of the time; the UI's event loop gives it up at
    # every await and must get it back, so a short switch interval keeps keys snappy.
    sys.setswitchinterval(0.001)
    app = app_class(source, **opts)
    keep_what_is_loaded()
    app.run()
    if app.load_error:
        print(f"tcpview: error: {safe(app.load_error)}", file=sys.stderr)
        return 2
    return app.return_code or 0
