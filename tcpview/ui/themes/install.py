"""Hooking the themes into an app: register them, pick the one to start with, and tell the
user (once) about theme files that could not be used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import ThemeFailure, load_themes
from .terminal import default_theme_name

if TYPE_CHECKING:
    from textual.app import App
    from textual.theme import Theme


def install_themes(app: App[Any], requested: str | Theme | None = None, no_color: bool | None = None,
                   user_dir: Path | None = None) -> list[ThemeFailure]:
    """Register every theme with ``app`` and select the one to start with.

    Call from the app's ``__init__`` (after ``super().__init__()``). The command palette's
    "Change theme" then lists tcpview's themes and the user's.

    Args:
        app: The app.
        requested: A theme (already resolved from ``--theme``) or a theme name; None picks
            :func:`default_theme_name`. An unknown name falls back to the default.
        no_color: Whether NO_COLOR was set; defaults to the app's own reading (Textual removes
            NO_COLOR from the environment it gives the console, but records ``app.no_color``).
        user_dir: The user's theme directory (defaults to :func:`~tcpview.ui.themes.catalog.user_theme_dir`).

    Returns:
        The user theme files that failed to load; pass them to :func:`notify_failures` once the
        app is running.
    """
    found = load_themes(user_dir)
    for theme in found.themes.values():
        app.register_theme(theme)
    failures = list(found.failures)
    env = dict(os.environ)
    if no_color if no_color is not None else getattr(app, "no_color", False):
        env["NO_COLOR"] = "1"
    name = default_theme_name(env)
    if isinstance(requested, str):
        chosen = found.find(requested)
        if chosen is not None:
            name = chosen.name
        else:
            failures.append(ThemeFailure(Path(requested), "no such theme"))
    elif requested is not None:
        app.register_theme(requested)
        name = requested.name
    app.theme = name
    return failures


def failure_message(failures: list[ThemeFailure]) -> str | None:
    """The one notification text for theme files that failed to load (None if none did)."""
    if not failures:
        return None
    lines = [f"{f.path}: {f.problem}" for f in failures]
    head = "Skipped a theme file:" if len(lines) == 1 else f"Skipped {len(lines)} theme files:"
    return head + "\n" + "\n".join(lines)


def notify_failures(app: App[Any], failures: list[ThemeFailure]) -> None:
    """Show ONE notification listing every theme file that failed to load."""
    message = failure_message(failures)
    if message is not None:
        # markup=False: file names and TOML error text are not Textual markup
        app.notify(message, title="Themes", severity="warning", timeout=10, markup=False)
