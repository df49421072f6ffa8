"""What joining two vantage points found, kept beside the timeline it was read into.

When two captures hold the same connections seen at two points (the client's side and the
server's), :func:`tcpview.engine.analysis.vantage.join_captures` pairs each segment's copies,
finds the clocks' offset, and the timeline is read with one copy of each segment: the one its
sender's side saw, at its sending time. :class:`Vantages` keeps, for each frame of that
timeline, how long the segment took to reach the other side (its one-way delay) or that it
never did (lost between the captures), and what was learnt of each capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...sources.merge import CaptureMap
from ..core import columns as col


@dataclass
class CaptureClock:
    """One capture of several, as the join saw it."""

    file: str
    offset: float
    """Seconds added to its time stamps to put them on the first capture's clock."""
    vantage: str | None = None
    """``client`` or ``server`` (the end it is near, for every joined connection), ``mixed``,
    or None when it shares no connection with the first capture."""
    bounds: tuple[float | None, float | None] = (None, None)
    """The offsets the traffic allows: no segment arrives before it was sent (None: unbounded)."""
    given: bool = False
    """The offset was given (``--offset``), not estimated."""
    pairs: int = 0
    """Segments seen at both this capture and the first."""

    def as_dict(self) -> dict:
        """The JSON shape of ``summary --json``'s ``captures``."""
        return {"file": self.file, "offset": round(self.offset, 9), "vantage": self.vantage,
                "offset_bounds": [None if b is None else round(b, 9) for b in self.bounds],
                "offset_given": self.given, "segments_seen_by_both": self.pairs}


@dataclass
class Vantages:
    """The one-way delay of each frame of the joined timeline to the other vantage point (None
    when it was not seen there, or its connection is not joined) and whether it was lost
    between them; frames are found by their capture and number there (so it answers while
    the timeline is still being read).

    Args:
        captures: what was learnt of each capture, in the order given.
        frames: the timeline's map of frames to captures.
        sent: keys ``capture << 32 | frame in it`` of the frames the join knows of, sorted.
        owd: their one-way delays (NaN: lost between the captures).
        lost: whether each was lost between the captures.
    """

    captures: list[CaptureClock]
    frames: CaptureMap
    sent: np.ndarray
    owd: np.ndarray
    lost: np.ndarray

    def delay(self, frame: int) -> float | None:
        """The one-way delay of frame ``frame`` (seconds), or None if it is not known."""
        d = float(self._of(np.array([frame]))[0][0])
        return None if math.isnan(d) else d

    def is_lost(self, frame: int) -> bool:
        """Whether frame ``frame`` was seen leaving one vantage point and never arriving at the other."""
        return bool(self._of(np.array([frame]))[1][0])

    def _of(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(one-way delays, lost) of many frames."""
        f = np.asarray(frames, dtype=np.int64)
        keys = (self.frames.indices(f) << 32) | self.frames.originals(f)
        owd = np.full(len(f), np.nan)
        lost = np.zeros(len(f), dtype=bool)
        if not len(self.sent):
            return owd, lost
        at = np.minimum(np.searchsorted(self.sent, keys), len(self.sent) - 1)
        hit = self.sent[at] == keys
        owd[hit] = self.owd[at[hit]]
        lost[hit] = self.lost[at[hit]]
        return owd, lost

    def connections(self, segs, ids: list[int]) -> dict[int, dict]:
        """``lost_between_captures`` ({"c2s": n, "s2c": n}) and the one-way delays' minimum
        per direction, for each connection of ``ids`` (segment rows ``segs``) that both
        captures saw."""
        want = np.unique(np.asarray(ids, dtype=np.int64))
        rows = np.flatnonzero(np.isin(segs.conn, want))
        s = segs[rows]
        owd, lost = self._of(s.frame)
        # per connection and direction: a slot of its own
        slot = np.searchsorted(want, s.conn.astype(np.int64)) * 2 + col.seg_dir(s.fl.astype(np.int64))
        n = 2 * len(want)
        known = np.isfinite(owd)
        n_lost = np.bincount(slot[lost], minlength=n)
        mins = np.full(n, np.inf)
        np.minimum.at(mins, slot[known], owd[known])
        seen = (np.bincount(slot[known], minlength=n) + n_lost).reshape(-1, 2).sum(axis=1) > 0
        out = {}
        for k in np.flatnonzero(seen).tolist():
            m = [None if math.isinf(x) else round(float(x), 9) for x in mins[2 * k:2 * k + 2]]
            out[int(want[k])] = {"lost_between_captures": {"c2s": int(n_lost[2 * k]), "s2c": int(n_lost[2 * k + 1])},
                                 "min_one_way_delay": {"c2s": m[0], "s2c": m[1]}}
        return out

    def series(self, segs, rows: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray]:
        """(send times, one-way delays) of one direction's segments among ``rows`` that both
        vantage points saw."""
        s = segs[rows]
        owd, _lost = self._of(s.frame)
        keep = (col.seg_dir(s.fl.astype(np.int64)) == direction) & np.isfinite(owd)
        return s.ts[keep].astype(np.float64), owd[keep]


def captures_summary(tl) -> list[dict] | None:
    """``summary --json``'s ``captures`` for a timeline of several captures (None for one):
    each capture's file, offset and vantage (all 0 and null when no two share connections)."""
    caps = tl.captures
    if caps is None:
        return None
    va = tl.vantages
    if va is not None:
        return [c.as_dict() for c in va.captures]
    return [CaptureClock(f, float(o), given=bool(o)).as_dict() for f, o in zip(caps.files, caps.offsets, strict=True)]


def connections_between(tl, ids: list[int]) -> dict[int, dict]:
    """For each connection of ``ids`` that both vantage points saw: ``lost_between_captures``
    and ``min_one_way_delay`` (see :meth:`Vantages.connections`)."""
    va = tl.vantages
    if va is None or not ids:
        return {}
    v = tl.view()
    return va.connections(v.segs[: v.n_seg], ids)
