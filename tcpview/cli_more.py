"""Sub-commands added by the UI, simulator and live-capture parts (registered here)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_commands(sub) -> None:  # type: ignore[no-untyped-def]
    """Add the sub-commands that live outside the headless core."""


def live_summary(args: argparse.Namespace) -> int:
    from .cli import UsageError

    raise UsageError("live capture is not available yet")
