"""The processes a test starts, seen through /proc: a process's children, its command line
and scheduling, the stream relays it started; a pty read without waiting; a fork killed and
reaped."""

from __future__ import annotations

import os
import select
import signal


def children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started and that run still (or wait to be reaped)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return out


def cmdline(pid: int) -> bytes:
    """``pid``'s command line, its arguments NUL-separated (empty once it has gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0")
    except FileNotFoundError:
        return b""


def relays(pid: int) -> list[int]:
    """The stream relays (tcpview.sources.relay) ``pid`` started."""
    return [c for c in children(pid) if b"relay.py" in cmdline(c)]


def kill_child(pid: int) -> None:
    """Kill the child process ``pid`` (a fork's) and reap it, whether or not it has ended."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def read_pty(fd: int, into: bytearray) -> None:
    """Append what the terminal ``fd`` (a pty's other side) has written, without waiting (a
    full terminal would hold up the program drawing on it)."""
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def policies(pid: int) -> set[int]:
    """The scheduling policies of the threads of ``pid``."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.add(os.sched_getscheduler(int(tid)))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return out
