"""The simulator as a frame source, like a capture file or a live interface.

:class:`SimSource` implements :class:`tcpview.sources.base.Source`: it yields the same
records ``(frame, ts, linktype, data, 0, len, len)`` a capture reader yields, so simulated
frames take the same path through the decoder and the tracker as captured ones.

Two ways to run: *instant* (every frame at once, with its simulated timestamp -- for
``tcpview simulate -w`` and tests) and *paced* (for ``tcpview demo``: a frame is handed out
when the wall clock reaches its simulated time divided by ``speed``). Timestamps are always
simulated capture time, so a paced demo and an instant run produce the same records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from .engine import Engine
from .loop import SECOND
from .network import SimFrame
from .scenario import Scenario

LINKTYPE_ETHERNET = 1
IDLE_SLICE = 0.05  # seconds: how often a paced source wakes while waiting for the next frame


class SimSource:
    """A source of simulated frames.

    Args:
        scenario: the scenario to run.
        seed: random seed (the scenario's own default when None).
        speed: simulated seconds per wall-clock second when paced.
        paced: hand frames out in (scaled) real time; otherwise as fast as they are built.
        max_packets: stop after this many frames (None: no limit).
        max_seconds: stop after this much simulated time (None: no limit).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        speed: float = 1.0,
        paced: bool = True,
        max_packets: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.scenario = scenario
        self.seed = scenario.model.seed if seed is None else seed
        self.paced = paced
        self.live = paced
        self.name = f"demo {scenario.name}" if paced else f"simulate {scenario.name}"
        self.max_packets = max_packets
        self.max_seconds = max_seconds
        self.engine: Engine | None = None
        self.emitted = 0
        self.finished = False
        self.error: str | None = None  # a scenario runs to its end; kept for the Source protocol
        self._speed = speed
        self._anchor: tuple[float, int] | None = None  # (wall clock, simulated us) at last re-anchor
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self._speed

    def set_speed(self, speed: float) -> None:
        """Change the pace while running (the timeline continues from where it is)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            if self._anchor is not None:
                self._anchor = (time.monotonic(), self._sim_now_locked())
            self._speed = speed

    def _sim_now_locked(self) -> int:
        assert self._anchor is not None
        wall0, sim0 = self._anchor
        return sim0 + round((time.monotonic() - wall0) * self._speed * SECOND)

    def sim_frames(self) -> Iterator[SimFrame]:
        """The simulator's frames with what it knows about each (no pacing)."""
        self.engine = Engine(self.scenario, self.seed)
        for f in self.engine.frames(self.max_packets, self.max_seconds):
            self.emitted += 1
            yield f
        self.finished = True

    def frames(self, stop: threading.Event) -> Iterator[tuple | None]:
        """Yield records until the scenario ends or ``stop`` is set; ``None`` while waiting."""
        lt = LINKTYPE_ETHERNET
        for f in self.sim_frames():
            if stop.is_set():
                return
            if self.paced:
                with self._lock:
                    if self._anchor is None:
                        self._anchor = (time.monotonic(), f.t_us)
                while True:
                    with self._lock:
                        wall0, sim0 = self._anchor
                        due = wall0 + (f.t_us - sim0) / SECOND / self._speed
                    delay = due - time.monotonic()
                    if delay <= 0:
                        break
                    yield None
                    if stop.wait(min(delay, IDLE_SLICE)):
                        return
            data = f.data
            yield (f.frame, f.ts, lt, data, 0, len(data), len(data))

    def progress(self) -> float | None:
        """Unknown for a simulation (it is live)."""
        return None

    def status(self) -> dict[str, int]:
        """Frames handed out and connections opened so far."""
        e = self.engine
        return {"frames": self.emitted, "connections": e.nconns if e is not None else 0}
