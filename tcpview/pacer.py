"""Short turns on the CPU while a producer streams into the viewer.

``tcpdump -U -w - | tcpview replay -`` where the CPUs are busy: tcpdump's kernel buffer holds
tens of milliseconds of a busy link, and tcpdump must run that often or drop packets. What
holds it back is not how much CPU its consumer takes but for how long the consumer keeps a CPU
busy without a pause.

Measured under connection churn on 2 cores (``perf sched timehist``): when tcpdump wakes on a
CPU where two of the churn's processes hand the CPU back and forth, it can wait there for tens
of milliseconds, until a CPU that falls idle pulls it over; a consumer that keeps the other CPU
busy meanwhile leaves none to fall idle. Beside ``tcpdump -U -w - | cat`` (8 s each, two runs),
a process spinning in turns of 1 to 10 ms with rests of 2 to 40 ms cost tcpdump 0 to 0.17% of
its packets; one spinning without rests 5% and 16% (at the lowest priority there is), in turns
of 100 ms with rests of 400 ms 0.9% and 3.7%. The viewer's own thread works in such long turns:
its start (imports, the first screen: about a second of CPU), and each refresh, which reads
every connection (tens of milliseconds at a few hundred thousand). With the refresh held back
while a stream poured in, tcpdump dropped nothing in 3 runs of 3 and waited at most 6 to 17 ms
for a CPU; with it, it dropped 805 to 99,159 packets and waited up to 79 ms.

So, while pacing is on (:func:`start_pacing` until :func:`stop_pacing`), the main thread rests
as long as it worked, at most :data:`LONGEST_REST`, once it has taken :data:`RUN` of CPU since
its last rest: a timer of the process's CPU time (``ITIMER_PROF``) interrupts it every
:data:`RUN`, whatever Python code it runs (a call into compiled code ends first: a kernel takes
a few milliseconds, numpy's sort of 300,000 rows about 17). Other threads rest at :func:`pace`
calls: each import of a module not loaded yet is one, and so is each compiled kernel loaded
from the cache (the thread that reads and analyses the stream starts with dozens of each);
past its start, that thread's turns are short.

Every command that reads a stream on standard input starts paced (``tcpview.resident.client``):
a headless one's start (imports, the engine: half a second of CPU in one go) made tcpdump drop,
at a terminal, in the first half-second of the stream. A command whose own thread reads the
stream (``summary -``) stops pacing at its first take (``Drain.take``): that thread then runs
in the idle class, and its turns are the engine's batches. The viewer reads on another thread,
and its own thread stays paced until the stream ends.

What it gained, measured with ``benchmarks/stream_bench.py`` beside ``cat`` and ``summary -``,
is in the README's figures ("A stream on stdin under churn").
"""

from __future__ import annotations

import sys
import threading
import time

RUN = 0.005
"""The CPU time (seconds) a thread takes before it rests."""
LONGEST_REST = 0.05
"""The longest rest (seconds)."""

_on = False
_timed = False  # the process's CPU timer is set
_since = threading.local()  # each thread's CPU time at its last rest


def start_pacing() -> None:
    """From now on, the main thread rests every :data:`RUN` of CPU (where the system has a
    timer of the process's CPU time and this is the main thread; else it rests at its
    :func:`pace` calls alone), :func:`pace` rests, and so does every thread at its imports of
    modules not loaded yet."""
    global _on, _timed
    _on = True
    if not any(isinstance(f, _PacedImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _PacedImports())
    if _timed or threading.current_thread() is not threading.main_thread():
        return
    import signal

    if not hasattr(signal, "setitimer"):
        return
    signal.signal(signal.SIGPROF, _on_timer)
    signal.setitimer(signal.ITIMER_PROF, RUN, RUN)
    _timed = True


def stop_pacing() -> None:
    """From now on, no rest (the timer is stopped, and imports are no pace points: any thread
    may call this)."""
    global _on, _timed
    _on = False
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PacedImports)]
    if _timed:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0)
        if threading.current_thread() is threading.main_thread():  # (the only one that may)
            # ignored, not the default (which ends the process), should one be on its way still
            signal.signal(signal.SIGPROF, signal.SIG_IGN)
        _timed = False


def pacing() -> bool:
    """Whether threads rest (:func:`start_pacing` was called, and not :func:`stop_pacing`)."""
    return _on


def pace() -> None:
    """A point where the calling thread may rest: while pacing is on, once it has taken
    :data:`RUN` of CPU since its last rest, it sleeps as long as it worked (at most
    :data:`LONGEST_REST`). Cheap when pacing is off, or before a turn is over."""
    if not _on:
        return
    now = time.thread_time()
    worked = now - getattr(_since, "cpu", 0.0)  # (a thread's first: all it took)
    if worked >= RUN:
        _since.cpu = now  # first: a timer's signal during the rest finds the turn begun, no rest in it
        time.sleep(min(LONGEST_REST, worked))


def _on_timer(_signum: int, _frame: object) -> None:
    """The process took another :data:`RUN` of CPU (run on the main thread, between two of
    its Python instructions)."""
    pace()


class _PacedImports:
    """A finder of modules that finds none: each import of a module not loaded yet is a
    :func:`pace` point, on whatever thread (the stream's reader starts with dozens)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        pace()
