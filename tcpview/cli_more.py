"""Registry of the sub-commands that live outside the headless core.

Each part (UI, simulator, live capture, web) has a module with
``add_commands(sub, commands)`` that adds its argparse sub-parsers and handlers. Importing a
part is deferred until its command runs, so ``tcpview summary`` never imports Textual.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

PARTS = ("tcpview.sim_cli", "tcpview.live_cli", "tcpview.ui_cli", "tcpview.web_cli")


def add_commands(sub) -> None:  # type: ignore[no-untyped-def]
    """Add every part's sub-commands (parts not written yet are skipped)."""
    for name in PARTS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.add_commands(sub, COMMANDS)


def live_summary(args: argparse.Namespace) -> int:
    """``tcpview summary -i IFACE --duration S`` (provided by the live-capture part)."""
    from .cli import UsageError

    try:
        from .live_cli import live_summary as impl
    except ModuleNotFoundError:
        raise UsageError("live capture is not available in this build") from None
    return impl(args)
