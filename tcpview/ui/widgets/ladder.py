"""The ladder (sequence diagram) of the selected connection, virtualized.

Segments run top to bottom in capture time, the client's column on the left and the
server's on the right, one arrow per segment labelled with its flags and relative
seq/ack/len/win. Where an endpoint's state changes, the new state is written in its column.
Rows are built in blocks from the store (``tcpview.engine.output.ladder.ladder_window``) only when they
come on screen, so a connection with a million segments scrolls as one with ten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.reactive import var
from textual.strip import Strip

from ...engine.output.ladder import (
    ARROW_ENDS,
    KERNEL_ROW,
    TAG_KINDS,
    LadderRow,
    arrow,
    fit_label,
    ladder_count,
    ladder_window,
    tags,
)
from ...engine.timeline.timeline import Timeline
from .. import fmt
from ..messages import WidgetMessage
from ..styles import SEGMENT_KINDS, STATE_FAMILY, segment_kind
from .virtual_list import VirtualList, cursor_bindings, list_classes, list_css

BLOCK = 64
TIME_W = 10
STATE_W = 12

class Ladder(VirtualList):
    """The selected connection's segments as a ladder diagram at the cursor time."""

    FOLLOWS_END = True

    BINDINGS = [
        *cursor_bindings("ladder", "segment", "First segment", "Last segment",
                         last_tooltip="Last segment (and follow new ones)"),
        Binding("enter", "inspect", "Detail", id="ladder.inspect", tooltip="Dissect this segment's frame"),
        Binding("n", "flagged(1)", "Next flag", show=False, id="ladder.next_flagged",
                tooltip="Next segment with an analysis flag (retransmission, duplicate ACK, zero window...)"),
        Binding("N", "flagged(-1)", "Previous flag", show=False, id="ladder.previous_flagged",
                tooltip="Previous segment with an analysis flag"),
        Binding("escape", "back", "Table", show=False, id="ladder.back", tooltip="Back to the connection table"),
    ]

    COMPONENT_CLASSES = list_classes("ladder", "time", "timer", "kernel", "empty", *SEGMENT_KINDS,
                                     *(f"tag-{kind}" for kind in TAG_KINDS))

    DEFAULT_CSS = list_css("Ladder", "ladder") + """
    Ladder > .ladder--time { color: $text-muted; }
    Ladder > .ladder--timer { color: $text-muted; text-style: italic; }
    Ladder > .ladder--kernel { color: $accent; text-style: italic reverse; }
    Ladder > .ladder--tag-loss { color: $tcp-loss; text-style: bold; }
    Ladder > .ladder--tag-window { color: $tcp-window; text-style: bold; }
    Ladder > .ladder--tag-note { color: $tcp-note; text-style: bold; }
    Ladder > .ladder--tag-anomaly { color: $tcp-anomaly; text-style: bold; }
    Ladder > .ladder--empty { color: $text-muted; }
    Ladder > .ladder--syn { color: $tcp-syn; }
    Ladder > .ladder--fin { color: $tcp-fin; }
    Ladder > .ladder--rst { color: $tcp-rst; text-style: bold; }
    Ladder > .ladder--data { color: $tcp-data; }
    Ladder > .ladder--ack { color: $tcp-ack; }
    """

    @dataclass
    class RowHighlighted(WidgetMessage):
        """The ladder cursor is on another row (``row`` None: no rows)."""

        cid: int | None
        """The connection it shows."""
        row: LadderRow | None
        """The row under the cursor."""

    @dataclass
    class RowSelected(WidgetMessage):
        """Enter (or a double click) on a segment row: the user wants its frame in full."""

        cid: int
        """The connection it shows."""
        row: LadderRow
        """The segment's row."""

    @dataclass
    class BackRequested(WidgetMessage):
        """Escape: the user wants the connection table again."""

    absolute: var[bool] = var(False)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.tl: Timeline | None = None
        self.cid: int | None = None
        self.t: float | None = None
        self.count = 0
        self._blocks: LRUCache[int, list[LadderRow]] = LRUCache(64)
        self._key: tuple | None = None
        self._last_reported: tuple | None = None
        self.kernel: Callable[[int], list[tuple[float, int, int]]] | None = None
        """With ``--kernel``: a connection id -> the kernel's own state changes of its
        endpoints on this host, (time, side, state), shown as rows of their own."""
        self._kern: list[tuple[float, int, int]] = []

    # -- data ---------------------------------------------------------------------------------
    def show(self, tl: Timeline, cid: int | None, t: float | None) -> None:
        """Show connection ``cid`` as of time t (None: now). Cheap when nothing changed."""
        self.tl = tl
        kern = self.kernel(cid) if self.kernel is not None and cid is not None else []
        key = (cid, t, tl.version, self.absolute, len(kern))
        if key == self._key:
            return
        self._key = key
        at_end = self.follow or self.is_vertical_scroll_end
        if cid != self.cid:
            self.cid = cid
            self._blocks.clear()
            self._cache.clear()
            self.follow = True
            self.count = 0
        old = self.count
        self.t = t
        if kern != self._kern:  # a kernel row comes in among the rows already built
            self._kern = kern
            self._blocks.clear()
            self._cache.clear()
        self.count = ladder_count(tl, cid, t, kern) if cid is not None else 0
        if self.count != old:
            # rows before the old end stay the same; the end itself may gain a timer row
            keep = max(0, min(old, self.count) - 1)
            for b in list(self._blocks.keys()):
                if (b + 1) * BLOCK > keep:
                    self._blocks.discard(b)
            self._cache.clear()
        self.sync_size()
        if self.follow:
            self.cursor = max(0, self.count - 1)
        elif self.cursor >= self.count:
            self.cursor = max(0, self.count - 1)
        else:
            self.cursor_moved()
        if at_end and self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.repaint_changed()

    def row(self, index: int) -> LadderRow | None:
        """The row at ``index`` (None when out of range)."""
        if not 0 <= index < self.count:
            return None
        block = self._block(index // BLOCK)
        i = index % BLOCK
        return block[i] if i < len(block) else None

    def _block(self, b: int) -> list[LadderRow]:
        block = self._blocks.get(b)
        if block is None:
            assert self.tl is not None and self.cid is not None
            block = ladder_window(self.tl, self.cid, self.t, self.absolute, b * BLOCK, BLOCK, self._kern)
            self._blocks[b] = block
        return block

    def watch_absolute(self) -> None:
        self._blocks.clear()
        self._cache.clear()
        self._key = None
        if self.tl is not None:
            self.show(self.tl, self.cid, self.t)

    # -- the list -----------------------------------------------------------------------------
    def row_count(self) -> int:
        return self.count

    def cursor_moved(self) -> None:
        row = self.row(self.cursor) if self.count else None
        key = (self.cid, self.cursor, self.count, row.frame if row else None, row.ts if row else None)
        if key != self._last_reported:
            self._last_reported = key
            self.post_message(self.RowHighlighted(self, self.cid, row))

    def action_flagged(self, step: int) -> None:
        """n / N: the cursor to the next (previous) segment with an analysis flag."""
        row = self.row(self.cursor)
        k = self.cursor
        while row is not None and row.seg < 0 and k > 0:  # a timer's row: from the segment before it
            k -= 1
            row = self.row(k)
        at = row.seg if row is not None and row.seg >= 0 else -1
        if not self.to_flagged(at, step):
            self.notify(self._no_flag_text(step), markup=False)

    def _no_flag_text(self, step: int) -> str:
        """Why n / N found nothing: no flag in the connection at all, or none that way."""
        c = self.tl.conns.get(self.cid) if self.tl is not None and self.cid is not None else None
        if c is None:
            return "no connection selected"
        flagged = len(c.flagged(c.count_at(self.t)))
        if not flagged:
            upto = " up to the cursor" if self.t is not None else ""
            return (f"#{self.cid} has no segment with an analysis flag{upto} (retransmission, duplicate "
                    "ACK, zero window...)")
        where = "after" if step > 0 else "before"
        back = "N goes back" if step > 0 else "n goes on"
        return f"no flagged segment {where} this one in #{self.cid} ({flagged} in all; {back})"

    def to_flagged(self, at: int, step: int) -> bool:
        """Put the cursor on the first flagged segment after segment ``at`` (step 1) or the
        last before it (step -1); False when there is none."""
        c = self.tl.conns.get(self.cid) if self.tl is not None else None
        if c is None:
            return False
        flagged = c.flagged(c.count_at(self.t))
        pick = flagged[flagged > at] if step > 0 else flagged[flagged < at][::-1]
        if not len(pick):
            return False
        return self._to_seg(int(pick[0]))

    def _to_seg(self, seg: int) -> bool:
        """Put the cursor on the row of the connection's segment ``seg``."""
        for index in range(seg, min(self.count, seg + 64)):  # timer rows come before some segments
            got = self.row(index)
            if got is not None and got.seg == seg:
                self.move_cursor(index)
                return True
        return False

    def evidence(self, step: int) -> None:
        """w / W: the cursor to the next (previous) segment the diagnosis's evidence points at
        (``tcpview diagnose``: where each episode of its verdict begins), or say there is none."""
        from ...engine.analysis.diagnosis import evidence_frames

        tl, cid = self.tl, self.cid
        c = tl.conns.get(cid) if tl is not None and cid is not None else None
        if c is None or tl is None or cid is None:
            self.notify("no connection selected", markup=False)
            return
        frames = evidence_frames(tl, cid, self.t)
        rows = c.rows[: c.count_at(self.t)]
        hits = np.flatnonzero(np.isin(c.view.segs.frame[rows], frames))
        row = self.row(self.cursor)
        at = row.seg if row is not None and row.seg >= 0 else -1
        pick = hits[hits > at] if step > 0 else hits[hits < (at if at >= 0 else 1 << 62)][::-1]
        if not len(pick) or not self._to_seg(int(pick[0])):
            where = "after" if step > 0 else "before"
            self.notify(f"no evidence {where} this segment in #{self.cid} ({len(hits)} in all)" if len(hits)
                        else f"#{self.cid} has no evidence to show yet", markup=False)

    def action_inspect(self) -> None:
        """Enter: dissect the segment under the cursor."""
        row = self.row(self.cursor)
        if row is not None and row.seg >= 0 and self.cid is not None:
            self.post_message(self.RowSelected(self, self.cid, row))
        elif row is not None:  # a timer's row (TIME_WAIT ended, say): no frame to dissect
            self.notify("no packet on this row: it is a timer's", markup=False)

    def action_back(self) -> None:
        """Escape: back to the table."""
        self.post_message(self.BackRequested(self))

    def row_clicked(self, index: int, chain: int) -> None:
        if chain >= 2:
            self.action_inspect()

    # -- rendering ----------------------------------------------------------------------------
    def _arrow_width(self, width: int) -> int:
        return max(12, width - TIME_W - 2 * STATE_W - 4)

    def render_empty(self, y: int, width: int, base: Style) -> Strip:
        if y != 1 or (self.count and self.tl is not None):
            return Strip.blank(width, base)
        if self.cid is None or self.tl is None:
            text = " no connection selected" if self.cid is None else ""
        else:
            text = " no segments yet at this time"
        return Strip([Segment(text, base + self._style("ladder--empty"))]).crop_extend(0, width, base)

    def render_row(self, index: int, width: int, base: Style, is_cursor: bool) -> Strip:
        row = self.row(index)
        return Strip.blank(width, base) if row is None else self._render_row(row, width, base, is_cursor)

    def render_header(self, width: int, base: Style) -> Strip:
        st = base + self._style("ladder--header")
        aw = self._arrow_width(width)
        text = f"{'time':>{TIME_W}} {'client':<{STATE_W}} {'':<{aw}} {'server':<{STATE_W}}"
        return Strip([Segment(text, st)]).crop_extend(0, width, base)

    def _render_row(self, row: LadderRow, width: int, base: Style, is_cursor: bool) -> Strip:
        if is_cursor:
            base = base + self._style("ladder--cursor")
        tl = self.tl
        assert tl is not None and self.cid is not None
        c = tl.conns.get(self.cid)
        if c is None:  # it left the timeline (a memory budget): the next update shows another
            return Strip.blank(width, base)
        t0 = c.first_ts
        aw = self._arrow_width(width)
        rel = row.ts - t0
        ts_text = f"{rel:.6f}" if rel < 1000 else f"{rel:.1f}"
        segs = [Segment(f"{ts_text:>{TIME_W}} ", base + self._style("ladder--time"))]
        if row.seg == KERNEL_ROW:  # the kernel's own state: its colours, apart from the inferred ones
            kst = base + self._style("ladder--kernel")
            for name in (row.client_state, None, row.server_state):
                if name is None:
                    segs.append(Segment(" " + f"{'· ' + row.label + ' ·':^{aw}}" + " ", base + self._style("ladder--timer")))
                else:
                    segs.append(Segment(fmt.ellipsize(name, STATE_W).ljust(STATE_W), kst if name else base))
            return Strip(segs, TIME_W + 1 + STATE_W + 1 + aw + 1 + STATE_W).crop_extend(0, width, base).simplify()
        segs.append(self._state_seg(row.client_state, base))
        segs.append(Segment(" ", base))
        if row.seg < 0:
            label = "(timer expired)"
            segs.append(Segment(f"{label:^{aw}}", base + self._style("ladder--timer")))
        else:
            row_tags = tags(row)
            extra = " ".join(f"[{text}]" for text, _kind in row_tags)
            # the tags matter more than win= and ack=: those go first when the arrow is short
            text = arrow(fit_label(row.label, extra, aw - ARROW_ENDS), aw, row.c2s)
            kind_st = base + self._style(f"ladder--{segment_kind(row.flags, row.plen)}")
            at = 0
            for tag, kind in row_tags:  # each tag in its kind's colour, where the arrow kept it
                i = text.find(f"[{tag}]", at)
                if i < 0:
                    break
                segs += [Segment(text[at:i], kind_st),
                         Segment(text[i:i + len(tag) + 2], base + self._style(f"ladder--tag-{kind}"))]
                at = i + len(tag) + 2
            segs.append(Segment(text[at:], kind_st))
        segs.append(Segment(" ", base))
        segs.append(self._state_seg(row.server_state, base))
        used = TIME_W + 1 + STATE_W + 1 + aw + 1 + STATE_W
        return Strip(segs, used).crop_extend(0, width, base).simplify()

    def _state_seg(self, name: str, base: Style) -> Segment:
        text = fmt.ellipsize(name, STATE_W).ljust(STATE_W)
        if not name:
            return Segment(text, base)
        fam = STATE_FAMILY.get(name, "closed")
        return Segment(text, base + self._style(f"ladder--state-{fam}"))
