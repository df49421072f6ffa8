"""The title and player bar: source, play state and speed, position / duration, timeline.

Click or drag on the timeline to seek. While a file is still being read, the bar says how
much has been read; what is read can already be browsed and played.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.widget import Widget

from ...engine.player import Player, speed_label
from ...textutil import safe
from .. import fmt
from ..messages import WidgetMessage
from .repaint import PaintedText

BAR_MIN = 8
BEHIND_BYTES = 4 << 20
"""A stream's reader that has this much of its producer's output still to read says so."""


class PlayerBar(PaintedText, Widget):
    """Where the cursor is in the capture, and what the player is doing."""

    COMPONENT_CLASSES = {
        "player--brand",
        "player--source",
        "player--state",
        "player--live",
        "player--time",
        "player--done",
        "player--todo",
        "player--gone",
        "player--head",
        "player--loading",
    }

    DEFAULT_CSS = """
    PlayerBar { height: 1; background: $panel; padding: 0 1; }
    PlayerBar > .player--brand { text-style: bold; color: $text-primary; }
    PlayerBar > .player--source { color: $text; }
    PlayerBar > .player--state { text-style: bold; color: $text-accent; }
    PlayerBar > .player--live { text-style: bold; color: $text-error; }
    PlayerBar > .player--time { color: $text; }
    PlayerBar > .player--done { color: $primary; }
    PlayerBar > .player--todo { color: $text-muted; }
    PlayerBar > .player--gone { color: $text-disabled; }
    PlayerBar > .player--head { color: $text-accent; }
    PlayerBar > .player--loading { color: $text-warning; }
    """

    @dataclass
    class SeekRequested(WidgetMessage):
        """The user clicked or dragged on the timeline at ``fraction`` (0..1)."""

        fraction: float
        """Where on the timeline, 0 (start) to 1 (end)."""

    def __init__(self, player: Player, source_name: str, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.player = player
        self.source_name = safe(source_name)
        self.read_share: float | None = None
        """Fraction of the file read so far, while reading (None when done or unknown). Not
        named ``loading``: that is Textual's, and covers the widget with a loading indicator."""
        self.reading = False
        self.ended = False
        """A live source (a stream, a followed file) ended: no LIVE any more."""
        self.behind = 0
        """Bytes a stream's producer wrote that are not read yet (said from :data:`BEHIND_BYTES`)."""
        self.lost: int | None = None
        """Packets the capturing program says it dropped (a pcapng's statistics), if it says."""
        self.preparing = False
        """The engine is compiled for the first time (it runs slowly meanwhile)."""
        self.hint = ""
        """Said after the play state until the user plays (e.g. that space plays)."""
        self._bar: tuple[int, int] = (0, 0)  # x range of the timeline in content coordinates
        self._dragging = False

    @property
    def far_behind(self) -> bool:
        """Whether the stream's reader is behind by :data:`BEHIND_BYTES` or more (it says so)."""
        return self.behind >= BEHIND_BYTES

    def build(self) -> Text:
        p = self.player
        width = self.content_region.width or self.size.width
        st = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="crop")
        text.append("tcpview ", st("player--brand", partial=True))
        name_w = max(8, width // 4)
        name = self.source_name if len(self.source_name) <= name_w else fmt.short_source(self.source_name)
        text.append(fmt.ellipsize_left(name, name_w), st("player--source", partial=True))
        text.append("  ")
        if p.live and p.following:
            text.append("■ ENDED" if self.ended else "● LIVE", st("player--live", partial=True))
        elif p.playing:
            text.append(f"▶ {speed_label(p.speed)}", st("player--state", partial=True))
        else:
            text.append(f"‖ {speed_label(p.speed)}", st("player--state", partial=True))
        if self.hint:
            text.append(f"  {self.hint}", st("player--state", partial=True))
        text.append("  ")
        dur = p.duration
        text.append(f"{fmt.offset(p.offset(), dur)} / {fmt.offset(dur, dur)}", st("player--time", partial=True))
        text.append("  ")
        gone = 0.0  # the share of the timeline that has left (a memory budget)
        if p.horizon is not None and p.first is not None and dur > 0:
            gone = min(1.0, max(0.0, (p.horizon - p.first) / dur))
        tails = self._tails()
        # the longest that fits (80 columns take a short one); the timeline gets what is left
        tail = next((t for t in tails if len(text) + len(t) <= width), tails[-1])
        bar_w = width - len(text) - len(tail)
        if bar_w >= BAR_MIN:
            x0 = len(text)
            done = p.fraction() * bar_w
            full = int(done)
            head = "╸" if done - full >= 0.5 and full < bar_w else ""
            cut = min(full, int(gone * bar_w))
            text.append("┄" * cut, st("player--gone", partial=True))
            text.append("━" * (full - cut), st("player--done", partial=True))
            if head:
                text.append(head, st("player--head", partial=True))
            rest = bar_w - full - len(head)
            cut_rest = max(0, min(rest, int(gone * bar_w) - full))
            text.append("┄" * cut_rest, st("player--gone", partial=True))
            text.append("─" * (rest - cut_rest), st("player--todo", partial=True))
            self._bar = (x0, x0 + bar_w)
        else:
            self._bar = (0, 0)
        busy = self.reading or self.preparing or self.lost or self.far_behind
        text.append(tail, st("player--loading" if busy else "player--time", partial=True))
        return text

    def _tails(self) -> list[str]:
        """What the bar says after its timeline (how the reading goes), longest first: each
        says the same in fewer columns."""
        p = self.player
        if self.preparing:
            states = [" preparing the engine (first run)…", " compiling (first run)…", " compiling…"]
        elif self.reading:
            states = [f" read {self.read_share * 100:.0f}%" if self.read_share is not None else " reading"]
        else:
            states = [f" {p.fraction() * 100:3.0f}%"]
        behind = f" {self.behind / (1 << 20):.0f} MiB behind" if self.far_behind else ""
        lost = [f" {self.lost:,} dropped by the capture", f" {self.lost:,} dropped"] if self.lost else [""]
        return [lost[0] + behind + states[0], *(lost[-1] + behind + state for state in states)]

    # -- mouse: click or drag to seek -----------------------------------------------------
    def _seek_at(self, x: int) -> None:
        x0, x1 = self._bar
        if x1 <= x0:
            return
        self.post_message(self.SeekRequested(self, min(1.0, max(0.0, (x - x0) / max(1, x1 - x0 - 1)))))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x0, x1 = self._bar
        if x0 <= offset.x < x1:
            self._dragging = True
            self.capture_mouse()
            self._seek_at(offset.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            offset = event.get_content_offset_capture(self)
            self._seek_at(offset.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()
