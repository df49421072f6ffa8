"""Which processes hold a socket, found as ``ss -p`` finds them: each process's open files
(``/proc/PID/fd/N``) that link to ``socket:[INODE]``.

Only the processes whose ``fd`` folder can be read are seen: without privileges, a user's
own. A socket without an inode (TIME_WAIT, a half-open connection's request socket) belongs to
no process: the kernel alone holds it.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Owner:
    """A process holding a socket, and the file descriptor it holds it by."""

    pid: int
    command: str
    """The process's name (``/proc/PID/comm``)."""
    fd: int


@dataclass(frozen=True, slots=True)
class Process:
    """Who holds a socket, as ``tcpview sockets --json`` and the ``proc`` column say it.

    ``pid`` and ``comm`` are None when the process could not be looked into (another user's,
    without privileges) or none was found; ``user`` comes from the socket's uid, which the
    kernel always gives.
    """

    pid: int | None
    comm: str | None
    user: str

    def as_json(self) -> dict[str, int | str | None]:
        """``{"pid", "comm", "user"}``."""
        return {"pid": self.pid, "comm": self.comm, "user": self.user}

    def as_tuple(self) -> tuple[int | None, str | None, str]:
        """``(pid, comm, user)``: what the connection filter matches ``pid:``, ``proc:`` and
        ``user:`` against (:mod:`tcpview.engine.analysis.conn_filter`)."""
        return self.pid, self.comm, self.user

    def text(self) -> str:
        """``nginx 1234``; ``? (www-data)`` when the process is not known."""
        return f"{self.comm} {self.pid}" if self.pid is not None else f"? ({self.user})"


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The name of user ``uid`` (its number as text when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def socket_owners(inodes: Collection[int], proc: str = "/proc") -> tuple[dict[int, list[Owner]], int]:
    """The processes holding each of the sockets ``inodes`` (inode -> owners), and how many
    processes could not be looked into (not ours, without privileges)."""
    want = {f"socket:[{i}]": i for i in inodes if i}
    found: dict[int, list[Owner]] = {}
    hidden = 0
    if not want:
        return found, hidden
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found, hidden
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            hidden += 1
            continue
        except OSError:  # the process ended meanwhile
            continue
        command = None
        for fd in fds:
            try:
                inode = want.get(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None:
                if command is None:  # read once a process, not once a socket
                    command = _command(proc, pid)
                found.setdefault(inode, []).append(Owner(pid, command, int(fd)))
    return found, hidden


def _command(proc: str, pid: int) -> str:
    try:
        with open(f"{proc}/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"
