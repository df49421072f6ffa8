"""A pipe read as fast as its producer writes: a thread of its own empties it into memory.

``tcpdump -U -w - | tcpview replay -``: tcpdump writes each packet into the pipe as it comes,
and the pipe holds 64 KiB, a few milliseconds of a busy link. A reader that stops for longer
(a batch the engine works through, a screen the viewer draws) makes tcpdump block on its
write, its kernel buffer fill and packets drop: the user then sees a wrong world (half-open
connections that were not, CLOSE_WAITs that closed). ``cat`` never stops, so it loses none.

:class:`Drain` does what ``cat`` does: a thread that only reads (``os.read`` lets go of the
GIL while it waits; a read takes whatever the pipe holds, up to 4 MiB), into a list of chunks
the consumer takes all at once, as large as they have grown meanwhile, so the more it falls
behind the larger and cheaper its batches are. The pipe is also made as large as the system
lets (``F_SETPIPE_SZ``: 1 MiB for anyone by default, more for root), for the moments this
thread waits for the GIL. What is held in memory is bounded (:data:`HOLD_BYTES`): past it the
thread stops reading and the producer is held back, as it would be without the thread; and
what waits, in memory and in the pipe, is told (:meth:`Drain.waiting`) so a consumer that
falls behind says so.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import threading
import time

CHUNK = 4 << 20
"""The most one read takes from the pipe."""
HOLD_BYTES = 256 << 20
"""The most read from the pipe and not yet taken by the consumer."""
TAKE_BYTES = 1 << 20
"""A take returns at once when this much has come; with less, it lingers (:data:`LINGER`)."""
LINGER = 0.05
"""How long a take waits for more after the first bytes came: a producer that writes each
packet as it comes (``tcpdump -U``) makes the batches a few packets each otherwise, and the
work per batch, not per packet, would cost most (at 70,000 packets a second, a tenth of the
CPU the engine needs for the packets themselves)."""
REST = 0.01
"""The longest rest of the thread after a read that found the pipe nearly empty, while the
pipe fills (a producer writing each packet as it comes would otherwise have it read a packet
at a time: a system call and a wake-up each, most of the CPU a stream costs); see
``Drain._next_rest``. Only where the pipe is large enough (:data:`REST_PIPE_BYTES`)."""
REST_PIPE_BYTES = 1 << 20
PIPE_BYTES = 16 << 20
"""The pipe size asked for (the system's ``fs.pipe-max-size`` bounds it, but for root)."""

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def widen_pipe(fd: int, want: int = PIPE_BYTES) -> int:
    """Make the pipe ``fd`` as large as allowed, up to ``want``; its size after (0: not a
    pipe, or the system said no)."""
    try:
        size = fcntl.fcntl(fd, F_GETPIPE_SZ)
    except OSError:
        return 0
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        limit = size
    for ask in (want, limit) if os.geteuid() == 0 else (min(want, limit),):
        if ask <= size:
            break
        try:
            return fcntl.fcntl(fd, F_SETPIPE_SZ, ask)
        except OSError:  # over the limit, or the user's pipe memory is used up
            continue
    return size


def in_pipe(fd: int) -> int:
    """Bytes written into the pipe ``fd`` and not read yet (0 where the system cannot say)."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little", signed=True)
    except OSError:
        return 0


class Drain:
    """Reads the pipe ``fd`` on a thread of its own until its end, :meth:`close` or an error.

    Args:
        fd: a pipe (or FIFO, or socket) to read; not closed here.
        hold: the most bytes held that the consumer has not taken.
    """

    def __init__(self, fd: int, hold: int = HOLD_BYTES) -> None:
        self.fd = fd
        self.hold = hold
        self.pipe_size = widen_pipe(fd)
        self._rest = REST if self.pipe_size >= REST_PIPE_BYTES else 0.0
        self._chunks: list[bytes] = []
        self._held = 0
        self._eof = False
        self._error: OSError | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tcpview-drain", daemon=True)
        self._thread.start()

    def _next_rest(self, rest: float, got: int) -> float:
        """The rest after a read of ``got`` bytes, the last rest having been ``rest``: none
        after a read of a sixteenth of the pipe or more (a fast producer), twice as long after
        a read of a sixty-fourth or less (a trickle), up to :data:`REST`; so the pipe never
        fills by more than a quarter during a rest, whatever the producer's pace."""
        if not self._rest or got >= self.pipe_size // 16:
            return 0.0
        if got <= self.pipe_size // 64:
            return min(self._rest, max(REST / 8, 2 * rest))
        return rest

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
            rest = self._next_rest(rest, len(data))
            if rest:
                time.sleep(rest)

    def take(self, timeout: float) -> bytes | None:
        """Everything read since the last take, joined (once :data:`TAKE_BYTES` came or
        :data:`LINGER` passed after the first of it); ``b""`` at the end of the stream; None
        when nothing came within ``timeout`` seconds.

        Raises:
            OSError: reading the pipe failed (after everything read before was taken).
        """
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

    def waiting(self) -> int:
        """Bytes the producer wrote that the consumer has not taken: held here and still in
        the pipe."""
        with self._cond:
            held = self._held
        return held + in_pipe(self.fd)

    def close(self) -> None:
        """Stop reading (the thread ends within a tenth of a second)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
