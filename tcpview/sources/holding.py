"""When a command whose answer comes at the end of a stream analyses what the stream brought.

``tcpdump -U -w - | tcpview summary -`` prints once the stream ends. Where every CPU is busy,
any CPU its consumer takes is taken from the producer too, however low the consumer's priority:
measured under connection churn on 2 cores (``benchmarks/stream_bench.py``, 6 rounds), a
process that only burned as much CPU as the viewer took (27-31% of a CPU), beside ``cat``, made
tcpdump drop in 3 runs of 6; ``summary -`` dropped in 4, ``cat`` alone in none; at 10% of a CPU
that process made it drop in 5 runs of 5. The reading costs tcpdump little (a relay empties the
pipe as ``cat`` does); the analysis costs it more.

So such a command holds what comes (the relay keeps it in memory) and analyses it when that
costs the producer nothing, or when it must; it even waits so before it loads its engine
(:func:`tcpview.sources.drain.wait_to_analyse`), half a second of CPU. :class:`Holding` says
go once

- a CPU is spare: a whole CPU's worth was idle over the last :data:`POLL` seconds (a host
  with CPUs to spare never waits; a little idle time is not spare: it is what lets a producer
  that wakes run at once, and a busy loop taking a quarter of a CPU beside ``cat`` made tcpdump
  drop where the churn left a sixth of the two CPUs idle);
- the producer paused: nothing new came for :data:`QUIET` seconds (a trickle, a lull, the end);
- what waits reached the bound: from then on the analysis keeps pace with what comes above it,
  and the relay, whose own bound is twice as high, never holds the producer back.

A viewer shows the stream as it comes, so it never waits (it yields in other ways: its threads'
priorities, short turns on the CPU).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

POLL = 0.05
"""How often (seconds) the decision is made again while waiting; the window the idle CPU is
measured over."""
QUIET = 0.2
"""Seconds without new bytes after which the producer counts as paused."""
SPARE = 1.0
"""How many CPUs' worth must have been idle over the window for the analysis to go on."""


def idle_seconds() -> float | None:
    """CPU time every CPU spent idle since boot, in seconds (``/proc/stat``; None where there
    is none)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None


class Holding:
    """Whether to analyse a stream now (see the module's docstring).

    Args:
        bound: bytes waiting at which the analysis goes on whatever the CPUs do.
        idle: the idle CPU time source (seconds, or None where unknown: then it never waits).
        clock: the monotonic clock.
    """

    def __init__(self, bound: int, idle: Callable[[], float | None] = idle_seconds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound
        self._idle, self._clock = idle, clock
        self._at = clock()
        self._idle_at = idle()
        self._received = -1
        self._grew_at = self._at
        self._go = self._idle_at is None

    def go(self, received: int, waiting: int) -> bool:
        """Whether to analyse now, given every byte the producer wrote so far (``received``)
        and those not analysed yet (``waiting``); decided again once :data:`POLL` passed."""
        now = self._clock()
        if received != self._received:
            self._received, self._grew_at = received, now
        if waiting >= self.bound or now - self._grew_at >= QUIET:
            return True
        if now - self._at < POLL:
            return self._go
        idle = self._idle()
        if idle is not None and self._idle_at is not None:
            self._go = idle - self._idle_at >= SPARE * (now - self._at)
        else:
            self._go = True
        self._at, self._idle_at = now, idle
        return self._go

    def wait(self, counts: Callable[[], tuple[int, int]], timeout: float | None = None,
             given_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait until :meth:`go` says go (True), ``timeout`` seconds pass (None: no limit) or
        ``given_up()`` (False). ``counts()``: every byte the producer wrote so far, and those not
        analysed yet."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            if self.go(*counts()):
                return True
            left = POLL if deadline is None else deadline - self._clock()
            if left <= 0 or given_up():
                return False
            time.sleep(min(POLL, left))
