"""How many colours the terminal has, and so which theme to start with when none is named.

NO_COLOR (as Textual reads it) or a terminal with fewer than 8 colours (``TERM=dumb``,
``vt100``, ...) start the app in the monochrome theme.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

DEFAULT_THEME = "tcpview-dark"
"""The theme used when none is asked for and the terminal has colours."""

MONO_THEME = "tcpview-mono"
"""The theme used when NO_COLOR is set or the terminal has fewer than 8 colours."""

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
