"""The breakdown bar above the ladder: where the selected connection's time went, as of the
cursor (``tcpview diagnose``'s categories), and its verdict, on one line."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import Static

from ...engine.analysis.diagnosis import CATEGORIES, LABELS, SHORT, TOO_SHORT, breakdown_at, sender_at
from ...engine.analysis.kernel_check import disagreement, kernel_short, kernel_slot
from ...engine.timeline.timeline import Timeline

COLOURS = {
    "handshake": "$tcp-syn", "server_response": "$tcp-fin", "application": "$tcp-data",
    "receive_window": "$tcp-window", "congestion": "$tcp-note", "loss_recovery": "$tcp-loss",
    "bottleneck": "$tcp-anomaly", "idle": "$text-muted", "delayed_ack": "$tcp-ack",
}
"""Each category's colour, a theme variable (widgets never hard-code colours)."""


class SlowBar(Static):
    """``slow: receive window 93% of 1.28 s ▕█████████▏ recv-window 93% idle 5% loss 1%``: the
    selected connection's time split by cause, the largest first; ``w`` / ``W`` go through the
    evidence in the ladder."""

    COMPONENT_CLASSES = {f"slow-bar--{name}" for name in CATEGORIES} | {"slow-bar--label", "slow-bar--kernel",
                                                                         "slow-bar--differ"}

    DEFAULT_CSS = "SlowBar { height: 1; padding: 0 1; background: $boost; }\n" + "".join(
        f"SlowBar > .slow-bar--{name} {{ color: {colour}; }}\n" for name, colour in COLOURS.items()
    ) + ("SlowBar > .slow-bar--label { text-style: bold; }\n"
         "SlowBar > .slow-bar--kernel { color: $text-muted; }\n"
         "SlowBar > .slow-bar--differ { text-style: bold; color: $tcp-anomaly; }\n")

    shown: tuple | None = None
    """What it shows: (verdict, shares, duration, the kernel slot or None), or None."""
    kernel: Callable[[int], dict] | None = None
    """Connection id -> the chrono counters read of its ends on this host (a live capture's,
    set by the live viewer): the kernel's split of the sender's time is shown beside."""

    def show(self, tl: Timeline | None, cid: int | None, t: float | None) -> None:
        """Show connection ``cid``'s breakdown as of time t (cheap when nothing changed)."""
        self.display = tl is not None and cid is not None  # no connection: the ladder says so
        got: tuple | None = None
        if tl is not None and cid is not None:
            got = breakdown_at(tl, cid, t)
            if got is not None and self.kernel is not None:
                got = (*got, kernel_slot(self.kernel(cid), sender_at(tl, cid, t)))
        if got != self.shown:
            self.shown = got
            self.refresh()

    def render(self) -> Text:
        """The line at the width it has now (drawn again when it is resized)."""
        return self.render_breakdown(self.shown, max(20, self.size.width - 2))

    def render_breakdown(self, got: tuple | None, width: int) -> Text:
        """The line for ``(verdict, shares, duration)`` in ``width`` cells."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if got is None:
            text.append("slow: no segment yet", self.get_component_rich_style("slow-bar--idle", partial=True))
            return text
        verdict, shares, duration = got[:3]
        kernel = got[3] if len(got) > 3 else None
        label = self.get_component_rich_style("slow-bar--label", partial=True)
        if verdict == TOO_SHORT or duration <= 0:
            text.append(f"slow: {LABELS[TOO_SHORT]}", label)
            return text
        head = f"slow: {LABELS[verdict]} {100 * shares[verdict] / duration:.0f}% of {_secs(duration)} "
        text.append(head, label)
        cells = max(10, min(40, width // 3))
        ranked = sorted((name for name in CATEGORIES if shares[name] > 0), key=lambda n: -shares[n])
        used = 0
        bar = Text("▕")
        for k, name in enumerate(ranked):
            n = cells - used if k == len(ranked) - 1 else round(cells * shares[name] / duration)
            n = max(0, min(n, cells - used))
            bar.append("█" * n, self.get_component_rich_style(f"slow-bar--{name}", partial=True))
            used += n
        bar.append("▏ ")
        text.append_text(bar)
        if kernel is not None:  # the kernel's own split beside the inference; ≠ where they differ
            differ = disagreement(kernel, verdict) is not None
            text.append(("≠ " if differ else "") + kernel_short(kernel) + "  ",
                        self.get_component_rich_style("slow-bar--differ" if differ else "slow-bar--kernel",
                                                      partial=True))
        for name in ranked:
            pct = 100 * shares[name] / duration
            if pct >= 0.5:
                text.append(f"{SHORT[name]} {pct:.0f}%  ",
                            self.get_component_rich_style(f"slow-bar--{name}", partial=True))
        return text


def _secs(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"
