"""Short turns on the CPU while a producer streams into this process.

``tcpdump -U -w - | tcpview replay -`` where the CPUs are busy: tcpdump's kernel buffer holds
tens of milliseconds of a busy link (about 20 ms of a loopback's churn, which the kernel hands
it twice), and tcpdump must run that often or drop packets. What holds it back is not how much
CPU its consumer takes but for how long the consumer keeps a CPU busy without a pause.

Measured under connection churn on 2 cores (``perf sched timehist``): when tcpdump wakes on a
CPU where two of the churn's processes hand the CPU back and forth, it can wait there for tens
of milliseconds, until a CPU that falls idle pulls it over. A consumer that keeps the other CPU
busy meanwhile leaves no CPU to fall idle. Beside ``tcpdump -U -w - | cat`` (8 s each, two
runs), a process spinning in turns of 1 to 10 ms with rests of 2 to 40 ms cost tcpdump 0 to
0.17% of its packets; one spinning without rests 5% and 16% (at the lowest priority there is);
turns of 100 ms with rests of 400 ms 0.9% and 3.7%. The viewer's refresh reads every
connection, tens of milliseconds at a few hundred thousand: with it held back while a stream
poured in, tcpdump dropped nothing in 3 runs of 3, and its longest wait for a CPU was 6 to
17 ms; with it, 805 to 99,159 packets, and waits of up to 79 ms.

So a thread that works in long stretches calls :func:`pace` between its steps. While pacing is
on (:func:`start_pacing`, until :func:`stop_pacing`), it rests there once it has taken
:data:`RUN` of CPU since its last rest, as long as it worked (at most :data:`LONGEST_REST`).
"""

from __future__ import annotations

import sys
import threading
import time

RUN = 0.005
"""The CPU time (seconds) a thread takes before it rests at its next :func:`pace`."""
LONGEST_REST = 0.05
"""The longest rest (seconds)."""

_on = False
_since = threading.local()  # each thread's CPU time at its last rest


def start_pacing() -> None:
    """From now on, :func:`pace` rests."""
    global _on
    _on = True


def stop_pacing() -> None:
    """From now on, :func:`pace` does nothing."""
    global _on
    _on = False


def pacing() -> bool:
    """Whether :func:`pace` rests."""
    return _on


def pace() -> None:
    """A point where the calling thread may rest: while pacing is on, once it has taken
    :data:`RUN` of CPU since its last rest, it sleeps as long as it worked (at most
    :data:`LONGEST_REST`). Cheap when pacing is off, or before a turn is over."""
    if not _on:
        return
    worked = time.thread_time() - getattr(_since, "cpu", 0.0)  # (a thread's first: all it took)
    if worked >= RUN:
        time.sleep(min(LONGEST_REST, worked))
        _since.cpu = time.thread_time()


class _PacedImports:
    """A finder of modules that finds none: every import of a module not loaded yet is a
    :func:`pace` point (a program's start is mostly imports)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        pace()


def pace_imports() -> None:
    """From now on, each import of a module not loaded yet is a point where the importing
    thread may rest (:func:`pace`)."""
    if not any(isinstance(f, _PacedImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _PacedImports())
