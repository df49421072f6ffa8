"""A theme file: the pydantic model of its TOML, parsed and checked into a Textual ``Theme``.

Unknown keys and unknown variables are errors (a typo would otherwise do nothing), colours
must be ones Textual can parse, and every problem is one line naming the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...errors import UserError, read_text

if TYPE_CHECKING:
    from textual.theme import Theme

THEME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""What a theme's name may be."""

_TEXT_STYLE_WORDS = {"bold", "italic", "underline", "strike", "reverse", "dim", "none", "not",
                     "blink", "overline", "b", "i", "u", "s"}


class ThemeError(UserError):
    """A theme that cannot be used; ``str()`` is one line naming the file (or name) and why."""


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
        if not THEME_NAME.match(v):
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
                raise ValueError(f"{key}: expected a string")
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

    from ..styles import theme_variable_defaults

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
    return parse_theme(read_text(p, ThemeError, "a theme file"), str(p), known, require_all)
