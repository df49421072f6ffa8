"""Themes as data: TOML files parsed with pydantic into Textual ``Theme`` objects.

The built-in themes live in the repository's top-level ``themes/`` folder and are installed
with the package as ``tcpview/_themes``. Users add themes by dropping ``NAME.toml`` files into
``$XDG_CONFIG_HOME/tcpview/themes`` (``~/.config/tcpview/themes`` when unset); a user theme
with a built-in's name replaces it. A file that cannot be used is collected as a
:class:`ThemeFailure` (file and problem, one line) instead of stopping the app, so the app can
show one notification and carry on with the default theme.

A theme file holds Textual's base colours plus ``[variables]``; tcpview's own colours (each
flag kind, each state family) exist only as such variables (``tcp-syn``, ``state-time-wait``,
...), so a theme that leaves one out gets the app's default for it::

    name = "my-theme"
    dark = true
    primary = "#4C9BE8"
    background = "#101418"

    [variables]
    tcp-syn = "#5FB3F0"
    state-time-wait = "#F0B45A"

No colour is named anywhere else: widgets style component classes with these variables.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from textual.app import App
    from textual.theme import Theme

DEFAULT_THEME = "tcpview-dark"
"""The theme used when none is asked for and the terminal has colours."""

MONO_THEME = "tcpview-mono"
"""The theme used when NO_COLOR is set or the terminal has fewer than 8 colours."""

THEME_PREFIX = "tcpview-"
"""Built-in themes are named ``tcpview-*``; ``--theme light`` finds ``tcpview-light``."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TEXT_STYLE_WORDS = {"bold", "italic", "underline", "strike", "reverse", "dim", "none", "not",
                     "blink", "overline", "b", "i", "u", "s"}


class ThemeError(Exception):
    """A theme that cannot be used; ``str()`` is one line naming the file (or name) and why."""


@dataclass(frozen=True)
class ThemeFailure:
    """One theme file that could not be loaded."""

    path: Path
    """The file."""
    problem: str
    """What is wrong with it, one line."""

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _check_colour(value: str) -> str:
    """Accept what Textual accepts as a colour, optionally followed by an alpha ``NN%``."""
    from textual.color import Color, ColorParseError

    text = value.strip()
    parts = text.rsplit(None, 1)
    if len(parts) == 2 and re.fullmatch(r"\d{1,3}(\.\d+)?%", parts[1]):
        text = parts[0]
    try:
        Color.parse(text)
    except ColorParseError:
        raise ValueError(f"not a colour: {value!r}") from None
    return value


class ThemeSpec(BaseModel):
    """The contents of one theme file (TOML); unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Lower-case name shown in the command palette and given to --theme.")
    description: str | None = Field(default=None, description="One line about the theme.")
    dark: bool = Field(default=True, description="True for a dark background.")
    primary: str = Field(description="Main accent colour (borders of the focused widget, title).")
    secondary: str | None = Field(default=None, description="Second accent colour.")
    accent: str | None = Field(default=None, description="Highlights such as the footer keys.")
    warning: str | None = Field(default=None, description="Warnings.")
    error: str | None = Field(default=None, description="Errors.")
    success: str | None = Field(default=None, description="Success.")
    foreground: str | None = Field(default=None, description="Default text colour.")
    background: str | None = Field(default=None, description="Screen background.")
    surface: str | None = Field(default=None, description="Background of widgets.")
    panel: str | None = Field(default=None, description="Background of panels and the header.")
    boost: str | None = Field(default=None, description="A translucent colour to lift areas.")
    luminosity_spread: float = Field(default=0.15, ge=0.0, le=1.0,
                                     description="How far the lighten/darken shades spread.")
    text_alpha: float = Field(default=0.95, ge=0.0, le=1.0, description="Opacity of default text.")
    ansi: bool = Field(default=False, description="Use the terminal's own ANSI palette.")
    variables: dict[str, str] = Field(default_factory=dict,
                                      description="CSS variables: tcpview's colours and Textual's.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("name must be lower-case letters, digits, '-' or '_' (at most 64)")
        return v

    @field_validator("primary", "secondary", "accent", "warning", "error", "success", "foreground",
                     "background", "surface", "panel", "boost")
    @classmethod
    def _colour_ok(cls, v: str | None) -> str | None:
        return None if v is None else _check_colour(v)

    @field_validator("variables")
    @classmethod
    def _variables_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected a string")  # noqa: TRY004 - pydantic wants ValueError
            if key.endswith("-style"):
                words = value.replace(",", " ").split()
                bad = [w for w in words if w.lower() not in _TEXT_STYLE_WORDS]
                if bad or not words:
                    raise ValueError(f"{key}: not a text style: {value!r}")
            else:
                try:
                    _check_colour(value)
                except ValueError as e:
                    raise ValueError(f"{key}: {e}") from None
        return v

    def to_theme(self) -> Theme:
        """The Textual ``Theme`` for this spec."""
        from textual.theme import Theme

        fields = self.model_dump(exclude={"description"})
        return Theme(**fields)


@cache
def textual_variable_names() -> frozenset[str]:
    """Every CSS variable Textual's colour system defines (a theme may override any)."""
    from textual.design import ColorSystem

    return frozenset(ColorSystem(primary="#000000").generate())


@cache
def app_variable_names() -> frozenset[str]:
    """tcpview's own theme variables (flag kinds, state families, ...)."""
    from textual.theme import Theme

    from .styles import theme_variable_defaults

    return frozenset(theme_variable_defaults(Theme(name="probe", primary="#000000")))


def _pydantic_problem(err: ValidationError) -> str:
    """The first validation error as one readable line."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["loc"][:1] == ("variables",):
        where = "[variables]"  # the message names the variable
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing"
    extra = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    sep = " " if where == "[variables]" else ": "
    return f"{where}{sep}{msg}{extra}" if where else f"{msg}{extra}"


def parse_theme(text: str, source: str = "<theme>", known: Collection[str] | None = None,
                require_all: bool = False) -> Theme:
    """Parse the TOML text of a theme into a Textual ``Theme``.

    Args:
        text: The file's contents.
        source: Name of the file, used in error messages.
        known: The app's own variable names; a variable that is neither one of them nor one of
            Textual's is an error (a typo such as ``tcp-sin`` would otherwise do nothing).
            Defaults to :func:`app_variable_names`.
        require_all: Every variable in ``known`` must be defined (built-in themes).

    Raises:
        ThemeError: One line: ``source: problem``.
    """
    known = app_variable_names() if known is None else frozenset(known)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ThemeError(f"{source}: not valid TOML: {e}") from None
    try:
        spec = ThemeSpec.model_validate(data)
    except ValidationError as e:
        raise ThemeError(f"{source}: {_pydantic_problem(e)}") from None
    unknown = sorted(set(spec.variables) - known - textual_variable_names())
    if unknown:
        raise ThemeError(f"{source}: unknown variable {unknown[0]!r}"
                         f" (tcpview's are: {', '.join(sorted(known))})")
    if require_all:
        missing = sorted(known - set(spec.variables))
        if missing:
            raise ThemeError(f"{source}: variables missing: {', '.join(missing)}")
    return spec.to_theme()


def load_theme_file(path: str | os.PathLike[str], known: Collection[str] | None = None,
                    require_all: bool = False) -> Theme:
    """Read and parse one theme file (see :func:`parse_theme`).

    Raises:
        ThemeError: The file cannot be read or is not a valid theme.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ThemeError(f"{p}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ThemeError(f"{p}: not UTF-8 text") from None
    return parse_theme(text, str(p), known, require_all)


def builtin_theme_dir() -> Path:
    """Where the built-in theme files are: ``tcpview/_themes`` when installed from a wheel,
    else the source tree's top-level ``themes/``."""
    installed = Path(str(resources.files("tcpview"))) / "_themes"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "themes"


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
    if looks_like_file or (Path(value).is_file() and not _NAME.match(value)):
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


# -- how many colours the terminal has -------------------------------------------------------
_TERMINFO_DIRS = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo", "/usr/lib/terminfo",
                  "/usr/share/lib/terminfo")
_MAX_COLORS = 13  # index of the "colors" number in terminfo's numeric capabilities


def _terminfo_paths(term: str, env: Mapping[str, str]) -> Iterable[Path]:
    dirs: list[str] = []
    if env.get("TERMINFO"):
        dirs.append(env["TERMINFO"])
    dirs.append(str(Path.home() / ".terminfo"))
    dirs.extend(d for d in env.get("TERMINFO_DIRS", "").split(":") if d)
    dirs.extend(_TERMINFO_DIRS)
    for d in dirs:
        yield Path(d) / term[0] / term
        yield Path(d) / f"{ord(term[0]):x}" / term  # macOS names the folders in hex


def terminfo_colors(term: str, environ: Mapping[str, str] | None = None) -> int | None:
    """The number of colours terminfo gives ``term`` (-1 for none), None when unknown.

    Reads the compiled terminfo entry directly (curses can set up only one terminal per
    process, and this must not touch the real terminal).
    """
    env = os.environ if environ is None else environ
    if not term or "/" in term or term.startswith("."):
        return None
    for path in _terminfo_paths(term, env):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) < 12:
            return None
        magic, name_size, bool_count, num_count = struct.unpack_from("<hhhh", data)
        if magic == 0o432:
            width, fmt = 2, "<h"
        elif magic == 0o1036:  # ncurses' 32-bit number format
            width, fmt = 4, "<i"
        else:
            return None
        if num_count <= _MAX_COLORS:
            return -1
        off = 12 + name_size + bool_count
        off += off % 2  # numbers start on an even byte
        try:
            (value,) = struct.unpack_from(fmt, data, off + _MAX_COLORS * width)
        except struct.error:
            return None
        return value
    return None


def wants_monochrome(environ: Mapping[str, str] | None = None, terminal: bool | None = None) -> bool:
    """True when NO_COLOR is set (as Textual reads it: present at all) or the terminal has
    fewer than 8 colours (``TERM=dumb``, ``vt100``, ...). An unknown terminal is not assumed
    to be monochrome.

    Args:
        environ: The environment (default ``os.environ``).
        terminal: Whether the app draws on a real terminal (default: whether standard output
            is one). TERM describes only a real terminal: not the headless driver of tests,
            nor a browser (textual-serve), nor a pipe.
    """
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env:
        return True
    if env.get("COLORTERM") or env.get("TEXTUAL_COLOR_SYSTEM") in ("truecolor", "256"):
        # textual-serve sets TEXTUAL_COLOR_SYSTEM=truecolor: a browser has every colour
        return False
    if terminal is None:
        terminal = _stdout_is_terminal()
    if not terminal:
        return False
    term = env.get("TERM", "")
    if term in ("dumb", "unknown"):
        return True
    colors = terminfo_colors(term, env) if term else None
    return colors is not None and colors < 8


def _stdout_is_terminal() -> bool:
    try:
        return sys.__stdout__ is not None and sys.__stdout__.isatty()
    except (ValueError, OSError):
        return False


def default_theme_name(environ: Mapping[str, str] | None = None, terminal: bool | None = None) -> str:
    """The theme to start with when the user names none (see :func:`wants_monochrome`)."""
    return MONO_THEME if wants_monochrome(environ, terminal) else DEFAULT_THEME


# -- hooking into an app -----------------------------------------------------------------------
def install(app: App[Any], requested: str | Theme | None = None, no_color: bool | None = None,
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
        user_dir: The user's theme directory (defaults to :func:`user_theme_dir`).

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
        theme = found.find(requested)
        if theme is not None:
            name = theme.name
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
