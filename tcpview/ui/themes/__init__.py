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

The modules, one idea each: :mod:`~tcpview.ui.themes.spec` (a theme file: the pydantic model,
parsing, validation), :mod:`~tcpview.ui.themes.catalog` (where themes come from: built-in
and user folders, lookup by name, ``--theme``), :mod:`~tcpview.ui.themes.terminal` (how many
colours the terminal has, hence the default theme) and :mod:`~tcpview.ui.themes.install`
(registering them with an app and telling the user about broken files). Import from them;
this package exports nothing.
"""
