"""The graph pane: the selected connection's shape (time-sequence Stevens or tcptrace,
throughput, RTT, window), beside the ladder's place (``v`` switches between them).

It follows the player: a vertical line marks the cursor, and a click on the plot seeks
there. ``m`` picks the next kind, ``d`` the other data direction of a sequence graph, ``z`` /
``Z`` zoom the time axis in / out around the cursor (or, where nothing was sent there, around
the nearest point), ``h`` / ``l`` pan within the connection's time, ``x`` shows the whole
connection again. A legend under the axis names each series in its colour. Drawing is
:func:`tcpview.engine.analysis.graphs.render` (braille cells from numpy passes); the series are
built once per connection, kind and direction, on a worker thread (a tcptrace graph reads its
SACK blocks from the capture's frames again; a big connection's series take a while): the
pane keeps what it showed, or says it is drawing, until the graph is posted back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events, on, work
from textual.binding import Binding
from textual.strip import Strip
from textual.widget import Widget

from ...engine.analysis.graphs import KINDS, Canvas, Graph, build, busier_direction, render, tick
from ...engine.analysis.kernel_graphs import KERNEL_KINDS, build_kernel
from ...engine.analysis.vantage import OWD_KINDS, build_owd
from ...engine.timeline.kernel_log import KernelLog
from ...engine.timeline.timeline import Timeline
from ..messages import WidgetMessage

LABEL_W = 8
SERIES_CLASSES = ("tcp-ack", "tcp-window", "tcp-data", "tcp-loss", "tcp-syn", "tcp-note")
# which theme colour each series of a kind takes, by series name
_COLOUR = {"window": "tcp-window", "ack": "tcp-ack", "sack": "tcp-note", "data": "tcp-data", "retransmission": "tcp-loss",
           "client → server": "tcp-data", "server → client": "tcp-syn", "ACKs from the client": "tcp-data",
           "ACKs from the server": "tcp-syn", "client's window": "tcp-data", "server's window": "tcp-syn",
           "client cwnd": "tcp-data", "client ssthresh": "tcp-window", "client congestion state": "tcp-loss",
           "server cwnd": "tcp-syn", "server ssthresh": "tcp-ack", "server congestion state": "tcp-note",
           "client srtt": "tcp-data", "server srtt": "tcp-syn"}


class GraphPane(Widget, can_focus=True):
    """One graph of the selected connection at the cursor time."""

    BINDINGS = [
        Binding("m", "next_kind", "Kind", id="graph.kind",
                tooltip="Next kind: tseq, tcptrace, throughput, RTT, window"),
        Binding("d", "direction", "Direction", show=False, id="graph.direction",
                tooltip="The other data direction of a sequence graph (client → server or back)"),
        Binding("z", "zoom(0.5)", "Zoom in", show=False, id="graph.zoom_in", tooltip="Zoom the time axis in"),
        Binding("Z", "zoom(2)", "Zoom out", show=False, id="graph.zoom_out", tooltip="Zoom the time axis out"),
        Binding("h", "pan(-0.25)", "Pan left", show=False, id="graph.pan_left", tooltip="Pan the graph left"),
        Binding("l", "pan(0.25)", "Pan right", show=False, id="graph.pan_right", tooltip="Pan the graph right"),
        Binding("x", "reset", "Whole", show=False, id="graph.reset", tooltip="The whole connection again"),
    ]

    COMPONENT_CLASSES = {"graph-pane--axis", "graph-pane--cursor", *(f"graph-pane--{c}" for c in SERIES_CLASSES)}

    DEFAULT_CSS = """
    GraphPane { height: 1fr; }
    GraphPane > .graph-pane--axis { color: $text-muted; }
    GraphPane > .graph-pane--cursor { color: $accent; }
    """ + "\n".join(f"GraphPane > .graph-pane--{c} {{ color: ${c}; }}" for c in SERIES_CLASSES)

    @dataclass
    class SeekRequested(WidgetMessage):
        """A click on the plot: put the cursor at time ``t``."""

        t: float

    @dataclass
    class Built(WidgetMessage):
        """A worker built the graph for ``key`` (what :meth:`GraphPane.show` asked for)."""

        key: tuple
        graph: Graph | None

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.kind = KINDS[0]
        self.tl: Timeline | None = None
        self.cid: int | None = None
        self.t: float | None = None
        self.graph: Graph | None = None
        self._key: tuple | None = None
        self.view: tuple[float, float] | None = None  # the x range shown (None: all)
        self.direction: int | None = None
        """The data direction of the sequence graphs (0: client to server; None: the busier)."""
        self._canvas: tuple[tuple, Canvas] | None = None
        self.frames: Callable[[int], tuple[int, bytes] | None] | None = None
        """Frame number -> ``(linktype, bytes)``: where SACK blocks are read from (None: none)."""
        self._styles: tuple | None = None
        self.kernel_log: KernelLog | None = None
        """With ``--kernel``: the kernel's events, for the ``cwnd`` and ``srtt`` graphs."""

    # -- what to show ---------------------------------------------------------------------
    def show(self, tl: Timeline, cid: int | None, t: float | None) -> None:
        """The graph of connection ``cid`` as of time t (None: everything read)."""
        self.tl, self.t = tl, t
        if cid != self.cid:
            self.view = None
            self.direction = None
        self.cid = cid
        c = tl.conns.get(cid)
        n = c.n if c is not None else -1
        key = (id(tl), cid, self.kind, n, tl.generation, self.direction,
               self.kernel_log.version if self.kernel_log is not None and self.kind in KERNEL_KINDS else 0)
        if key != self._key:
            if self._key is None or key[:3] + key[4:6] != self._key[:3] + self._key[4:6]:
                self.graph = None  # another connection, kind or direction: not the old one meanwhile
            self._key = key
            if n > 0:
                self._build(key, tl, cid, self.kind, self.direction, self.frames)
            else:
                self.graph = None
        self.refresh()

    @work(thread=True, exclusive=True, group="graph-pane", exit_on_error=False)
    def _build(self, key: tuple, tl: Timeline, cid: int, kind: str, direction: int | None, frames) -> None:
        """Build the graph off the UI thread (frames are read here) and post it back."""
        if kind in KERNEL_KINDS:
            graph = build_kernel(tl, cid, kind, self.kernel_log) if self.kernel_log is not None else None
        elif kind in OWD_KINDS:
            graph = build_owd(tl, cid)
        else:
            graph = build(tl, cid, kind, direction, frames=frames)
        self.post_message(self.Built(self, key, graph))

    def kinds(self) -> tuple[str, ...]:
        """The kinds ``m`` goes through: the kernel's too with ``--kernel``, the one-way delay
        with two vantage points joined."""
        joined = OWD_KINDS if self.tl is not None and self.tl.vantages is not None else ()
        return (KINDS + KERNEL_KINDS if self.kernel_log is not None else KINDS) + joined

    @on(Built)
    def _built(self, message: Built) -> None:
        message.stop()
        if message.key == self._key:  # (a graph for what is no longer asked for is dropped)
            self.graph, self._canvas = message.graph, None
            self.refresh()

    @property
    def cursor_x(self) -> float | None:
        """The cursor as seconds from the connection's start (None: no cursor or connection)."""
        c = self.tl.conns.get(self.cid) if self.tl is not None else None
        if self.t is None or c is None:
            return None
        return self.t - c.first_ts

    def x_range(self) -> tuple[float, float]:
        if self.view is not None:
            return self.view
        return self.graph.x_range() if self.graph is not None else (0.0, 1.0)

    # -- keys -----------------------------------------------------------------------------
    def action_next_kind(self) -> None:
        kinds = self.kinds()
        self.kind = kinds[(kinds.index(self.kind) + 1) % len(kinds)] if self.kind in kinds else kinds[0]
        if self.tl is not None:
            self.show(self.tl, self.cid, self.t)

    def action_direction(self) -> None:
        """The other data direction of a sequence graph (tseq, tcptrace)."""
        if self.tl is None or self.cid is None or self.tl.conns.get(self.cid) is None:
            return
        if self.kind not in ("tseq", "tcptrace"):
            self.notify(f"d turns a sequence graph (tseq, tcptrace) around; {self.kind} shows both directions "
                        "already (m: next kind)", markup=False)
            return
        shown = self.direction if self.direction is not None else busier_direction(self.tl, self.cid)
        self.direction = 1 - shown
        self.show(self.tl, self.cid, self.t)

    def action_zoom(self, factor: float) -> None:
        """Zoom the time axis by ``factor`` around the cursor, or the middle; where no point is
        in the new range, around the point nearest that."""
        if self.graph is None:
            return
        x0, x1 = self.x_range()
        mid = self.cursor_x if self.cursor_x is not None and x0 <= self.cursor_x <= x1 else (x0 + x1) / 2
        half = (x1 - x0) * factor / 2
        if not _has_points(self.graph, mid - half, mid + half):
            near = _nearest_x(self.graph, mid)
            mid = mid if near is None else near
        self._set_view(mid - half, mid + half)

    def action_pan(self, share: float) -> None:
        """Move the time axis by ``share`` of its width, within the connection's time."""
        x0, x1 = self.x_range()
        step = (x1 - x0) * share
        self._set_view(x0 + step, x1 + step)

    def _set_view(self, x0: float, x1: float) -> None:
        """Show x0..x1, kept within the graph's own range (never before the connection's start,
        never after its end); as wide as that or wider: all of it."""
        if self.graph is None:
            return
        g0, g1 = self.graph.x_range()
        width = x1 - x0
        if width >= g1 - g0:
            self.view = None
        else:
            x0 = min(max(x0, g0), g1 - width)
            self.view = (x0, x0 + width)
        self.refresh()

    def action_reset(self) -> None:
        self.view = None
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        plot_w = self.size.width - LABEL_W - 1
        col = event.x - LABEL_W - 1
        if self.graph is None or self.cid is None or self.tl is None or not 0 <= col < plot_w:
            return
        x0, x1 = self.x_range()
        x = x0 + (x1 - x0) * (col + 0.5) / plot_w
        self.post_message(self.SeekRequested(self, self.tl.conns[self.cid].first_ts + x))

    # -- drawing --------------------------------------------------------------------------
    def canvas(self) -> Canvas | None:
        """The plot at the pane's size (kept until the size, graph or zoom changes)."""
        if self.graph is None:
            return None
        w, h = self.size.width - LABEL_W - 1, self.size.height - 4  # title, x axis, its labels, legend
        if w < 4 or h < 2:
            return None
        x0, x1 = self.x_range()
        key = (self._key, w, h, x0, x1)
        if self._canvas is None or self._canvas[0] != key:
            self._canvas = (key, render(self.graph, w, h, x0, x1))
        return self._canvas[1]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        axis = self.get_component_rich_style("graph-pane--axis")
        g = self.graph
        if g is None:
            drawing = self.cid is not None and self._key is not None and self._key[3] > 0
            text = ("drawing the graph…" if drawing else "no connection selected") if y == 0 else ""
            return Strip([Segment(text.ljust(width), axis)], width)
        if y == 0:
            return Strip([Segment(g.title[:width].ljust(width), axis)], width)
        cv = self.canvas()
        if cv is None:
            return Strip.blank(width)
        h = cv.bits.shape[0]
        r = y - 1
        empty = not cv.bits.any()
        if r < h and empty:  # nothing in this part of the time axis: say so, not a 0-1 plot
            text = f"nothing between {tick(cv.x0)} and {tick(cv.x1)} {g.x_unit}: h / l pan, x shows it all"
            text = text if r == h // 2 else ""
            return Strip([Segment(" " * LABEL_W + "┤", axis), Segment(f" {text}", axis)]).crop_extend(0, width, None)
        if r < h:
            yv = cv.y1 - (cv.y1 - cv.y0) * r / max(1, h - 1)
            label = tick(yv) if r in (0, h // 2, h - 1) else ""
            segs = [Segment(f"{label:>{LABEL_W}}┤", axis)]
            cur = self.cursor_col(cv)
            styles, cursor_style = self._series_styles(g)
            row = cv.text_rows_at(r)
            owner = cv.owner[r]
            # runs of one series' colour, one segment each
            change = np.flatnonzero(np.diff(owner)) + 1
            starts = [0, *change.tolist()]
            ends = [*change.tolist(), len(owner)]
            for a, b in zip(starts, ends, strict=True):
                o = int(owner[a])
                style = styles[o] if o >= 0 else axis
                if a <= cur < b:  # the cursor column inside this run
                    if cur > a:
                        segs.append(Segment(row[a:cur], style))
                    ch = row[cur]
                    segs.append(Segment("│" if ch == " " else ch, cursor_style if ch == " " else
                                        style + Style(bgcolor=cursor_style.color)))
                    if cur + 1 < b:
                        segs.append(Segment(row[cur + 1:b], style))
                else:
                    segs.append(Segment(row[a:b], style))
            return Strip(segs).simplify().crop_extend(0, width, None)
        if r == h:
            return Strip([Segment(" " * LABEL_W + "└" + "─" * cv.bits.shape[1], axis)]).crop_extend(0, width, None)
        if r == h + 1:
            left = f"{tick(cv.x0)} {g.x_unit}"
            right = f"{tick(cv.x1)} {g.x_unit}   y: {g.y_unit}"
            w = cv.bits.shape[1]
            return Strip([Segment(" " * (LABEL_W + 1) + left + right.rjust(max(0, w - len(left))), axis)]
                         ).crop_extend(0, width, None)
        if r == h + 2:
            return self._legend(g, width, axis)
        return Strip.blank(width)

    def _legend(self, g: Graph, width: int, axis: Style) -> Strip:
        """Each series' name after a mark in its colour, as the command line's graph lists them."""
        styles, _cursor = self._series_styles(g)
        segs = [Segment(" " * (LABEL_W + 1), axis)]
        for series, style in zip(g.series, styles, strict=True):
            segs += [Segment("⣿ ", style), Segment(f"{series.name}   ", axis)]
        return Strip(segs).crop_extend(0, width, None)

    def _series_styles(self, g: Graph) -> tuple[list[Style], Style]:
        """Each series' style and the cursor's, looked up once per graph and theme (not per line)."""
        # the series' names too: a rebuilt graph may get a freed graph's id (the kernel's
        # graphs are rebuilt as events come) with other series
        key = (id(g), tuple(s.name for s in g.series), self.app.current_theme.name if self.is_attached else "")
        if self._styles is None or self._styles[0] != key:
            styles = [self.get_component_rich_style(f"graph-pane--{_COLOUR.get(s.name, 'tcp-data')}")
                      for s in g.series]
            self._styles = (key, styles, self.get_component_rich_style("graph-pane--cursor"))
        return self._styles[1], self._styles[2]

    def cursor_col(self, cv: Canvas) -> int:
        """The column of ``cv`` the cursor line is drawn in (-1: the cursor is outside it)."""
        x = self.cursor_x
        if x is None or not cv.x0 <= x <= cv.x1:
            return -1
        w = cv.bits.shape[1]
        return min(w - 1, int((x - cv.x0) / (cv.x1 - cv.x0) * w))


def _has_points(g: Graph, x0: float, x1: float) -> bool:
    """Whether any series of ``g`` has a point with x0 <= x <= x1."""
    return any(a < b for a, b in (s.span(x0, x1) for s in g.series))


def _nearest_x(g: Graph, x: float) -> float | None:
    """The x of the point of ``g`` nearest to ``x`` (None: no points)."""
    best: float | None = None
    for s in g.series:
        i = int(np.searchsorted(s.x, x))
        for j in (i - 1, i):
            if 0 <= j < len(s.x) and (best is None or abs(float(s.x[j]) - x) < abs(best - x)):
                best = float(s.x[j])
    return best
