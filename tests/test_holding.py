"""A command whose answer comes at the end of a stream holds what comes while its producer
needs the CPUs (tcpview.sources.holding): the decision, and a real relayed pipe held and let go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from helpers import cli, many_connections, pcap_bytes, reap, wait_until

from tcpview.sources.drain import Drain
from tcpview.sources.holding import POLL, QUIET, SPARE, Holding, idle_seconds

STEP = POLL * 1.1
"""A window of the decision (a little over :data:`POLL`, whatever the clock's rounding)."""


class Clock:
    """A clock and an idle-CPU count the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.idle = 50.0

    def tick(self, seconds: float, idle_share: float) -> None:
        """``seconds`` pass, during which ``idle_share`` of one CPU was idle."""
        self.now += seconds
        self.idle += seconds * idle_share


def _holding(clock: Clock, bound: int = 1000) -> Holding:
    return Holding(bound, idle=lambda: clock.idle, clock=lambda: clock.now)


def test_busy_cpus_and_a_writing_producer_hold_the_analysis():
    c = Clock()
    h = _holding(c)
    received = 0
    for _ in range(20):  # a second of a producer writing, no CPU idle
        c.tick(STEP, 0.0)
        received += 10
        assert not h.go(received, received)


def test_a_spare_cpu_lets_it_go_and_busy_ones_hold_it_again():
    c = Clock()
    h = _holding(c)
    c.tick(STEP, 1.5)  # one and a half CPUs idle
    assert h.go(10, 10)
    c.tick(STEP / 3, 0.0)
    assert h.go(20, 20)  # within a window the decision stands
    c.tick(STEP, SPARE * 0.8)  # less than the spare share idle over the new window
    assert not h.go(30, 30)
    c.tick(STEP, SPARE * 1.2)
    assert h.go(40, 40)


def test_a_paused_producer_lets_it_go():
    c = Clock()
    h = _holding(c)
    c.tick(STEP, 0.0)
    assert not h.go(10, 10)
    c.tick(QUIET / 2, 0.0)
    assert not h.go(10, 10)  # not paused long enough yet
    c.tick(QUIET / 2 + 0.01, 0.0)
    assert h.go(10, 10)  # nothing new for QUIET: a lull, or the end
    c.tick(STEP, 0.0)
    assert not h.go(11, 11)  # it writes again


def test_the_bound_lets_it_go_whatever_the_cpus_do():
    c = Clock()
    h = _holding(c, bound=1000)
    c.tick(STEP, 0.0)
    assert not h.go(999, 999)
    c.tick(0.001, 0.0)
    assert h.go(1000, 1000)
    c.tick(0.001, 0.0)
    assert not h.go(1400, 600)  # analysed down below the bound, on busy CPUs: held again


def test_without_an_idle_count_it_never_waits():
    h = Holding(1000, idle=lambda: None)
    assert h.go(10, 10)
    assert h.go(20, 20)


def test_the_idle_count_is_the_systems():
    a = idle_seconds()
    assert a is not None and a > 0
    time.sleep(0.3)
    b = idle_seconds()
    assert b is not None and b >= a  # it only grows (each CPU's idle time since boot)


def _write(w: int, data: bytes, pause_after: int, pause: float) -> None:
    """Write ``data`` in 1 KB writes, resting ``pause`` once ``pause_after`` bytes went."""
    for i in range(0, len(data), 1000):
        if i == pause_after:
            time.sleep(pause)
        os.write(w, data[i:i + 1000])
        time.sleep(0.0005)
    os.close(w)


def _take_all(drain: Drain) -> bytes:
    got = b""
    while (chunk := drain.take(1.0)) != b"":
        got += chunk or b""
    return got


def test_a_relayed_stream_is_held_while_the_producer_writes_and_taken_whole_after():
    """A real pipe, emptied by a relay; CPUs that never idle (the idle count stands still)."""
    r, w = os.pipe()
    drain = Drain(r, hold=1 << 20)
    assert drain.relay is not None
    drain.holding = Holding(1 << 19, idle=lambda: 0.0)  # never a spare CPU
    data = bytes(range(256)) * 1200  # 300 KB, under the bound, then a pause of the producer
    t = threading.Thread(target=_write, args=(w, data, 150_000, 4 * QUIET), daemon=True)
    try:
        t.start()
        assert drain.take(QUIET / 2) is None  # the producer writes: nothing is taken
        assert wait_until(lambda: drain.waiting() > 0, 5)  # it is held meanwhile
        assert _take_all(drain) == data  # all of it, in order, once the producer paused or ended
    finally:
        t.join(10)
        drain.close()
        os.close(r)


def test_a_relayed_stream_past_the_bound_is_taken_while_the_producer_writes():
    r, w = os.pipe()
    drain = Drain(r, hold=1 << 20)
    drain.holding = Holding(64 << 10, idle=lambda: 0.0)  # busy CPUs, a 64 KiB bound
    data = bytes(range(256)) * 2000  # 512 KB written steadily over a third of a second or more
    t = threading.Thread(target=_write, args=(w, data, -1, 0.0), daemon=True)
    try:
        t.start()
        early = b""
        while t.is_alive():
            early += drain.take(0.05) or b""
        assert len(early) > 0  # taken while the producer still wrote: the bound let it go
        assert early + _take_all(drain) == data
    finally:
        t.join(10)
        drain.close()
        os.close(r)


def test_a_summary_of_a_stream_holds_and_answers_whole():
    """``summary -`` (its answer comes at the end) of a stream through a pipe: every
    connection is in its answer."""
    data = pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(40))
    rc, out, err = cli("summary", "-", "--json", input=data)
    assert rc == 0, err
    assert len(json.loads(out)["connections"]) == 40


def test_a_first_ctrl_c_ends_the_stream_and_the_command_answers_with_what_came():
    """``tcpdump -U -w - | tcpview summary -`` and Ctrl-C (here the command's own process: no
    keeper): the stream ends there even though its pipe stays open, and the answer holds every
    connection that came before it, as ``summary -i`` answers at a Ctrl-C."""
    from livehelp import env_with_repo, tcpview_cmd

    view = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(env_with_repo(), TCPVIEW_APART="0"))
    try:
        view.stdin.write(pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(12)))
        view.stdin.flush()
        time.sleep(1.5)  # (past its start: the handler is set)
        view.send_signal(signal.SIGINT)
        view.wait(timeout=60)  # stdin still open: only the Ctrl-C ends the stream
        assert view.returncode == 0, view.stderr.read()
        assert len(json.loads(view.stdout.read())["connections"]) == 12
    finally:
        reap(view)
