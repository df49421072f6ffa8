"""``?`` and the key tables: the help in the app lists every key the app answers to in every
part of the screen (``tcpview live``'s own keys too) and the filter's terms; docs/keys.md and
the README's table list the same keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import wait_until
from rich.console import Console
from textual.widgets import Static
from uihelp import write_capture

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.live_app import LiveApp
from tcpview.ui.screens.help import HelpScreen, key_rows
from tcpview.ui.screens.help.keys import key_display

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "known.pcap")


def _text(renderable) -> str:  # type: ignore[no-untyped-def]
    console = Console(width=100, record=True)
    console.print(renderable)
    return console.export_text()


def _help_keys(rows: list[tuple[str, str, str]]) -> set[str]:
    return {k for _sec, keys, _what in rows if keys != "mouse" for k in keys.split(" ")}


def _bound_keys(app) -> set[str]:  # type: ignore[no-untyped-def]
    """The keys of every binding active where the focus is now (shown in the footer or not),
    as the help writes them; left out: Textual's system bindings and its copy of selected text
    (ctrl+c), which every Textual app has."""
    return {key_display(key) for key, active in app.screen.active_bindings.items()
            if not active.binding.system and active.binding.action != "screen.copy_text"}


@pytest.mark.parametrize("kind", [TcpviewApp, LiveApp])
async def test_help_lists_every_key_of_every_part_of_the_screen(capture: Path, kind: type) -> None:
    """With the focus on the table, the ladder, the graph and the stream in turn, every key
    bound there is in the help ``?`` shows; in ``tcpview live`` that includes i, K and D."""
    app = kind(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        bound = _bound_keys(app)  # the table
        await pilot.press("enter")  # the ladder
        bound |= _bound_keys(app)
        await pilot.press("v")  # the graph
        bound |= _bound_keys(app)
        await pilot.press("f")  # the stream
        bound |= _bound_keys(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = _text(app.screen.query_one("#help-keys", Static).content)
        rows = key_rows(type(app).BINDINGS)
        assert bound <= _help_keys(rows), bound - _help_keys(rows)
        flat = " ".join(shown.split())
        for _sec, _keys, what in rows:
            assert " ".join(what.split()) in flat, what
        live = {"i", "K", "D"}
        assert (live <= bound and live <= _help_keys(rows)) == (kind is LiveApp)
        if kind is LiveApp:
            assert "Live capture" in shown and "kernel disagrees with" in shown
        else:
            assert "Live capture" not in shown
        # the filter's terms, as docs/keys.md has them
        grammar = _text(app.screen.query_one("#help-filter", Static).content)
        for term in ("state:CLOSE_WAIT", "client:STATE", "port:443", "is:partial", "id:12", "analysis:retransmission",
                     "zeek:REJ", "history:^S$"):
            assert term in grammar
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_docs_list_the_live_keys() -> None:
    """docs/keys.md (generated from the bindings) has ``tcpview live``'s keys."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "keys.md").read_text()
    for key, what in (("i", "Capture on another interface"), ("K", "kernel's state"), ("D", "kernel disagrees")):
        assert re.search(rf"^\| `{key}` \| [^\n]*{re.escape(what)}", doc, re.MULTILINE), key
    assert "## Filter" in doc


def _readme_keys() -> set[str]:
    text = README.read_text()
    table = text.split("### Keys", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| keys"):
            keys |= set(re.findall(r"`([^`]+)`", line))  # a row may name a view's own keys in its text
    return keys


def test_readme_key_table_matches_the_help() -> None:
    """Every key the app's help lists (every mode's) is in the README's table, and the README
    names no key the app does not have."""
    help_keys = _help_keys(key_rows())
    readme = _readme_keys()
    assert readme == help_keys, (f"README only: {sorted(readme - help_keys)}; "
                                 f"help only: {sorted(help_keys - readme)}")
