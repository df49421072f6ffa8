"""Where themes come from: the built-in files, the user's folder, and ``--theme NAME|FILE``.

The built-in themes live in the repository's top-level ``themes/`` folder and are installed
with the package as ``tcpview/_themes``. Users add themes by dropping ``NAME.toml`` files into
``$XDG_CONFIG_HOME/tcpview/themes`` (``~/.config/tcpview/themes`` when unset); a user theme
with a built-in's name replaces it. A file that cannot be used is collected as a
:class:`ThemeFailure` instead of stopping the app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .spec import THEME_NAME, ThemeError, load_theme_file

if TYPE_CHECKING:
    from textual.theme import Theme

THEME_PREFIX = "tcpview-"
"""Built-in themes are named ``tcpview-*``; ``--theme light`` finds ``tcpview-light``."""


@dataclass(frozen=True)
class ThemeFailure:
    """One theme file that could not be loaded."""

    path: Path
    """The file."""
    problem: str
    """What is wrong with it, one line."""

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def builtin_theme_dir() -> Path:
    """Where the built-in theme files are: ``tcpview/_themes`` when installed from a wheel,
    else the source tree's top-level ``themes/``."""
    installed = Path(str(resources.files("tcpview"))) / "_themes"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / "themes"


def user_theme_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/tcpview/themes``, or ``~/.config/tcpview/themes``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "tcpview" / "themes"


@dataclass
class ThemeSet:
    """Every theme available to the app, and the files that failed to load."""

    themes: dict[str, Theme]
    """By name: built-ins first, then the user's (which may replace a built-in)."""
    failures: list[ThemeFailure]
    """Theme files that could not be loaded (the user's, or a damaged installation's)."""
    files: dict[str, Path]
    """Which file each theme came from."""

    def find(self, name: str) -> Theme | None:
        """The theme called ``name`` (or ``tcpview-NAME``, or one of Textual's own themes, which
        get tcpview's colours from the app's defaults); None if there is none."""
        from textual.theme import BUILTIN_THEMES

        return self.themes.get(name) or self.themes.get(THEME_PREFIX + name) or BUILTIN_THEMES.get(name)

    def names(self) -> list[str]:
        """Every theme name :meth:`find` knows: tcpview's and the user's first, then Textual's."""
        from textual.theme import BUILTIN_THEMES

        return sorted(self.themes) + sorted(set(BUILTIN_THEMES) - set(self.themes))


def _theme_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".toml" and not p.name.startswith("."))
    except OSError:
        return []


@cache
def _builtins() -> tuple[dict[str, Theme], tuple[ThemeFailure, ...]]:
    themes: dict[str, Theme] = {}
    failures: list[ThemeFailure] = []
    for path in _theme_files(builtin_theme_dir()):
        try:
            theme = load_theme_file(path)
        except ThemeError as e:  # a damaged installation must not stop the app
            failures.append(ThemeFailure(path, str(e).removeprefix(f"{path}: ")))
            continue
        themes[theme.name] = theme
    return themes, tuple(failures)


def builtin_themes() -> dict[str, Theme]:
    """The built-in themes by name. Each defines every tcpview variable (the tests check; at
    run time a variable a theme leaves out falls back to the app's default)."""
    return dict(_builtins()[0])


def load_themes(user_dir: Path | None = None) -> ThemeSet:
    """The built-in themes plus those in the user's theme directory.

    Args:
        user_dir: Defaults to :func:`user_theme_dir`.
    """
    user_dir = user_theme_dir() if user_dir is None else user_dir
    themes, builtin_failures = _builtins()
    themes = dict(themes)
    files = {name: builtin_theme_dir() / f"{name}.toml" for name in themes}
    failures: list[ThemeFailure] = list(builtin_failures)
    for path in _theme_files(user_dir):
        try:
            theme = load_theme_file(path)
        except ThemeError as e:
            failures.append(ThemeFailure(path, str(e).removeprefix(f"{path}: ")))
            continue
        themes[theme.name] = theme
        files[theme.name] = path
    return ThemeSet(themes, failures, files)


def resolve_theme(value: str, available: ThemeSet | None = None) -> Theme:
    """The theme that ``--theme VALUE`` asks for: a theme name or a theme file.

    Raises:
        ThemeError: Unknown name, or a file that cannot be used (one line).
    """
    looks_like_file = value.endswith(".toml") or os.sep in value or (os.altsep or os.sep) in value
    if looks_like_file or (Path(value).is_file() and not THEME_NAME.match(value)):
        return load_theme_file(value)
    available = load_themes() if available is None else available
    theme = available.find(value)
    if theme is not None:
        return theme
    for failure in available.failures:
        if failure.path.stem in (value, THEME_PREFIX + value):
            raise ThemeError(f"theme {value!r}: {failure}")
    names = ", ".join(available.names())
    raise ThemeError(f"unknown theme {value!r} (available: {names}; or give a .toml file)")
