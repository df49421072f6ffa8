"""The command palette's tcpview commands: every action of the app by name (and of the live
capture's app: :class:`LiveCommands`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..engine.player import SPEEDS, speed_label
from .widgets.conn_table import SORT_NAMES
from .widgets.counters import MAIN_STATES, OTHER_STATES


class ActionCommands(Provider):
    """A command palette provider over a list of ``(name, help, callback)`` from
    :meth:`_commands`: all of them on discovery, the ones whose name matches on search."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for name, help_text, cb in self._commands():
            yield DiscoveryHit(name, cb, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, cb in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=help_text)


class TcpviewCommands(ActionCommands):
    """Player, table, ladder and view commands for the command palette (Ctrl+P)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        run = app.run_action
        cmds: list[tuple[str, str, Callable[[], object]]] = [
            ("Play / pause", "Play or pause (live: freeze, then play the past from there)", partial(run, "play_pause")),
            ("Back to live", "The cursor follows new data again (live sources)", partial(run, "live")),
            ("Step forward", "Cursor to the next segment", partial(run, "step(1)")),
            ("Step back", "Cursor to the previous segment", partial(run, "step(-1)")),
            ("Jump forward 10%", "Cursor 10% of the capture later", partial(run, "jump(0.1)")),
            ("Jump back 10%", "Cursor 10% of the capture earlier", partial(run, "jump(-0.1)")),
            ("Go to start", "Cursor to the first segment", partial(run, "start")),
            ("Go to end", "Cursor to the newest segment (follows new data)", partial(run, "end")),
            ("Go to time…", "Type a time in seconds from the start", partial(run, "goto_time")),
            ("Faster", "Next playback speed up", partial(run, "faster")),
            ("Slower", "Next playback speed down", partial(run, "slower")),
            ("Filter connections…", "state:CLOSE_WAIT port:443 10.0.0.5 (terms ANDed)", partial(run, "filter")),
            ("Clear filter", "List every connection", partial(run, "clear_filter")),
            ("Sort by next column", "Cycle the table's sort column", partial(run, "sort_next")),
            ("Reverse sort", "Reverse the table's order", partial(run, "sort_reverse")),
            ("Toggle absolute sequence numbers", "Raw seq/ack instead of relative", partial(run, "toggle_absolute")),
            ("Toggle all states", "Show every state's counter, not only the main four",
             partial(run, "toggle_counters")),
            ("Inspect segment", "Dissect the frame under the ladder cursor", partial(run, "inspect")),
            ("Focus connections", "Move the keyboard focus to the table", partial(run, "focus_table")),
            ("Focus ladder", "Move the keyboard focus to the ladder", partial(run, "focus_ladder")),
            ("Help", "Every key binding", partial(run, "help")),
            ("Quit", "Leave tcpview", partial(run, "quit")),
        ]
        for key, name in SORT_NAMES.items():
            cmds.append((f"Sort by {name}", f"Sort the table by {name}", partial(run, f"sort('{key}')")))
        for state in MAIN_STATES + OTHER_STATES:
            cmds.append((f"Filter: state {state}", f"Connections with an endpoint in {state}",
                         partial(run, f"set_filter('state:{state}')")))
        for i, s in enumerate(SPEEDS):
            cmds.append((f"Speed {speed_label(s)}", "Playback speed", partial(run, f"speed({i})")))
        return cmds


class LiveCommands(ActionCommands):
    """The live capture's commands for the command palette (Ctrl+P)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        run = self.app.run_action
        return [
            ("Capture on another interface…", "Pick an interface; capture starts over there (same filter)",
             partial(run, "pick_interface")),
            ("Toggle kernel view", "The kernel's state of this host's sockets beside the captured states",
             partial(run, "toggle_kernel")),
            ("Kernel differences", "Filter the table to the connections the kernel disagrees with",
             partial(run, "kernel_differences")),
        ]
