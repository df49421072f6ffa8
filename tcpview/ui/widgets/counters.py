"""The counters bar: endpoints per state at the cursor, each with a sparkline.

TIME_WAIT and CLOSE_WAIT (the states that hurt in production) are always shown, with
ESTABLISHED and SYN_RECEIVED (half-open) beside them; the other states are a key away. When
SYNs were never answered (a SYN flood, a scan, a host that is down), ``half-open N`` says how
many, in the warning colour.
A sparkline covers the whole capture; its part after the cursor is dimmed. Clicking a
counter filters the table on that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rich.style import Style
from rich.text import Text
from textual import events
from textual.reactive import var
from textual.widget import Widget

from ...engine.core.tcp import STATE_NAMES
from ..messages import WidgetMessage
from ..styles import STATE_FAMILIES, STATE_FAMILY, state_css
from .repaint import PaintedText

MAIN_STATES = ("TIME_WAIT", "CLOSE_WAIT", "ESTABLISHED", "SYN_RECEIVED")
OTHER_STATES = ("SYN_SENT", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "LISTEN")
BARS = "▁▂▃▄▅▆▇█"
SPARK_MAX = 16


def sparkline(values: list[int], peak: int | None = None) -> str:
    """Block characters for ``values`` scaled to ``peak`` (their maximum by default)."""
    if not values:
        return ""
    top = max(peak if peak is not None else max(values), 1)
    n = len(BARS) - 1
    return "".join(BARS[0] if v <= 0 else BARS[max(1, min(n, round(v * n / top)))] for v in values)


class Counted(Protocol):
    """What the bar counts: a :class:`~tcpview.engine.timeline.timeline.Timeline`, or the
    kernel's socket table (:class:`tcpview.kernel.history.KernelTable`)."""

    version: int

    @property
    def first_ts(self) -> float | None: ...
    @property
    def last_ts(self) -> float | None: ...
    def counters_at(self, t: float | None = None) -> dict[str, int]: ...
    def counter_series(self, state: int, buckets: int, t_end: float | None = None) -> list[int]: ...


class CountersBar(PaintedText, Widget):
    """Endpoint counts per state at the cursor, as ``ss -tan`` would count sockets."""

    COMPONENT_CLASSES = {
        "counters--label",
        "counters--value",
        "counters--future",
        "counters--half-open",
        *(f"counters--state-{f}" for f in STATE_FAMILIES),
    }

    DEFAULT_CSS = """
    CountersBar { height: auto; padding: 0 1; }
    CountersBar > .counters--value { text-style: bold; }
    CountersBar > .counters--future { color: $spark-future; }
    CountersBar > .counters--half-open { color: $warning; text-style: bold; }
    """ + state_css("CountersBar", "counters")

    show_all: var[bool] = var(False, init=False)

    @dataclass
    class StateClicked(WidgetMessage):
        """A counter was clicked: the user wants the connections in that state."""

        state: str
        """The state's name (``CLOSE_WAIT``)."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tl: Counted | None = None
        self.t: float | None = None
        self.pos: float | None = None
        self._series: dict[str, list[int]] = {}
        self._series_key: tuple | None = None
        self._series_version: tuple | None = None  # the timeline version and clock the sparklines show
        self._counts: dict[str, int] = {}
        self._half_open = 0
        self._spans: list[tuple[int, int, int, str]] = []  # (line, x0, x1, state) for clicks

    def update_view(self, tl: Counted, t: float | None, pos: float | None, settle: bool = True) -> None:
        """Show the counts as of time t (None: now); ``pos`` places the sparkline cursor.

        The sparklines cover the whole capture, so they change as it grows; unless
        ``settle`` they keep the data they were drawn from (the counts never wait).
        """
        self.tl, self.t, self.pos = tl, t, pos
        self._counts = tl.counters_at(t)
        half_open = getattr(tl, "half_open_at", None)  # (the kernel's socket table has no SYNs)
        self._half_open = half_open(t) if half_open is not None else 0
        if settle or self._series_version is None:
            self._series_version = (tl.version, _clock(tl))
        self.refresh_if_changed()

    @property
    def counts(self) -> dict[str, int]:
        """Endpoints per state as the bar shows them (as of its cursor)."""
        return self._counts

    def watch_show_all(self) -> None:
        self.refresh(layout=True)

    def _series_for(self, buckets: int, states: tuple[str, ...]) -> dict[str, list[int]]:
        """``states``' counts sampled at ``buckets`` even times over the whole capture (one
        compiled pass over the transitions per state: ``counter_series``), kept until the data
        or the width changes."""
        tl = self.tl
        if tl is None or tl.first_ts is None or tl.last_ts is None or buckets <= 0:
            return {}
        key = (self._series_version, buckets)
        if key != self._series_key:
            self._series, self._series_key = {}, key
        for state in states:
            if state not in self._series:
                self._series[state] = list(tl.counter_series(STATE_NAMES.index(state), buckets, _clock(tl)))
        return self._series

    def _cursor_bucket(self, buckets: int) -> int:
        tl = self.tl
        if tl is None or tl.first_ts is None or tl.last_ts is None or self.pos is None:
            return buckets
        span = _clock(tl) - tl.first_ts
        if span <= 0:
            return buckets
        return int((self.pos - tl.first_ts) / span * buckets)

    def get_content_height(self, container, viewport, width: int) -> int:
        return 2 if self.show_all else 1

    def build(self) -> Text:
        width = self.content_region.width or self.size.width
        lines = [self._line(MAIN_STATES, width, 0)]
        if self.show_all:
            lines.append(self._line(OTHER_STATES, width, 1))
        out = Text("\n").join(lines)
        out.no_wrap = True
        out.overflow = "crop"
        return out

    def _line(self, states: tuple[str, ...], width: int, line_no: int) -> Text:
        counts = self._counts or {s: 0 for s in STATE_NAMES[1:]}
        gap = 3
        half_open = f"half-open {self._half_open}" if line_no == 0 and self._half_open else ""
        fixed = sum(len(s) + 1 + len(str(counts.get(s, 0))) for s in states) + gap * (len(states) - 1)
        if half_open:
            fixed += gap + len(half_open)
        spark_w = min(SPARK_MAX, (width - fixed - len(states)) // len(states))
        if spark_w < 3:
            spark_w = 0
        series = self._series_for(spark_w, states) if spark_w else {}
        cur = self._cursor_bucket(spark_w)
        label_st = self.get_component_rich_style("counters--label", partial=True)
        value_st = self.get_component_rich_style("counters--value", partial=True)
        future_st = self.get_component_rich_style("counters--future", partial=True)
        text = Text()
        if line_no == 0:
            self._spans = [s for s in self._spans if s[0] != 0]
        else:
            self._spans = [s for s in self._spans if s[0] != 1]
        for i, state in enumerate(states):
            if i:
                text.append(" " * gap)
            x0 = len(text)
            fam_st: Style = self.get_component_rich_style(f"counters--state-{STATE_FAMILY[state]}", partial=True)
            text.append(state, label_st + fam_st)
            text.append(" ")
            text.append(str(counts.get(state, 0)), value_st)
            if spark_w:
                values = series.get(state, [])
                spark = sparkline(values)
                text.append(" ")
                text.append(spark[: cur + 1], fam_st)
                text.append(spark[cur + 1 :], future_st)
            self._spans.append((line_no, x0, len(text), state))
        if half_open:
            text.append(" " * gap)
            x0 = len(text)
            text.append(half_open, self.get_component_rich_style("counters--half-open", partial=True))
            self._spans.append((line_no, x0, len(text), "SYN_SENT"))
        return text

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for line, x0, x1, state in self._spans:
            if line == offset.y and x0 <= offset.x < x1:
                self.post_message(self.StateClicked(self, state))
                return


def _clock(tl) -> float:
    """The sparklines' end: the timeline's clock (a live capture's moves on without packets),
    or the newest time of a table that has none (the kernel's sockets)."""
    return getattr(tl, "clock", None) or tl.last_ts
