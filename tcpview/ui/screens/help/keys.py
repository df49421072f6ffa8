"""Every key binding of the app, grouped for the help screen and docs/keys.md.

The table is built from the bindings of the app (:mod:`tcpview.ui.bindings`: the viewer's,
and what ``tcpview live`` adds) and the ``BINDINGS`` of its widgets, so what the help shows
is what the keys do. Run ``python -m tcpview.ui.screens.help.keys`` to print it as Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding

from ...bindings import LIVE_BINDINGS, SOCKETS_BINDINGS, VIEWER_BINDINGS
from ...widgets.conn_table import ConnectionTable
from ...widgets.graph_pane import GraphPane
from ...widgets.ladder import Ladder
from ...widgets.socket_table import SocketTable
from ...widgets.stream_pane import StreamPane
from ..detail import DetailScreen

_KEY_NAMES = {
    "up": "↑", "down": "↓", "left": "←", "right": "→", "space": "space", "pageup": "PgUp",
    "pagedown": "PgDn", "home": "Home", "end": "End", "escape": "Esc", "enter": "Enter",
    "question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]", "plus": "+",
    "minus": "-", "equals_sign": "=", "comma": ",", "full_stop": ".", "slash": "/", "tab": "Tab",
    "shift+tab": "Shift+Tab", "ctrl+home": "Ctrl+Home", "ctrl+end": "Ctrl+End", "ctrl+p": "Ctrl+P",
    "ctrl+q": "Ctrl+Q",
}

FILTER_HELP = (
    "`/` opens the filter box; terms are ANDed and apply as you type. `state:CLOSE_WAIT` "
    "(either endpoint; also `close-wait`, prefixes like `state:fin_wait`, and `tw` `cw` `est` "
    "`syn-recv`), `client:STATE` / `server:STATE` (one endpoint), `port:443` (either port), "
    "`is:partial` `is:refused` `is:reset` `is:anomaly`, `id:12`, an IP address (either "
    "endpoint), `analysis:retransmission` (a Wireshark analysis flag or anomaly, or a ladder tag "
    "such as `an:zero-win` `an:dup-ack` `an:rst-out-of-win`), `zeek:REJ` (Zeek's conn_state), `history:^S$` (a regular expression on "
    "Zeek's history), `proc:nginx` `pid:1234` `user:www-data` (live, and the sockets view: the process holding "
    "either end's socket on this host, its command, pid or user), `slow:receive_window` (the `slow` column's verdict: why it was slow), or any other word (part of the client or server text, e.g. `:443`). Every "
    "term is evaluated at the cursor (states, notes, flags, Zeek's view), so the list changes as "
    "you seek. A term that names nothing (`state:bogus`, `bogus:x`) is refused as you type: the "
    "box says what is valid and the table keeps the last filter that was."
)

LIVE = "Live capture"
SECTIONS = ("Player", "Connections", "Ladder", "Graph", "Stream", "Counters", LIVE, "General", "Detail pane")


def key_display(keys: str) -> str:
    """``up,k`` -> ``↑ k``."""
    return " ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def _section(binding: Binding, default: str) -> str:
    bid = binding.id or ""
    prefix = bid.split(".", 1)[0]
    return {"player": "Player", "table": "Connections", "ladder": "Ladder", "graph": "Graph", "stream": "Stream",
            "counters": "Counters", "live": LIVE,
            "app": "General", "detail": "Detail pane"}.get(prefix, default)


def key_rows(app_bindings: Sequence[Binding | tuple] | None = None) -> list[tuple[str, str, str]]:
    """``(section, keys, what it does)`` for every binding, in section order.

    Args:
        app_bindings: the app's own bindings (those of the app the help is shown in); None:
            every mode's (the viewer's and what ``tcpview live`` adds), as docs/keys.md lists them.
    """
    if app_bindings is None:
        app_bindings = [*VIEWER_BINDINGS, *LIVE_BINDINGS]
    rows: list[tuple[str, str, str]] = []
    for default, bindings in (("General", app_bindings), ("Connections", ConnectionTable.BINDINGS),
                              ("Ladder", Ladder.BINDINGS), ("Graph", GraphPane.BINDINGS),
                              ("Stream", StreamPane.BINDINGS),
                              ("Detail pane", DetailScreen.BINDINGS)):
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            what = b.tooltip or b.description
            rows.append((_section(b, default), key_display(b.key), what))
    rows.append(("General", "Tab Shift+Tab", "Move the focus between the table and the ladder"))
    rows.append(("General", "Ctrl+P", "Command palette: every action by name"))
    rows.append(("General", "Ctrl+Q", "Quit, also while typing in the input box"))
    rows.append(("General", "mouse", "Click a row to select it, a header to sort, the timeline to seek "
                 "(drag to scrub), a counter to filter on its state; wheel scrolls"))
    order = {s: i for i, s in enumerate(SECTIONS)}
    return sorted(rows, key=lambda r: order.get(r[0], 99))


def socket_key_rows() -> list[tuple[str, str]]:
    """``(keys, what it does)`` for every binding of ``tcpview sockets`` (the app's, its table's)."""
    rows = [(key_display(b.key), b.tooltip or b.description)
            for b in [*SOCKETS_BINDINGS, *SocketTable.BINDINGS] if isinstance(b, Binding)]
    rows.append(("mouse", "Click a row to select it, a header to sort, a counter to filter on its state"))
    return rows


def keys_markdown() -> str:
    """The key table as Markdown (for docs/keys.md)."""
    out = ["# tcpview keys", "", "Every binding of `tcpview replay`, `tcpview demo` and `tcpview live` "
           "(also shown by `?` in the app), then those of `tcpview sockets`. Vim keys sit beside the arrows.", ""]
    section = None
    for sec, keys, what in key_rows():
        if sec != section:
            title = f"{sec} (`tcpview live` only)" if sec == LIVE else sec
            out += ["", f"## {title}", "", "| keys | what it does |", "|---|---|"]
            section = sec
        keys_md = " ".join(f"`{k}`" for k in keys.split(" ")) if keys != "mouse" else "mouse"
        out.append(f"| {keys_md} | {what} |")
    out += ["", "## Sockets view (`tcpview sockets`)", "", "| keys | what it does |", "|---|---|"]
    for keys, what in socket_key_rows():
        keys_md = " ".join(f"`{k}`" for k in keys.split(" ")) if keys != "mouse" else "mouse"
        out.append(f"| {keys_md} | {what} |")
    out += ["", "## Filter", "", FILTER_HELP]
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    print(keys_markdown(), end="")
