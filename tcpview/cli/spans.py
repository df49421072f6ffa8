"""Several captures read as one whose times are far apart: a hint to line them up.

Captures of unrelated moments (another day, a host whose clock was never set) merged by time
make one timeline that spans the gap between them, years at worst, nearly all of it empty. When
the captures read (at their offsets) leave a gap of more than :data:`FAR_APART` seconds, the
commands say so in one line, naming the ``--offset FILE=SECONDS`` that would start the later
given capture where the other starts: on standard error for the headless commands, as a
notification in the viewer (``tcpview replay A B``; the command line hands it this function).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FAR_APART = 86400.0
"""Captures whose time ranges (after their offsets) are this many seconds apart or more are
worth a hint: a day."""


def capture_spans(tl: Any) -> list[tuple[float, float] | None]:
    """Each merged capture's first and last TCP segment's time (offsets applied, as the
    timeline has them), in the order the captures were given; None for one without any (or
    whose segments left with a memory budget). Empty when ``tl`` is not several captures."""
    caps = tl.captures
    if caps is None:
        return []
    v = tl.view()
    segs = v.segs[: v.n_seg]
    of = caps.indices(segs["frame"])
    ts = segs["ts"]
    spans: list[tuple[float, float] | None] = []
    for i in range(len(caps.files)):
        rows = np.flatnonzero(of == i)
        spans.append((float(ts[rows[0]]), float(ts[rows[-1]])) if len(rows) else None)
    return spans


def _apart(seconds: float) -> str:
    days = seconds / 86400.0
    return f"{days:,.0f} days" if days >= 2 else f"{seconds / 3600.0:.0f} hours"


def far_apart_hint(tl: Any) -> str | None:
    """One line when the merged captures of ``tl`` leave a gap of :data:`FAR_APART` or more
    between them (the first such gap, in time order): which capture ends how long before which
    starts, and the ``--offset`` that starts the later given one where the other starts
    (its offset now plus the difference of their starts). None when they are close or overlap."""
    spans = capture_spans(tl)
    known = sorted((s[0], s[1], i) for i, s in enumerate(spans) if s is not None)
    if len(known) < 2:
        return None
    files, offsets = tl.captures.files, tl.captures.offsets
    end, before = known[0][1], known[0][2]
    for first, last, i in known[1:]:
        if first - end >= FAR_APART:
            move, other = max(i, before), min(i, before)  # the first capture's clock stays (--offset refuses it)
            shift = offsets[move] + (spans[other][0] - spans[move][0])  # type: ignore[index]
            return (f"{files[i]} starts {_apart(first - end)} after {files[before]} ends: if they were captured "
                    f"together, --offset {files[move]}={shift:.3f} starts it where {files[other]} starts")
        if last > end:
            end, before = last, i
    return None
