"""The capture viewer's key bindings, in a module of their own: :class:`~tcpview.ui.app.TcpviewApp`
(and :class:`~tcpview.ui.live_app.LiveApp`) bind them and the help screen (``?``,
``docs/keys.md``) lists them, neither importing the other.

Every binding has an id (``player.step_forward``: the part before the dot is its section in
the help) and a tooltip (what the help says it does), so a keymap can remap it.

The keys that open the input box (``/``, ``t``, ``e``) are priority bindings. Textual hands
every key to the focused widget's queue as it arrives and resolves an ordinary binding only
when the key comes back up to the app, so the keys typed right behind ``/`` (or a paste) were
already on their way to the table when the box opened, and went to the table's bindings. A
priority binding acts as the app takes the key, in the order typed; the box then takes the
focus at once (:meth:`~tcpview.ui.widgets.prompt.Prompt.open`), so the next key goes to it.
An open box consumes printable keys, so these bindings never fire while typing in it.
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

VIEWER_BINDINGS: list[BindingType] = [
    Binding("space", "play_pause", "Play", id="player.play_pause",
            tooltip="Play / pause (live: pause, then play the past from the cursor)"),
    Binding("L", "live", "Live", id="player.live",
            tooltip="Back to LIVE after pausing (live sources)"),
    Binding("right,full_stop", "step(1)", "Step", id="player.step_forward", key_display="→",
            tooltip="Step one segment forward"),
    Binding("left,comma", "step(-1)", "Back", show=False, id="player.step_back", tooltip="Step one segment back"),
    Binding("right_square_bracket", "jump(0.1)", "+10%", show=False, id="player.jump_forward",
            tooltip="Jump 10% of the capture forward"),
    Binding("left_square_bracket", "jump(-0.1)", "-10%", show=False, id="player.jump_back",
            tooltip="Jump 10% of the capture back"),
    Binding("home,g", "start", "Start", show=False, id="player.start", tooltip="Cursor to the start"),
    Binding("end,G", "end", "End", show=False, id="player.end",
            tooltip="Cursor to the end (follows new data)"),
    Binding("plus,equals_sign", "faster", "Faster", show=False, id="player.faster",
            tooltip="Faster: up to 1000x, then max (live: for replaying the past)"),
    Binding("minus", "slower", "Slower", show=False, id="player.slower", tooltip="Slower (down to 0.1x)"),
    Binding("t", "goto_time", "Time", show=False, id="player.goto", priority=True,
            tooltip="Go to a time: seconds from the start (or m:ss)"),
    Binding("slash", "filter", "Filter", id="table.filter", priority=True,
            tooltip="Filter connections: state:CLOSE_WAIT port:443 10.0.0.5 (terms ANDed)"),
    Binding("escape", "clear_filter", "Clear filter", show=False, id="table.clear_filter",
            tooltip="Clear the filter or close the input box (graph, stream: back to the table)"),
    Binding("e", "export", "Export", show=False, id="table.export", priority=True,
            tooltip="Export the connection (or the filtered ones)"),
    Binding("s", "sort_next", "Sort", show=False, id="table.sort", tooltip="Sort by the next column"),
    Binding("r", "sort_reverse", "Reverse", show=False, id="table.reverse", tooltip="Reverse the sort order"),
    Binding("a", "toggle_absolute", "Abs seq", show=False, id="ladder.absolute",
            tooltip="Absolute / relative sequence numbers"),
    Binding("v", "toggle_graph", "Graph", show=False, id="ladder.graph",
            tooltip="Graph of the connection instead of its ladder"),
    Binding("f", "toggle_stream", "Stream", show=False, id="ladder.stream",
            tooltip="What the connection carried (its stream)"),
    Binding("w", "evidence(1)", "Evidence", show=False, id="ladder.next_evidence",
            tooltip="Next segment the slow-connection diagnosis points at"),
    Binding("W", "evidence(-1)", "Previous evidence", show=False, id="ladder.previous_evidence",
            tooltip="Previous segment the diagnosis points at"),
    Binding("c", "toggle_counters", "States", show=False, id="counters.all",
            tooltip="Show the counters of every state, not only the main four"),
    Binding("question_mark", "help", "Help", id="app.help", tooltip="Every key binding"),
    Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit"),
]
"""The bindings of ``tcpview replay``, ``demo`` and ``live`` (the live app adds its own)."""

KERNEL_BINDINGS: list[BindingType] = [
    Binding("K", "toggle_kernel", "Kernel", id="live.kernel",
            tooltip="Show the kernel's state of this host's sockets beside the captured states, their processes and tcp_info"),
    Binding("D", "kernel_differences", "Differences", show=False, id="live.differences",
            tooltip="Filter the table to the connections the kernel disagrees with"),
]
"""The kernel's view and its differences: ``tcpview live``, and the replay of a pcapng that
keeps the kernel's events."""

LIVE_BINDINGS: list[BindingType] = [
    Binding("i", "pick_interface", "Interface", id="live.interface",
            tooltip="Capture on another interface (same filter; the timeline starts over)"),
    *KERNEL_BINDINGS,
]
"""What ``tcpview live`` adds: another interface, the kernel's view and its differences."""


SOCKETS_BINDINGS: list[BindingType] = [
    Binding("space", "pause", "Pause", id="sockets.pause", tooltip="Stop / restart refreshing"),
    Binding("slash", "filter", "Filter", id="sockets.filter", priority=True,
            tooltip="Filter: state:CLOSE_WAIT port:443 proc:nginx pid:1234 user:www-data 10.0.0.5 (terms ANDed)"),
    Binding("escape", "clear_filter", "Clear filter", show=False, id="sockets.clear_filter",
            tooltip="Clear the filter or close the input box (graph, stream: back to the table)"),
    Binding("s", "sort_next", "Sort", id="sockets.sort",
            tooltip="Sort by the next column (Recv-Q and Send-Q biggest first, timers soonest first)"),
    Binding("c", "toggle_counters", "States", id="sockets.counters",
            tooltip="Show the counters of every state, not only the main four"),
    Binding("q", "quit", "Quit", id="sockets.quit", tooltip="Quit"),
]
"""The bindings of ``tcpview sockets`` (its table adds the cursor keys and Enter)."""
