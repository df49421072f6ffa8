"""While a producer streams into tcpview, a thread that works in long stretches rests at its
pace points as long as it worked (tcpview.pacer): a CPU kept busy for long makes the producer
(tcpdump) wait when it wakes, and drop packets. These drive real threads that spin."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from livehelp import env_with_repo

from tcpview.pacer import LONGEST_REST, RUN, pace, pacing, start_pacing, stop_pacing


def _spin(seconds: float) -> None:
    """Take ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _work_in_steps(steps: int, step: float) -> tuple[float, list[float]]:
    """``steps`` steps of ``step`` seconds of CPU each, with a pace point after each, on a
    fresh thread (after a first pace point, where it rests for the little it took to start):
    the CPU it took, and how long each pace point kept it."""
    out: dict[str, object] = {}

    def run() -> None:
        pace()
        held: list[float] = []
        cpu0 = time.thread_time()
        for _ in range(steps):
            _spin(step)
            t = time.monotonic()
            pace()
            held.append(time.monotonic() - t)
        out["cpu"], out["held"] = time.thread_time() - cpu0, held

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    return out["cpu"], out["held"]  # type: ignore[return-value]


_SPIN = """
import time
def spin(s):
    \"\"\"Take s seconds of this thread's CPU; how long that took.\"\"\"
    t, end = time.monotonic(), time.thread_time() + s
    while time.thread_time() < end:
        pass
    return time.monotonic() - t
"""


def _python(code: str) -> list[float]:
    """Run ``code`` (after :data:`_SPIN`) in a Python of its own: the numbers it printed."""
    got = subprocess.run([sys.executable, "-c", _SPIN + textwrap.dedent(code)], capture_output=True, text=True,
                         env=env_with_repo(), timeout=60)
    assert got.returncode == 0, got.stderr
    return [float(x) for x in got.stdout.split()]


@pytest.fixture
def paced():
    before = signal.getsignal(signal.SIGPROF)
    start_pacing()
    yield
    stop_pacing()
    # stop_pacing leaves SIGPROF ignored (a timer's last signal may be on its way), and an
    # ignored signal stays ignored in every program this test process starts after
    signal.signal(signal.SIGPROF, before)


def test_a_thread_rests_at_its_pace_points_as_long_as_it_worked(paced):
    cpu, held = _work_in_steps(100, 0.002)  # 0.2 s of CPU, a pace point every 2 ms of it
    rests = [h for h in held if h >= 0.002]
    # a rest once a turn (RUN) is over, as long as the turn: about as long as it worked in all
    assert len(rests) >= 100 * 0.002 / (2 * RUN), len(rests)
    assert sum(held) >= 0.5 * cpu, (sum(held), cpu)
    assert max(held) < LONGEST_REST + 0.05


def test_a_long_step_rests_no_longer_than_the_longest_rest(paced):
    _cpu, held = _work_in_steps(2, 0.2)
    assert LONGEST_REST * 0.9 <= max(held) < LONGEST_REST + 0.05, held


def test_no_rest_before_a_turn_is_over_nor_once_pacing_stopped(paced):
    _cpu, held = _work_in_steps(15, RUN / 20)  # three quarters of a turn in all
    assert max(held) < RUN / 2, held
    stop_pacing()
    assert not pacing()
    _cpu, held = _work_in_steps(100, 0.002)
    assert sum(held) < 0.02, sum(held)


def test_the_main_thread_rests_whatever_python_code_it_runs():
    """A program's start and a viewer's refresh are code that calls no pace point (imports,
    Textual's, numpy's): on the main thread, a timer of the process's CPU time makes every
    instruction one, until pacing stops."""
    code = """
        import signal, time
        from tcpview.pacer import start_pacing, stop_pacing
        start_pacing()
        paced = spin(0.3)
        armed = signal.getitimer(signal.ITIMER_PROF)[1]
        stop_pacing()
        free = spin(0.3)
        print(paced, armed, free, signal.getitimer(signal.ITIMER_PROF)[1])
    """
    paced, armed, free, after = _python(code)
    assert armed == RUN and after == 0
    assert paced >= 0.5, paced  # 0.3 s of CPU, and about as long at rest
    assert free < paced - 0.15, (free, paced)  # no rest once stopped (a busy machine only slows both)


def test_imports_are_pace_points_on_every_thread(tmp_path):
    """The thread that reads a stream starts with dozens of imports: each import of a module
    not loaded yet is a point where it rests once it has worked its turn, and an import of
    one loaded already is not (this thread is not the main one: no timer marks its turns)."""
    (tmp_path / "fresh_module.py").write_text("X = 1\n")
    code = f"""
        import sys, threading, time
        sys.path.insert(0, {str(tmp_path)!r})
        from tcpview.pacer import start_pacing
        out = []
        def run():
            start_pacing()
            spin(0.02)
            t = time.monotonic()
            import fresh_module
            out.append(time.monotonic() - t)
            t = time.monotonic()
            import fresh_module
            out.append(time.monotonic() - t)
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        print(*out)
    """
    new, again = _python(code)
    assert new >= 0.015, new  # it rested for about the 20 ms it had worked
    assert again < 0.005, again


def test_the_main_thread_is_not_kept_resting_by_the_others_cpu():
    """The timer counts the whole process's CPU: while another thread spins, its signals come
    during the main thread's rests too, and must not make them longer (a rest within a rest)."""
    code = """
        import threading, time
        from tcpview.pacer import start_pacing, stop_pacing
        stop = threading.Event()
        def busy():
            while not stop.is_set():
                pass
        start_pacing()
        threading.Thread(target=busy, daemon=True).start()
        took = spin(0.1)
        stop.set()
        stop_pacing()
        print(took)
    """
    # 0.1 s of CPU, shared with the spinning thread (the GIL): about as long again at rest, and
    # the GIL's turns; a rest within each rest would take far longer
    (took,) = _python(code)
    assert took < 1.5, took
