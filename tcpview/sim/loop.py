"""Simulated time: the clock, the event queue and the seeded random source of one run.

This is the bottom of the simulator: it imports nothing else from ``tcpview.sim``. Times are
integer microseconds of simulated time (the resolution of a pcap), so they never drift.
"""

from __future__ import annotations

import heapq
import itertools
import random

EPOCH = 1_700_000_000
"""Capture time of simulated time zero (seconds since 1970): 2023-11-14 22:13:20 UTC."""
SECOND = 1_000_000
"""One second of simulated time, in microseconds."""


class Loop:
    """The event loop's state: simulated time ``now``, the events due later, and ``rng``.

    The engine runs it (:meth:`tcpview.sim.engine.Engine.frames` pops the events in order);
    hosts and endpoints only read ``now``, draw from ``rng`` and :meth:`schedule` timers.

    Args:
        seed: seeds the one ``random.Random`` behind ISNs, ports, sizes and picks.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0
        self.heap: list = []
        self._order = itertools.count()

    def schedule(self, t: int, fn, *args) -> None:
        """Call ``fn(*args)`` at simulated time ``t`` (microseconds; ties keep their order)."""
        heapq.heappush(self.heap, (t, next(self._order), fn, args))
