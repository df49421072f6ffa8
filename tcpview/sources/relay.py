"""A pipe emptied by a small process of its own, as ``cat`` would, so a busy reader never
holds its producer back.

``tcpdump -U -w - | tcpview replay -``: tcpdump writes each packet into the pipe as it comes.
A thread of tcpview's own that reads the pipe (:class:`tcpview.sources.drain.Drain`) is not
enough on its own: to run, it needs Python's GIL, which the engine holds for the whole of a
compiled batch and the viewer while it draws, tens of milliseconds at a time under load, and
meanwhile the pipe fills, tcpdump blocks on its write, its kernel buffer fills and packets drop
(measured: 3-4% of a loopback's churn at 110,000 packets a second, where ``cat`` loses none).

:class:`Relay` starts this file as a process (``python -I -S``: the standard library only,
started in milliseconds): it reads the producer's pipe whenever there is something in it and
writes what it read into a pipe of tcpview's, holding in memory what tcpview has not read yet,
up to a bound (past it, it stops reading and the producer is held back, as without it). It
publishes how many bytes it holds (8 bytes in a shared memory file), so a consumer that falls
behind can say by how much. It ends at the end of the stream, once everything is written, or
as soon as tcpview closes its end (or dies); in a process group of its own, it does not see
the terminal's Ctrl-C, which is tcpview's to handle.

This module imports nothing of tcpview's: it runs as a script.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
import sys
import time
from typing import BinaryIO

CHUNK = 4 << 20
"""The most one read takes from the pipe."""
PIPE_BYTES = 16 << 20
"""The pipe size asked for (the system's ``fs.pipe-max-size`` bounds it, but for root)."""
REST = 0.01
"""The longest rest after a read that found the pipe nearly empty (see :func:`next_rest`)."""

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_HELD = 8  # the size of the shared count of bytes held


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


def next_rest(rest: float, got: int, pipe_size: int) -> float:
    """The rest after a read of ``got`` bytes, the last rest having been ``rest``.

    A producer that writes each packet as it comes would otherwise have the pipe read a packet
    at a time: a system call and a wake-up each, most of the CPU a stream costs. None after a
    read of a sixteenth of the pipe or more (a fast producer), twice as long after a read of a
    sixty-fourth or less (a trickle), up to :data:`REST`; so the pipe never fills by more than
    a quarter during a rest, whatever the producer's pace. None at all in a pipe under 1 MiB.
    """
    if pipe_size < (1 << 20) or got >= pipe_size // 16:
        return 0.0
    if got <= pipe_size // 64:
        return min(REST, max(REST / 8, 2 * rest))
    return rest


def relay(src: int, dst: int, hold: int, held: mmap.mmap | None) -> int:
    """Copy ``src`` to ``dst`` until the end of ``src`` (everything written) or until ``dst``'s
    reader goes away; hold at most ``hold`` bytes; the count held written into ``held``.
    Returns the exit status: 0, or 1 when reading failed."""
    size = widen_pipe(src)
    widen_pipe(dst)
    os.set_blocking(dst, False)
    poll = select.poll()
    chunks: list[bytes] = []
    count, eof, rest, polling_src = 0, False, 0.0, False
    while not (eof and not chunks):
        reading = not eof and count < hold
        poll.register(dst, select.POLLOUT if chunks else 0)  # errors (reader gone) always come
        if reading != polling_src:  # not polled while not read: a closed writer would wake it
            if reading:
                poll.register(src, select.POLLIN)
            else:
                poll.unregister(src)
            polling_src = reading
        events = dict(poll.poll())
        if events.get(dst, 0) & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return 0  # the consumer closed its end: nobody to relay to
        if reading and events.get(src, 0):
            moved = splice_into(src, dst) if not chunks else None
            if moved is not None:  # from pipe to pipe in the kernel: never copied here
                eof = moved == 0
                rest = next_rest(rest, moved, size)
            else:
                try:
                    data = os.read(src, CHUNK)
                except InterruptedError:
                    data = None
                except OSError as e:
                    if e.errno != errno.EAGAIN:
                        return 1
                    data = None
                if data == b"":
                    eof = True
                elif data:
                    chunks.append(data)
                    count += len(data)
                    if held is not None:  # at once: the bytes are in neither pipe now
                        held[:_HELD] = count.to_bytes(_HELD, "little")
                    rest = next_rest(rest, len(data), size)
        if chunks and events.get(dst, 0) & select.POLLOUT:
            try:
                n = os.write(dst, chunks[0])
            except BlockingIOError:
                n = 0
            except BrokenPipeError:
                return 0
            count -= n
            chunks[0] = chunks[0][n:]
            if not chunks[0]:
                chunks.pop(0)
        if held is not None:
            held[:_HELD] = count.to_bytes(_HELD, "little")
        if rest:  # also while the consumer is behind: then a wake-up a packet would cost the most
            time.sleep(rest)
    return 0


def splice_into(src: int, dst: int) -> int | None:
    """Move what ``src`` holds into ``dst`` without copying it (Linux's ``splice``), as much
    as ``dst`` has room for: the bytes moved (0: the end of ``src``), or None where nothing
    could be moved that way (``dst`` is full, or the system has no ``splice`` for these):
    then the caller reads."""
    splice = getattr(os, "splice", None)
    if splice is None:
        return None
    try:
        return splice(src, dst, CHUNK, flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
    except OSError:  # EAGAIN: dst full (src is readable); EINVAL: not a pipe's to splice
        return None


class Relay:
    """The process that empties the pipe ``fd`` into a pipe of ours (:attr:`fd`).

    Args:
        fd: the producer's pipe (or FIFO, or socket); left open here.
        hold: the most bytes the relay holds that were not read from :attr:`fd` yet.

    Raises:
        OSError: the process could not be started.
    """

    def __init__(self, fd: int, hold: int) -> None:
        import subprocess  # here: the module is read by every command, a stream by few

        widen_pipe(fd)  # at once: the process takes some milliseconds to start reading
        self._shared = _shared_count()
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(hold), str(self._shared.fileno())],
                stdin=fd, stdout=w, stderr=subprocess.DEVNULL, pass_fds=(self._shared.fileno(),),
                close_fds=True, process_group=0)  # the terminal's Ctrl-C is tcpview's to handle
        except BaseException:
            os.close(r)
            os.close(w)
            self._shared.close()
            raise
        os.close(w)
        self.fd = r
        """Where what the producer wrote comes out, in order."""
        self._count = mmap.mmap(self._shared.fileno(), _HELD)
        self._starter = os.getpid()

    def held(self) -> int:
        """Bytes the relay read from the producer's pipe and not yet passed on."""
        return int.from_bytes(self._count[:_HELD], "little")

    def close(self) -> None:
        """Stop the relay and close our end of its pipe."""
        import signal
        import subprocess

        if os.getpid() != self._starter:  # started before a fork (tcpview.apart): another's child,
            try:  # which only its parent can wait for (and whose id is not reused before it does)
                os.kill(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
        else:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.fd)
        self._count.close()
        self._shared.close()


def _shared_count() -> BinaryIO:
    """A file of :data:`_HELD` zero bytes in memory, shared with the relay process."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tcpview-relay", 0)
    else:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="tcpview-relay-")
        os.unlink(path)
    f = open(fd, "r+b")
    f.write(bytes(_HELD))
    f.flush()
    return f


def _main(argv: list[str]) -> int:
    hold, fd = int(argv[1]), int(argv[2])
    with open(fd, "r+b") as f:
        held = mmap.mmap(f.fileno(), _HELD)
        try:
            return relay(0, 1, hold, held)
        finally:
            held.close()


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
