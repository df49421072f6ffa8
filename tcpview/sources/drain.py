"""A pipe read as fast as its producer writes, into memory, taken by the consumer in large batches.

``tcpdump -U -w - | tcpview replay -``: tcpdump writes each packet into the pipe as it comes,
and the pipe holds 64 KiB to 1 MiB, milliseconds of a busy link. A reader that stops for
longer (a batch the engine works through, a screen the viewer draws) makes tcpdump block on
its write, its kernel buffer fill and packets drop: the user then sees a wrong world
(half-open connections that were not, CLOSE_WAITs that closed). ``cat`` never stops, so it
loses none.

:class:`Drain` does what ``cat`` does. A pipe, FIFO or socket is emptied by a small process of
its own (:class:`tcpview.sources.relay.Relay`): a thread would need Python's GIL to run, which
a compiled batch or a screen being drawn holds for tens of milliseconds. The consumer reads
what the relay passes on itself, when it takes (a read takes whatever the pipe holds, up to
4 MiB, and the relay holds the rest), so the more it falls behind the larger and cheaper its
batches are. What is held in memory is bounded (:data:`HOLD_BYTES`): past it the relay stops
reading and the producer is held back, as it would be without it; and what waits, in memory
and in the pipes, is told (:meth:`Drain.waiting`) so a consumer that falls behind says so.
Anything else (a file redirected to standard input, or where the relay could not start) is
read by a thread here into a list of chunks the consumer takes all at once (``os.read`` lets
go of the GIL while it waits).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import stat
import termios
import threading
import time

from ..pacer import stop_pacing
from .holding import QUIET, Holding
from .relay import Relay, next_rest, widen_pipe


def total_ram(unknown: int) -> int:
    """The machine's memory, bytes (``unknown`` where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return unknown


CHUNK = 4 << 20
"""The most one read takes from the pipe."""
HOLD_BYTES = max(256 << 20, min(1 << 30, total_ram(2 << 30) // 8))
"""The most read from the pipe and not yet taken by the consumer: 1 GiB, or an eighth of the
RAM if that is less, but no less than 256 MiB (half of it is what a command that answers at
the end holds before it analyses while the producer writes: :mod:`tcpview.sources.holding`)."""
TAKE_BYTES = 1 << 20
"""A take returns at once when this much has come; with less, it lingers (:data:`LINGER`)."""
LINGER = 0.05
"""How long a take waits for more after the first bytes came: a producer that writes each
packet as it comes (``tcpdump -U``) makes the batches a few packets each otherwise, and the
work per batch, not per packet, would cost most (at 70,000 packets a second, a tenth of the
CPU the engine needs for the packets themselves)."""
CONSUMER_NICE = 10
"""How much lower this process's priority goes while a relay empties its stream (and the
thread that reads and analyses it runs in the idle class: :func:`idle_this_thread`): where the
CPUs are all busy, the producer (tcpdump, whose kernel buffer drops what it cannot take in
time) and the relay run first; tcpview's analysis and drawing can wait, held in memory.
Measured under connection churn on 2 cores: the viewer made tcpdump drop half its packets at
its own priority (``benchmarks/stream_bench.py``)."""

def in_pipe(fd: int) -> int:
    """Bytes written into the pipe ``fd`` and not read yet (0 where the system cannot say)."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)
    except OSError:
        return 0


class Drain:
    """Reads the pipe ``fd`` until its end, :meth:`close` or an error: through a relay, which
    the consumer's :meth:`take` reads, or else on a thread of its own.

    Args:
        fd: a pipe (or FIFO, or socket) to read; not closed here.
        hold: the most bytes held that the consumer has not taken.
    """

    def __init__(self, fd: int, hold: int = HOLD_BYTES) -> None:
        self.fd = self._fd_in = fd
        self.hold = hold
        self.relay = _adopt(fd) or _relay_of(fd, hold)
        """The process that empties a pipe for us (None: a thread of ours reads ``fd``)."""
        self.holding: Holding | None = None
        """When a command that answers at the end analyses (None: as soon as bytes come)."""
        self._taken = 0
        """Bytes the consumer took so far."""
        self._stop_at: int | None = None
        """After a first Ctrl-C: the bytes that came by then (see :func:`end_stream_at_ctrl_c`)."""
        if self.relay is not None:  # the relay holds what is not taken: the taker reads its pipe
            self.fd = self.relay.fd
            lower_priority(_yield_by)
            if _hold:
                self.holding = Holding(hold // 2)
        self._chunks: list[bytes] = []
        self._held = 0
        self._eof = False
        self._error: OSError | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._takers: set[int] = set()
        self._thread: threading.Thread | None = None
        """The thread that reads :attr:`fd` (None under a relay: a thread would copy the
        bytes once more, for about a tenth of the CPU the stream costs tcpview)."""
        if self.relay is None:  # (the relay widens its own pipe)
            self.pipe_size = widen_pipe(self.fd)
            self._thread = threading.Thread(target=self._run, name="tcpview-drain", daemon=True)
            self._thread.start()

    def _yields(self) -> bool:
        """Whether this stream's reader yields to its producer (a relay empties it, and the
        command asked: :func:`yield_to_producers`)."""
        return self.relay is not None and _yield_by > 0

    def _run(self) -> None:
        rest = 0.0
        while True:
            with self._cond:
                while self._held >= self.hold and not self._closed:  # the consumer is far behind
                    self._cond.wait(0.1)
                if self._closed:
                    return
            try:
                ready, _w, _x = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self.fd, CHUNK)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                return
            except ValueError:  # the descriptor was closed under us
                data = b""
            with self._cond:
                if data:
                    self._chunks.append(data)
                    self._held += len(data)
                else:
                    self._eof = True
                self._cond.notify_all()
            if not data:
                return
            rest = next_rest(rest, len(data), self.pipe_size)
            if rest:
                time.sleep(rest)

    def take(self, timeout: float) -> bytes | None:
        """Everything read since the last take, joined (once :data:`TAKE_BYTES` came or
        :data:`LINGER` passed after the first of it); ``b""`` at the end of the stream (or once
        what came before a first Ctrl-C was taken: :func:`end_stream_at_ctrl_c`); None when
        nothing came within ``timeout`` seconds.

        Raises:
            OSError: reading the pipe failed (after everything read before was taken).
        """
        if _interrupted_at is not None:  # (set by the signal handler, between two steps of this thread)
            since = time.monotonic() - _interrupted_at
            if since < QUIET or self._stop_at is None:  # what came by then, and the producer's last words
                self._stop_at = self._taken + self.waiting()
            if self._taken >= self._stop_at and since >= QUIET:
                self._eof = True
                return b""
            timeout = min(timeout, QUIET)
        data = self._take(timeout)
        if data:
            self._taken += len(data)
        return data

    def _take(self, timeout: float) -> bytes | None:
        """:meth:`take`, but for the end a Ctrl-C makes."""
        if self._yields() and threading.get_ident() not in self._takers:
            self._takers.add(threading.get_ident())
            idle_this_thread()  # the thread that analyses a stream yields to its producer
            if threading.current_thread() is threading.main_thread():
                stop_pacing()  # a command's start is over: from now on its own thread reads (idle)
        if self._thread is None:
            if self.holding is not None and not self._eof and _interrupted_at is None and \
                    not self.holding.wait(self._counts, timeout, self._given_up):
                return None
            return self._read_relayed(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._chunks and not self._eof and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)
            first = time.monotonic()
            while self._chunks and self._held < TAKE_BYTES and not self._eof and self._error is None:
                left = first + LINGER - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            if self._chunks:
                chunks, self._chunks, self._held = self._chunks, [], 0
                self._cond.notify_all()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._error is not None:
                raise self._error
            return b""

    def _counts(self) -> tuple[int, int]:
        """Every byte the producer wrote so far, and those not taken yet (:meth:`Holding.go`)."""
        waiting = self.waiting()
        return self._taken + waiting, waiting

    def _given_up(self) -> bool:
        """Whether a wait for :attr:`holding` ends without going on: closed, or a Ctrl-C came
        (then what came is taken at once)."""
        return self._closed or _interrupted_at is not None

    def _read_relayed(self, timeout: float) -> bytes | None:
        """:meth:`take`, where the relay holds what was not taken: read its pipe here, all it
        holds, until :data:`TAKE_BYTES` came or :data:`LINGER` passed after the first bytes."""
        chunks: list[bytes] = []
        got = 0
        until = time.monotonic() + timeout
        while got < TAKE_BYTES and not self._eof and self._error is None and not self._closed:
            try:
                ready, _w, _x = select.select([self.fd], [], [], max(0.0, until - time.monotonic()))
                if not ready or self._closed:
                    break
                data = os.read(self.fd, CHUNK)
            except (InterruptedError, BlockingIOError):
                continue
            except OSError as e:
                if not self._closed:  # (closing closes the relay's pipe under a reader)
                    self._error = e  # told once what was read before is taken
                break
            except ValueError:  # the descriptor was closed under us
                data = b""
            if not data:
                self._eof = True
                break
            if not chunks:
                until = time.monotonic() + LINGER
            chunks.append(data)
            got += len(data)
        if chunks:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self._error is not None:
            raise self._error
        return b"" if self._eof else None

    def waiting(self) -> int:
        """Bytes the producer wrote that the consumer has not taken: held here and still in
        the pipe."""
        with self._cond:
            held = self._held
        if self.relay is not None:
            held += self.relay.held() + in_pipe(self.relay.fd)
        return held + in_pipe(self._fd_in)

    def close(self) -> None:
        """Stop reading (the thread ends within a tenth of a second)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.relay is not None:
            self.relay.close()
            self.relay = None


def yield_to_producers(by: int = CONSUMER_NICE) -> None:
    """From now on, a stream a relay empties lowers this process's priority by ``by``
    (:data:`CONSUMER_NICE`). The ``tcpview`` command asks for it; a program that reads streams
    with these classes keeps its priority unless it asks too."""
    global _yield_by
    _yield_by = by


def hold_while_busy() -> None:
    """From now on, a stream a relay empties is analysed when that costs its producer
    nothing, or when what waits reaches half of what may be held (:mod:`tcpview.sources.holding`):
    for a command whose answer comes at the end of the stream, not for a viewer."""
    global _hold
    _hold = True


def end_stream_at_ctrl_c() -> None:
    """From now on, a first Ctrl-C (SIGINT) ends a stream as its end would, for a command that
    answers at the end (``tcpdump -U -w - | tcpview summary -``: the same Ctrl-C ends tcpdump):
    what came by then, and what comes in the next :data:`~tcpview.sources.holding.QUIET`
    seconds (tcpdump's last packets, written as it exits), is read, and the command answers,
    as ``summary -i`` does on a live capture; a second Ctrl-C stops at once
    (``KeyboardInterrupt``). Call it from the main thread."""

    def first(_signum: int, _frame: object) -> None:
        global _interrupted_at
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one stops at once
        _interrupted_at = time.monotonic()

    signal.signal(signal.SIGINT, first)


def lower_priority(by: int) -> None:
    """Lower the priority of every thread of this process by ``by`` (threads started later
    take their starter's), once: a second call does nothing."""
    global _lowered
    if _lowered or by <= 0:
        return
    _lowered = True
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the process's priority, where the system keeps one for all
        threads = [0]
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        except OSError:  # the thread ended meanwhile
            continue


def idle_this_thread() -> None:
    """Run the calling thread in the idle class where the system has one (Linux's
    ``SCHED_IDLE``): a producer that wakes takes the CPU from it at once, where a lower priority
    alone still let a thread of tcpview's run on for tens of milliseconds (``perf sched
    timehist``: tcpdump waited up to 94 ms on a run queue behind one at nice 10; its buffer
    holds about 130 ms of a loopback's churn). Only the thread that reads and analyses a
    stream (the one that takes it) goes there: a thread of the idle class gets next to nothing
    while any other thread of its group of processes wants the CPU, and the viewer's own thread
    must still answer keys and draw (it stays at the lowered priority)."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is None:
        return
    try:
        os.sched_setscheduler(0, idle, os.sched_param(0))
    except OSError:  # not allowed here (a container's seccomp policy, say): the priority stays
        return


_lowered = False
_hold = False
_interrupted_at: float | None = None
_yield_by = 0
_early: tuple[tuple[int, int], Relay] | None = None


def start_early(fd: int = 0) -> bool:
    """Start emptying the pipe, FIFO or socket ``fd`` now, before a command's slow start.

    ``tcpdump -U -w - | tcpview summary -``: tcpdump writes from its first packet, and
    tcpview loads its engine for a good part of a second (seconds where the CPUs are busy), while
    a pipe holds milliseconds of a busy link; packets dropped then are lost to the summary. A
    relay started here holds what comes meanwhile, and the :class:`Drain` later made for the
    same pipe takes it over (any descriptor of it: the viewer moves the pipe off descriptor 0).
    Nothing happens for anything else than a pipe, FIFO or socket, or when one was started.
    The process's priority goes down at once, as :class:`Drain` lowers it (see
    :func:`yield_to_producers`). Returns whether a relay empties ``fd`` now.
    """
    global _early
    pipe = _pipe_of(fd)
    if _early is not None or pipe is None:
        return _early is not None and _early[0] == pipe
    relay = _relay_of(fd, HOLD_BYTES)
    if relay is not None:
        _early = (pipe, relay)
        lower_priority(_yield_by)  # the engine's loading, too, comes after the producer
    return relay is not None


def wait_to_analyse() -> None:
    """Where a command that answers at the end (:func:`hold_while_busy`) reads a stream the
    relay :func:`start_early` started empties, wait until :class:`Holding` says go: before the
    command loads its engine (half a second of CPU, taken from the producer where no CPU is
    spare)."""
    if not _hold or _early is None:
        return
    relay = _early[1]

    def counts() -> tuple[int, int]:
        waiting = relay.held() + in_pipe(relay.fd)
        return waiting, waiting  # (nothing is taken yet: all that came waits)

    Holding(HOLD_BYTES // 2).wait(counts, given_up=lambda: _interrupted_at is not None)


def _adopt(fd: int) -> Relay | None:
    """The relay :func:`start_early` started for the pipe ``fd`` is on (handed over once), or None."""
    global _early
    if _early is None or _pipe_of(fd) != _early[0]:
        return None
    relay, _early = _early[1], None
    return relay


def _pipe_of(fd: int) -> tuple[int, int] | None:
    """What names the file ``fd`` is open on, whichever descriptor: its device and inode."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _relay_of(fd: int, hold: int) -> Relay | None:
    """A relay process for the pipe, FIFO or socket ``fd`` (None for anything else, or when
    the process could not start: then this process's thread reads it alone)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    try:
        return Relay(fd, hold)
    except OSError:
        return None
