"""The cursor: where in capture time every view looks, and how it moves (no Textual here).

The cursor is a capture time. Every view shows the world as of the cursor: segments with
``ts <= cursor``, states after them. ``Player.query_time()`` is ``None`` while the cursor
follows the newest data (a live source, or a file still being read with the cursor at its
end); the store answers ``None`` as "now", which is its cheapest query.

Moving the cursor never recomputes anything in the store; it only changes which prefix of
the timeline the views read (see ``tcpview.engine.timeline.timeline``).
"""

from __future__ import annotations

import bisect
from array import array

MAX = float("inf")
"""The "max" speed: ignore capture timing and move a fixed share of the segments per tick."""

SPEEDS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0, MAX)
"""Playback speeds, slowest first; ``+`` and ``-`` move along this list."""

MAX_STEPS_PER_TICK = 0.01
"""At "max" speed one tick moves this fraction of all segments (at least one segment)."""


def speed_label(speed: float) -> str:
    """``1.0x``, ``0.25x``, ``1000x`` or ``max``."""
    if speed == MAX:
        return "max"
    if speed >= 100:
        return f"{speed:.0f}x"
    if speed < 1:
        return f"{speed:.3g}x"
    return f"{speed:.1f}x"


class SegmentTimes:
    """Capture times of every TCP segment, in arrival order, for stepping one at a time.

    Appended by the thread that feeds the tracker, read by the UI thread. Times are kept
    non-decreasing (a timestamp that goes backwards is recorded as the previous one), so
    bisect works; the store does the same with its transition log.
    """

    def __init__(self) -> None:
        self.ts = array("d")

    def append(self, ts: float) -> None:
        """Record the time of the next segment."""
        a = self.ts
        if a and ts < a[-1]:
            ts = a[-1]
        a.append(ts)

    def __len__(self) -> int:
        return len(self.ts)

    def next_after(self, t: float, k: int = 1) -> float | None:
        """The time of the k-th distinct segment time after ``t`` (None when there is none)."""
        a = self.ts
        n = len(a)
        for _ in range(max(1, k)):
            i = bisect.bisect_right(a, t, 0, n)
            if i >= n:
                return None if _ == 0 else t
            t = a[i]
        return t

    def prev_before(self, t: float) -> float | None:
        """The time of the last segment strictly before ``t`` (None when there is none)."""
        a = self.ts
        i = bisect.bisect_left(a, t, 0, len(a))
        return a[i - 1] if i > 0 else None

    def index_at(self, t: float | None) -> int:
        """How many segments have a time at or before ``t`` (all when None)."""
        a = self.ts
        if t is None:
            return len(a)
        return bisect.bisect_right(a, t, 0, len(a))


class TimelineTimes:
    """:class:`SegmentTimes` read from a timeline's segment table (what the pump gives the
    player): the times grow as the timeline is published, with nothing kept twice."""

    def __init__(self, tl) -> None:
        self.tl = tl

    @property
    def ts(self):
        """The segment times published so far (non-decreasing)."""
        v = self.tl.view()
        return v.segs.ts[: v.n_seg]

    def __len__(self) -> int:
        return self.tl.view().n_seg

    def next_after(self, t: float, k: int = 1) -> float | None:
        """The time of the k-th distinct segment time after ``t`` (None when there is none)."""
        v = self.tl.view()
        n = v.n_seg
        for step in range(max(1, k)):
            i = self.tl.seg_index_at(t, v)
            if i >= n:
                return None if step == 0 else t
            t = float(v.segs[i].ts)
        return t

    def prev_before(self, t: float) -> float | None:
        """The time of the last segment strictly before ``t`` (None when there is none)."""
        v = self.tl.view()
        i = self.tl.seg_index_before(t, v)
        return float(v.segs[i - 1].ts) if i > 0 else None

    def index_at(self, t: float | None) -> int:
        """How many segments have a time at or before ``t`` (all when None)."""
        return self.tl.seg_index_at(t)


class Player:
    """Play, pause, speed, step and seek over a growing timeline.

    Args:
        times: segment times of the source (grows while the source is read).
        live: the source is live (capture, simulator, stream): the cursor follows the
            newest data; pausing freezes the view, playing from there replays the past at
            the speed (back to live once it catches up), and :meth:`to_end` goes back to live.
        speed: the starting speed (1x when None).

    The bounds are the first and last segment times; ``loaded`` says the source has ended,
    so playing can stop at the end instead of waiting for more.
    """

    def __init__(self, times: SegmentTimes | TimelineTimes, live: bool = False,
                 speed: float | None = None) -> None:
        self.times = times
        self.live = live
        self.t: float | None = None
        """Cursor time; None while following the newest data."""
        self.playing = False
        self.speed: float = 1.0 if speed is None else speed
        """Capture seconds played per wall-clock second (``MAX``: a share of the segments per
        tick); any positive number, ``+`` and ``-`` move to the next of :data:`SPEEDS`."""
        self.loaded = False
        self.first: float | None = None
        self.last: float | None = None
        self.horizon: float | None = None

    # -- bounds ------------------------------------------------------------------------------
    def set_bounds(self, first: float | None, last: float | None, horizon: float | None = None) -> None:
        """Update the capture's first and last times (called as data arrives), and the
        horizon: the time before which the timeline has let rows go (a memory budget)."""
        self.first, self.last, self.horizon = first, last, horizon
        if horizon is not None and self.t is not None and self.t < horizon:
            self.t = horizon

    @property
    def duration(self) -> float:
        """Seconds between the first and last segment (0 when fewer than two)."""
        if self.first is None or self.last is None:
            return 0.0
        return max(0.0, self.last - self.first)

    @property
    def following(self) -> bool:
        """True while the cursor sits on the newest data and moves with it."""
        return self.t is None

    @property
    def speed_index(self) -> int:
        """The index in :data:`SPEEDS` of the speed (of the fastest listed one not above it)."""
        return max(0, bisect.bisect_right(SPEEDS, self.speed) - 1)

    @speed_index.setter
    def speed_index(self, index: int) -> None:
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, index))]

    def position(self) -> float | None:
        """The cursor as a capture time (the newest time while following)."""
        if self.t is None:
            return self.last
        return self.t

    def offset(self) -> float:
        """Seconds from the first segment to the cursor."""
        pos = self.position()
        if pos is None or self.first is None:
            return 0.0
        return max(0.0, pos - self.first)

    def fraction(self) -> float:
        """Where the cursor is, from 0.0 (first segment) to 1.0 (last)."""
        d = self.duration
        if d <= 0:
            return 1.0 if self.last is not None else 0.0
        return min(1.0, max(0.0, self.offset() / d))

    def query_time(self) -> float | None:
        """The time to query the store with: None means "now" (following)."""
        return self.t

    # -- play / pause / speed ---------------------------------------------------------------
    def toggle(self) -> None:
        """Space: play / pause. Live and following: freeze the view at now; from there it
        plays the past at the speed (:meth:`to_end` goes back to live)."""
        if self.live and self.t is None:
            self.t = self.last
            self.playing = False
            return
        if self.playing:
            self.playing = False
            return
        pos = self.position()
        if pos is None:
            return
        at_end = self.last is not None and pos >= self.last
        if self.loaded and not self.live and at_end and self.first is not None:
            self.t = self.first  # at the end: play again from the start
        else:
            self.t = pos
        self.playing = True

    def pause(self) -> None:
        """Stop playing; a following cursor stays where the newest data is now."""
        self.playing = False
        if self.t is None and not self.live:
            self.t = self.last

    def faster(self) -> None:
        """The next listed speed up (up to max)."""
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])

    def slower(self) -> None:
        """The next listed speed down (down to 0.1x)."""
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])

    def tick(self, dt: float) -> bool:
        """Advance a playing cursor by ``dt`` wall seconds; returns True if it moved."""
        if not self.playing or self.t is None or self.last is None:
            return False
        old = self.t
        if self.speed == MAX:
            k = max(1, int(len(self.times) * MAX_STEPS_PER_TICK))
            nxt = self.times.next_after(self.t, k)
            self.t = self.last if nxt is None else nxt
        else:
            self.t = self.t + dt * self.speed
        if self.t >= self.last:
            self.t = self.last
            if self.live:  # the replay of the past caught up with now: live again
                self.t = None
                self.playing = False
                return True
            if self.loaded:
                self.playing = False
        return self.t != old

    # -- step / seek --------------------------------------------------------------------------
    def step(self, n: int) -> None:
        """Move the cursor ``n`` segments forward (n > 0) or back (n < 0); pauses playback."""
        pos = self.position()
        if pos is None:
            return
        self.playing = False
        t = pos
        if n > 0:
            nxt = self.times.next_after(t, n)
            if nxt is not None:
                t = nxt
        else:
            for _ in range(-n):
                prev = self.times.prev_before(t)
                if prev is None:
                    # before the first segment: an empty world
                    t = (self.first - 1e-6) if self.first is not None and t >= self.first else t
                    break
                t = prev
        self._set(t)

    def seek(self, t: float) -> None:
        """Put the cursor at capture time ``t`` (clamped to the bounds)."""
        if self.first is None or self.last is None:
            return
        t = min(max(t, self.first), self.last)
        self._set(t)

    def seek_offset(self, seconds: float) -> None:
        """Put the cursor ``seconds`` after the first segment."""
        if self.first is not None:
            self.seek(self.first + seconds)

    def seek_fraction(self, f: float) -> None:
        """Put the cursor at fraction ``f`` (0..1) of the capture's duration."""
        if self.first is None:
            return
        self.seek(self.first + self.duration * min(1.0, max(0.0, f)))

    def jump(self, f: float) -> None:
        """Move the cursor by ``f`` of the duration (``[`` and ``]`` use +-0.1)."""
        pos = self.position()
        if pos is None:
            return
        self.seek(pos + self.duration * f)

    def to_start(self) -> None:
        """Cursor to the first segment."""
        if self.first is not None:
            self._set(self.first)

    def rewind(self) -> None:
        """Cursor just before the first segment, paused: nothing has happened yet (where a
        scenario starts, so that space plays it and ``→`` steps through it)."""
        self.playing = False
        if self.first is not None:
            self._set(self.first - 1e-6)

    def to_end(self) -> None:
        """Cursor to the newest segment; it then follows new data."""
        self.t = None
        self.playing = False

    def _set(self, t: float) -> None:
        # A replay cursor that reaches the end of a still-growing file keeps its place; only
        # a live source re-attaches to "now" (via to_end / toggle), so seeking stays put.
        # Nothing before the horizon is kept: the cursor goes no further back.
        self.t = t if self.horizon is None else max(t, self.horizon)
