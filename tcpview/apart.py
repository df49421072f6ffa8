"""A command that reads a stream runs in a session of its own, beside its producer's.

``tcpdump -U -w - | tcpview replay -`` typed at a terminal: Linux shares the CPUs between
sessions first (``autogroup``: every session is a group of its own), and then between the
processes of each. tcpdump and tcpview, both typed at the same terminal, share one session's
share, and whatever tcpview takes, tcpdump does not get: a lower priority or the idle class
only ranks them within the session. Measured under connection churn on 2 cores, at a terminal
(``tcpdump -i lo -U -w - | CONSUMER`` in tmux, 10 s): a process in the idle class spinning 5 ms
at a time, at 5% of a CPU, beside ``cat`` made tcpdump drop in 4 runs of 5 (``cat`` alone: 0 of
3); ``tcpview summary -`` dropped in 7 runs of 8, and in 0 of 4 under ``setsid``.

So :func:`run_apart` forks at the command's first step, once the relay that empties the pipe
(:func:`tcpview.sources.drain.start_early`) has started: the relay stays in the terminal's
session beside tcpdump, as ``cat`` would be. The child calls ``setsid`` and runs the command:
its own session and group, so that what it takes of the CPUs is no longer taken from the
producer's session. The parent, the *keeper*, stays where the user started the command, as
small as it was then: the shell waits for it, and it passes on what the terminal sends
(Ctrl-C, a resize, a hang-up, Ctrl-Z and ``fg``) to the command and the command's exit status
back to the shell. The keyboard: a process outside the terminal's session cannot open
``/dev/tty``, so the keeper opens it first and the command finds it at :func:`terminal`. A
command whose keeper dies (``kill -9``) is sent SIGTERM by the kernel (``PR_SET_PDEATHSIG``),
and ends. ``TCPVIEW_APART=0`` keeps the command in the terminal's session
(``tcpview.resident.client``).

Two things tried beside it and taken back (``benchmarks/stream_bench.py``, at a terminal):
autogroup's nice 19 for the command's session while the stream came in starved it on a busy
host (with two busy loops in other sessions, ``cat`` of a 4 MB capture into ``replay -`` took
52 s to reach its end, 2.4 s without); and every thread in the idle class, the viewer's own
too, made ``replay -`` drop in 6 runs of 6 (0.02-2.47%), where with its own thread out of it,
taking turns with the command in the terminal's session, it had dropped in 2 runs of 8 (6 of 8
in the terminal's session).

Where a session is not what groups the CPU time (systemd's session cgroups, or autogroup
switched off) the command runs as before, one process further from the shell.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from typing import NoReturn

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH, signal.SIGUSR1,
             signal.SIGUSR2)
"""What the keeper passes on to the command as it comes."""
_HANDLED = {*FORWARDED, signal.SIGTSTP, signal.SIGCONT}

_PR_SET_PDEATHSIG = 1

_terminal: int | None = None


def terminal() -> int | None:
    """A descriptor of the controlling terminal the command was started at, opened by the
    keeper before the command left the terminal's session (None: not apart, or no terminal)."""
    return _terminal


def run_apart() -> bool:
    """Fork (the caller does when a relay empties the producer's pipe): the child returns True,
    in a session of its own; this process keeps the terminal's side until the child ends, and
    exits as it did (it never returns). Returns False, having done nothing, where the process
    leads its session already, or where it cannot fork."""
    global _terminal
    if os.getsid(0) == os.getpid():
        return False
    try:
        tty: int | None = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:  # no terminal (a script, a service): still apart from the producer's group
        tty = None
    for out in (sys.stdout, sys.stderr):  # (nothing written before the fork is written twice)
        with contextlib.suppress(Exception):
            out.flush()
    keeper = os.getpid()
    # what the terminal sends from now on waits until the keeper's handlers pass it on (a Ctrl-C
    # in between would end the keeper alone, or run the command's code in it)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if tty is not None:
            os.close(tty)
        return False
    if pid == 0:
        os.setsid()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _die_with(keeper)
        _terminal = tty
        return True
    if tty is not None:
        os.close(tty)
    _keep(pid, mask)


def _die_with(keeper: int) -> None:
    """Have the kernel send SIGTERM when the keeper ends, whatever ends it (not SIGHUP, which a
    command started under ``nohup`` ignores; Linux only: elsewhere the command outlives a keeper
    that was killed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != keeper:  # it ended before the request took
        os.kill(os.getpid(), signal.SIGTERM)


def _keep(pid: int, mask: set[int | signal.Signals]) -> NoReturn:
    """The keeper: pass the terminal's signals on to ``pid``, then exit as it did (``mask``:
    the signals blocked before the fork, unblocked once the handlers are in place)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the stream is the command's alone: when it stops reading, the producer hears
    os.close(devnull)
    os.closerange(3, 1 << 16)  # (and so are the pipes of a relay it started before: tcpview.sources.drain)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    def stop(_signum: int, _frame: object) -> None:  # Ctrl-Z: the command stops, then the keeper
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # (the shell sees its job stopped)
        # here again: continued (fg, bg), or never stopped (a shell without job control, whose
        # jobs the kernel does not stop): the command goes on either way
        resume(signal.SIGCONT, None)

    def resume(_signum: int, _frame: object) -> None:  # fg, bg
        signal.signal(signal.SIGTSTP, stop)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGTSTP, stop)
    signal.signal(signal.SIGCONT, resume)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        _, status = os.waitpid(pid, 0)  # (retried after each signal handled)
    except ChildProcessError:
        os._exit(1)
    if os.WIFSIGNALED(status):  # ended by a signal: the keeper too, so the shell sees which
        ended_by = os.WTERMSIG(status)
        for each in _HANDLED:
            signal.signal(each, signal.SIG_DFL)
        signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
        os._exit(128 + ended_by)
    os._exit(os.waitstatus_to_exitcode(status))
