"""The "why" line under the ladder: why the states changed at the ladder's cursor row, and what
the row's analysis flags mean."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...engine.analysis.flag_meanings import explain_flags
from ...engine.analysis.why import explain
from ...engine.output.ladder import LadderRow
from ...engine.timeline.timeline import Timeline


def row_transitions(tl: Timeline, cid: int, row: LadderRow) -> list[tuple]:
    """``(side, old, new, why)`` of the state changes a ladder row shows (none once the
    connection has left the timeline)."""
    c = tl.conns.get(cid)
    if c is None:
        return []
    if row.seg < 0:
        return [(side, old, new, why) for ts, frame, side, old, new, why in c.trans
                if frame == 0 and ts == row.ts]
    return [(side, old, new, why) for _ts, frame, side, old, new, why in c.trans if frame == row.frame]


class WhyLine(Static):
    """One to three lines saying why the states changed at the selected ladder row, then what
    its tags (``[retrans]``, ``[dup-ack #2]``...) mean."""

    DEFAULT_CSS = """
    WhyLine { height: auto; max-height: 3; color: $text; padding: 0 1; background: $boost; }
    WhyLine.-empty { display: none; }
    """

    explanation: str = ""
    """The sentence shown (empty when hidden)."""

    def explain_row(self, tl: Timeline | None, cid: int | None, row: LadderRow | None) -> str:
        """Show the explanation for ``row`` (hidden when the row changed no state and has no tag)."""
        text = ""
        if tl is not None and cid is not None and row is not None:
            trans = row_transitions(tl, cid, row)
            sender = None if row.seg < 0 else (0 if row.c2s else 1)
            text = " ".join(t for t in (explain(trans, sender), explain_flags(row.analysis, row.anomaly, row.dup_ack))
                            if t)
        self.update(Text(text))
        self.set_class(not text, "-empty")
        self.explanation = text
        return text
