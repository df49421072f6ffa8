"""Themes: the built-in files, user themes, broken files, --theme, NO_COLOR and few-colour
terminals, switching from the command palette, and one snapshot per built-in theme.

The app tests run the real app on a small scapy-built capture (tests/uihelp.py) at a
fixed cursor time, so every screen is the same on every run.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, cli, wait_until
from uihelp import palette_offers, screen_strips, write_capture

from tcpview.ui.themes.catalog import (
    builtin_theme_dir,
    builtin_themes,
    load_themes,
    resolve_theme,
    user_theme_dir,
)
from tcpview.ui.themes.install import failure_message
from tcpview.ui.themes.spec import ThemeError, load_theme_file
from tcpview.ui.themes.terminal import default_theme_name, terminfo_colors

BUILTIN = ("tcpview-dark", "tcpview-light", "tcpview-high-contrast", "tcpview-colorblind", "tcpview-mono")
GOOD = """\
name = "sunrise"
dark = false
primary = "#C05000"
background = "#FFF8F0"

[variables]
tcp-syn = "#0050A0"
"""


def app_variables() -> set[str]:
    """tcpview's own theme variables, as the app defines them."""
    from textual.theme import Theme

    from tcpview.ui.styles import theme_variable_defaults

    return set(theme_variable_defaults(Theme(name="probe", primary="#123456")))


# -- the built-in theme files ------------------------------------------------------------------
def test_builtin_themes_define_every_app_colour() -> None:
    found = builtin_themes()
    assert set(BUILTIN) <= set(found)
    for name in BUILTIN:  # strictly: no unknown keys or variables, every tcpview variable set
        load_theme_file(REPO / "themes" / f"{name}.toml", require_all=True)
    wanted = app_variables()
    assert {"tcp-syn", "tcp-fin", "tcp-rst", "tcp-data", "tcp-ack", "state-time-wait",
            "state-close-wait", "state-established"} <= wanted
    for name in BUILTIN:
        missing = wanted - set(found[name].variables)
        assert not missing, f"{name} leaves out {sorted(missing)}"
    assert found["tcpview-light"].dark is False
    assert all(found[n].dark for n in BUILTIN if n != "tcpview-light")


def test_builtin_theme_files_are_where_the_package_looks() -> None:
    files = sorted(p.name for p in (REPO / "themes").glob("*.toml"))
    assert files == sorted(f"{n}.toml" for n in BUILTIN)
    assert builtin_theme_dir().resolve() == (REPO / "themes").resolve()


def test_wheel_build_ships_the_theme_files_as_package_data(tmp_path: Path) -> None:
    """setup.py maps themes/ to tcpview/_themes; the built package finds them there."""
    build = tmp_path / "lib"
    r = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
                        "build_py", "--build-lib", str(build)], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    shipped = sorted(p.name for p in (build / "tcpview" / "_themes").glob("*.toml"))
    assert shipped == sorted(f"{n}.toml" for n in BUILTIN)
    # load them from the built tree, not the source tree
    code = ("import tcpview.ui.themes.catalog as t; print(t.builtin_theme_dir()); "
            "print(','.join(sorted(t.builtin_themes())))")
    env = dict(os.environ, PYTHONPATH=str(build))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    where, names = r.stdout.split()
    assert Path(where) == build / "tcpview" / "_themes"
    assert names.split(",") == sorted(BUILTIN)


def _rgb(value: str) -> tuple[int, int, int]:
    from textual.color import Color

    c = Color.parse(value)
    return c.r, c.g, c.b


def test_monochrome_theme_has_no_hue() -> None:
    t = builtin_themes()["tcpview-mono"]
    values = [t.primary, t.secondary, t.accent, t.warning, t.error, t.success, t.foreground,
              t.background, t.surface, t.panel, *t.variables.values()]
    for v in values:
        if v is None or v.endswith("-style") or not v.startswith("#"):
            continue
        r, g, b = _rgb(v)
        assert r == g == b, f"{v} is not a grey"


# Colour-vision deficiency simulation: Machado, Oliveira & Fernandes (2009), severity 1.0,
# applied to linear RGB; distances are CIE 1976 ΔE*ab in CIELAB (D65).
_CVD = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216),
                   (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413),
                     (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602),
                   (0.004733, 0.691367, 0.303900)),
}


def _seen(value: str, matrix) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    def lin(c: int) -> float:
        x = c / 255
        return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4

    rgb = [lin(c) for c in _rgb(value)]
    r, g, b = (min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb, strict=True)))) for row in matrix)
    x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    fx, fy, fz = f(x / 0.95047), f(y), f(z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


# A gap readers tell apart at a glance in small text: several times the ~2.3 just-noticeable
# difference. (Pure red and green, seen with deuteranopia, are closer than this.)
MIN_DELTA_E = 15.0


def test_cvd_simulation_collapses_red_and_green() -> None:
    """The check below can fail: red and green fall together for a deuteranope."""
    deut = _CVD["deuteranopia"]
    assert math.dist(_seen("#D00000", deut), _seen("#00A000", deut)) < MIN_DELTA_E
    ident = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    assert math.dist(_seen("#D00000", ident), _seen("#00A000", ident)) > 100


@pytest.mark.parametrize("kind", sorted(_CVD))
def test_colorblind_theme_tells_flags_and_states_apart(kind: str) -> None:
    v = builtin_themes()["tcpview-colorblind"].variables
    groups = (("tcp-syn", "tcp-fin", "tcp-rst", "tcp-data"),
              ("state-established", "state-close-wait", "state-time-wait", "state-syn-received"))
    for group in groups:
        for a, b in itertools.combinations(group, 2):
            d = math.dist(_seen(v[a], _CVD[kind]), _seen(v[b], _CVD[kind]))
            assert d >= MIN_DELTA_E, f"{a} {v[a]} and {b} {v[b]} look alike with {kind} (ΔE {d:.1f})"


# -- parsing and user themes -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name = 'x'\nprimary = \n", "not valid TOML"),
        ("name = 'x'\n", "primary: missing"),
        ("name = 'x'\nprimary = 'blurple'\n", "primary: not a colour: 'blurple'"),
        ("name = 'x'\nprimary = '#000'\nprimery = '#111'\n", "primery: unknown key"),
        ("name = 'Bad Name'\nprimary = '#000'\n", "name must be lower-case"),
        ("name = 'x'\nprimary = '#000'\n[variables]\ntcp-sin = '#fff'\n", "unknown variable 'tcp-sin'"),
        ("name = 'x'\nprimary = '#000'\n[variables]\ntcp-rst = 'loud'\n", "[variables] tcp-rst: not a colour"),
        ("name = 'x'\nprimary = '#000'\n[variables]\nblock-cursor-text-style = 'shiny'\n", "not a text style"),
    ],
)
def test_broken_theme_text_is_one_line_naming_the_file(text: str, problem: str, tmp_path: Path) -> None:
    p = tmp_path / "broken.toml"
    p.write_text(text)
    with pytest.raises(ThemeError) as e:
        load_theme_file(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: ")
    assert problem in msg


def test_good_user_theme_parses_to_a_textual_theme(tmp_path: Path) -> None:
    p = tmp_path / "sunrise.toml"
    p.write_text(GOOD)
    t = load_theme_file(p)
    assert (t.name, t.dark, t.primary, t.background) == ("sunrise", False, "#C05000", "#FFF8F0")
    assert t.variables == {"tcp-syn": "#0050A0"}


def test_user_theme_dir_follows_xdg_config_home(tmp_path: Path) -> None:
    assert user_theme_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "tcpview" / "themes"
    assert user_theme_dir({}) == Path.home() / ".config" / "tcpview" / "themes"
    # relative XDG paths are to be ignored (XDG Base Directory spec)
    assert user_theme_dir({"XDG_CONFIG_HOME": "rel"}) == Path.home() / ".config" / "tcpview" / "themes"


def test_load_themes_collects_failures_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "sunrise.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text("name = 'broken'\nprimary = 'nope'\n")
    (tmp_path / "notes.txt").write_text("not a theme")
    found = load_themes(tmp_path)
    assert "sunrise" in found.themes and "broken" not in found.themes
    assert set(BUILTIN) <= set(found.themes)
    assert [(f.path, f.problem) for f in found.failures] == [
        (tmp_path / "broken.toml", "primary: not a colour: 'nope'")]
    msg = failure_message(found.failures)
    assert msg is not None and str(tmp_path / "broken.toml") in msg


def test_resolve_theme_names_files_and_errors(tmp_path: Path) -> None:
    (tmp_path / "sunrise.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text("name = 'broken'\n")
    found = load_themes(tmp_path)
    assert resolve_theme("tcpview-light", found).name == "tcpview-light"
    assert resolve_theme("light", found).name == "tcpview-light"  # short name
    assert resolve_theme("sunrise", found).name == "sunrise"
    assert resolve_theme("nord", found).name == "nord"  # Textual's own
    assert resolve_theme(str(tmp_path / "sunrise.toml"), found).name == "sunrise"
    with pytest.raises(ThemeError, match=r"unknown theme 'nosuch' \(available: sunrise, tcpview-colorblind"):
        resolve_theme("nosuch", found)
    with pytest.raises(ThemeError, match=r"theme 'broken': .*broken\.toml: primary: missing"):
        resolve_theme("broken", found)


# -- monochrome: NO_COLOR and terminals with few colours ------------------------------------
def test_no_color_and_colourless_terminals_pick_the_monochrome_theme(tmp_path: Path) -> None:
    def pick(env: dict[str, str]) -> str:
        return default_theme_name(env, terminal=True)

    assert pick({"TERM": "xterm-256color"}) == "tcpview-dark"
    assert pick({"TERM": "xterm-256color", "NO_COLOR": "1"}) == "tcpview-mono"
    assert pick({"TERM": "dumb"}) == "tcpview-mono"
    assert pick({}) == "tcpview-dark"  # unknown terminal: not assumed colourless
    # TERM describes a real terminal only: not the headless driver, a pipe or a browser
    assert default_theme_name({"TERM": "dumb"}, terminal=False) == "tcpview-dark"
    assert default_theme_name({"TERM": "dumb", "NO_COLOR": ""}, terminal=False) == "tcpview-mono"
    assert pick({"TERM": "dumb", "TEXTUAL_COLOR_SYSTEM": "truecolor"}) == "tcpview-dark"
    # real terminfo entries (ncurses-base): vt100 has no colours
    if terminfo_colors("xterm-256color") is None:
        pytest.skip("no terminfo database")
    assert terminfo_colors("xterm-256color") == 256
    assert terminfo_colors("xterm") == 8
    assert terminfo_colors("vt100") == -1
    assert pick({"TERM": "vt100"}) == "tcpview-mono"
    assert pick({"TERM": "xterm"}) == "tcpview-dark"  # 8 colours are enough
    assert pick({"TERM": "vt100", "COLORTERM": "truecolor"}) == "tcpview-dark"
    # an entry compiled here with tic, found through $TERMINFO
    if shutil.which("tic") is None:
        return
    src = tmp_path / "t.src"
    src.write_text("tcpview-four|a terminal with four colours,\n\tcolors#4, pairs#16, cols#80, lines#24,\n")
    db = tmp_path / "terminfo"
    subprocess.run(["tic", "-o", str(db), str(src)], check=True, capture_output=True)
    env = {"TERM": "tcpview-four", "TERMINFO": str(db)}
    assert terminfo_colors("tcpview-four", env) == 4
    assert pick(env) == "tcpview-mono"


def test_colourless_terminal_starts_the_app_monochrome(tmp_path: Path) -> None:
    """On a real terminal (a pty) whose TERM has no colours, the app starts in tcpview-mono."""
    import pty
    import select

    cap = write_capture(tmp_path / "c.pcap")
    # the app prints its theme as the window title, which a terminal does not show on screen
    code = ("import sys; from tcpview.ui import app as a; orig = a.TcpviewApp.on_mount\n"
            "def on_mount(self):\n"
            "    orig(self); sys.__stdout__.write('\\x1b]2;THEME=' + self.theme + '\\x07'); self.exit()\n"
            "a.TcpviewApp.on_mount = on_mount\n"
            "from tcpview.cli import main; sys.exit(main(sys.argv[1:]))\n")
    results = {}
    for term in ("vt100", "xterm-256color"):
        master, slave = pty.openpty()
        env = dict(os.environ, TERM=term, PYTHONPATH=str(REPO))
        for k in ("NO_COLOR", "COLORTERM", "TEXTUAL_COLOR_SYSTEM"):
            env.pop(k, None)
        p = subprocess.Popen([sys.executable, "-c", code, "replay", str(cap)], stdin=slave, stdout=slave,
                             stderr=slave, env=env, cwd=tmp_path)
        os.close(slave)
        out = b""

        def ended() -> bool:
            """Read what the app wrote; true once it has exited or its terminal is gone."""
            nonlocal out
            if p.poll() is not None:
                return True
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    return True
            return False

        wait_until(ended, 20, 0)
        p.wait(10)
        os.close(master)
        text = out.decode("utf-8", "replace")
        results[term] = text.split("THEME=", 1)[1].split("\x07", 1)[0] if "THEME=" in text else text[-300:]
    assert results == {"vt100": "tcpview-mono", "xterm-256color": "tcpview-dark"}


# -- the command line --------------------------------------------------------------------------
def test_theme_option_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "c.pcap")
    code, out, err = cli("replay", str(cap), "--theme", "nosuch")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown theme 'nosuch'" in err and "Traceback" not in err
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'bad'\nprimary = 'not-a-colour'\n")
    code, out, err = cli("replay", str(cap), "--theme", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and str(bad) in err and "primary: not a colour" in err


# -- the app -------------------------------------------------------------------------------------
def make_app(tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    from tcpview.sources.base import FileSource
    from tcpview.ui.app import TcpviewApp

    source = FileSource(str(write_capture(tmp_path / "capture.pcap")))
    source.name = "replay capture.pcap"  # the tmp path would differ between runs
    return TcpviewApp(source, **kw)


async def settle(pilot, at: float = 1.65) -> None:  # type: ignore[no-untyped-def]
    """Wait until the capture is read, put the cursor at ``at`` and select connection 1."""
    app = pilot.app
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    assert app.loaded
    app.seek_offset(at)
    await pilot.press("down")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


@pytest.fixture
def user_themes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user theme directory (so the machine's own themes never leak in)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    d = tmp_path / "config" / "tcpview" / "themes"
    d.mkdir(parents=True)
    return d


@pytest.mark.parametrize("name", BUILTIN)
def test_snapshot_of_each_builtin_theme(name: str, tmp_path: Path, user_themes: Path, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, theme=name)
    assert snap_compare(app, terminal_size=(100, 30), run_before=settle)


async def test_broken_user_theme_gives_one_notification_and_the_default(tmp_path: Path, user_themes: Path) -> None:
    (user_themes / "sunrise.toml").write_text(GOOD)
    broken = user_themes / "broken.toml"
    broken.write_text("name = 'broken'\nprimary = '#000'\n[variables]\ntcp-syn = 'sky'\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        assert app.theme == "tcpview-dark"
        assert "sunrise" in app.available_themes and "broken" not in app.available_themes
        toasts = list(app.screen.query("Toast"))  # Textual exports the widget only from a private module
        assert len(toasts) == 1
        shown = str(toasts[0].render())
        assert shown.startswith("Themes\nSkipped a theme file:\n")
        assert f"{broken}: [variables] tcp-syn: not a colour: 'sky'" in shown


async def test_no_color_selects_monochrome_and_flags_stay_readable(
        tmp_path: Path, user_themes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.theme == "tcpview-mono"
        screen = _screen_text(app)
        # connection 1 (full close): the flags are told apart by their names
        for label in ("SYN seq=0", "SYN,ACK", "PSH,ACK", "FIN,ACK", "ACK seq=1"):
            assert label in screen, label
        assert "TIME_WAIT" in screen and "CLOSE_WAIT" in screen
        # the refused connection's RST: later (2.0 s SYN, 2.1 s RST+ACK), next row down
        app.seek_offset(2.2)
        await pilot.press("down")
        await pilot.pause()
        screen = _screen_text(app)
        assert "RST,ACK" in screen
        # the theme itself paints only greys
        colours = _screen_colours(app)
        assert colours and all(r == g == b for r, g, b in colours)


def _screen_text(app) -> str:  # type: ignore[no-untyped-def]
    """The text on the app's screen now, one line per row."""
    return "\n".join(strip.text for strip in screen_strips(app))


def _screen_colours(app) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """Every foreground and background colour on the app's screen now (before Textual's
    output filters, so this is what the theme itself paints)."""
    out: set[tuple[int, int, int]] = set()
    for strip in screen_strips(app):
        for seg in strip:
            style = seg.style
            if style is None:
                continue
            for colour in (style.color, style.bgcolor):
                if colour is not None and colour.triplet is not None:
                    out.add(tuple(colour.triplet))  # type: ignore[arg-type]
    return out


async def test_command_palette_switches_theme(tmp_path: Path, user_themes: Path) -> None:
    from textual.command import CommandPalette

    (user_themes / "sunrise.toml").write_text(GOOD)
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.theme == "tcpview-dark"
        await pilot.press("ctrl+p")
        await pilot.pause()
        commands = app.screen
        await pilot.press(*"theme")
        assert await palette_offers(app, pilot, "theme")
        await pilot.press("enter")
        # the themes, in a palette of their own
        assert await wait_until(lambda: app.screen is not commands and isinstance(app.screen, CommandPalette),
                                10, 0.02, pilot.pause)
        await pilot.press(*"sunrise")
        assert await palette_offers(app, pilot, "sunrise")
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "sunrise"
        assert app.theme_variables["tcp-syn"] == "#0050A0"  # the user's colour is in use
        assert app.theme_variables["tcp-rst"]  # and what it leaves out has the app's default
