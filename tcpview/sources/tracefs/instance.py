"""A trace instance of tcpview's own under tracefs, with the TCP tracepoints enabled.

Never the global buffer: :class:`TraceInstance` makes ``instances/tcpview-<pid>-<start>``
(``start`` is the process's start time in clock ticks since boot, so a reused pid is not taken
for the owner), sets its clock and buffer size, and enables each wanted tracepoint this
kernel has. It is removed

- by :meth:`TraceInstance.close` (a ``with`` block, so a normal exit and Ctrl-C);
- by a watchdog process started with it (:mod:`.watchdog`), which waits for its owner's end
  on a pipe and removes the instance when the owner died without doing so (SIGTERM's default
  action, SIGKILL, a crash): the kernel closes the pipe whatever way the owner ends;
- and, should both be gone too, at the next start: :func:`remove_stale` removes every
  ``tcpview-`` instance whose owner no longer runs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import PrivilegeError, UserError, needs_root

MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
"""Where tracefs is looked for (and mounted, at the first, when it is nowhere)."""

PREFIX = "tcpview-"

EVENTS = (
    ("sock", "inet_sock_set_state", "protocol == 6"),  # TCP only: the event covers SCTP, MPTCP too
    ("tcp", "tcp_probe", ""),
    ("tcp", "tcp_retransmit_skb", ""),
    ("tcp", "tcp_send_reset", ""),
    ("tcp", "tcp_receive_reset", ""),
    ("tcp", "tcp_cong_state_set", ""),
    ("tcp", "tcp_destroy_sock", ""),
)
"""The tracepoints tcpview reads: (system, event, filter)."""

CLOCK = "mono"
"""The instance's trace clock: CLOCK_MONOTONIC, which :mod:`.reader` turns into wall time."""


class TraceError(UserError):
    """Kernel events cannot be read (no tracefs, or none of the tracepoints)."""


def _privilege(why: str) -> PrivilegeError:
    return PrivilegeError(needs_root("kernel events (--kernel)", why=why,
                                     instead="the same command without --kernel"))


def find_tracefs(mount: bool = True) -> tuple[Path, bool]:
    """Where tracefs is mounted, and whether this call mounted it.

    Looks in ``/proc/mounts``; when tracefs is nowhere and ``mount``, mounts it at
    ``/sys/kernel/tracing``.

    Raises:
        PrivilegeError: it is not mounted and this process may not mount it.
        TraceError: this kernel has no tracefs.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "tracefs":
                return Path(parts[1].replace("\\040", " ")), False
    if not mount:
        raise TraceError("tracefs is not mounted")
    target = MOUNTS[0]
    if not os.path.isdir(target):
        raise TraceError(f"this kernel has no tracefs ({target} does not exist)")
    if os.geteuid() != 0:
        raise _privilege("tracefs is not mounted")
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", target], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        said = (r.stderr.strip().splitlines() or ["mount failed"])[0]
        if "permission denied" in said.lower() or "must be superuser" in said.lower():
            raise _privilege(f"tracefs is not mounted, and mounting it at {target} was refused")
        raise TraceError(f"cannot mount tracefs at {target}: {said}")
    return Path(target), True


def start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, from ``/proc/PID/stat``); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command may hold spaces and parentheses: fields count from the last ')'
    return int(stat[stat.rindex(")") + 2:].split()[19])


def instance_name(pid: int | None = None) -> str:
    """The instance name of process ``pid`` (this one when None)."""
    pid = os.getpid() if pid is None else pid
    return f"{PREFIX}{pid}-{start_time(pid) or 0}"


def owner_alive(name: str) -> bool:
    """Whether the process that made instance ``name`` still runs (a name not of tcpview's
    form counts as alive: it is not ours to remove)."""
    try:
        pid_s, start_s = name[len(PREFIX):].split("-")
        pid, start = int(pid_s), int(start_s)
    except ValueError:
        return True
    return start_time(pid) == start


def remove_instance(path: Path) -> bool:
    """Remove an instance directory; True when it is gone (or was)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove_stale(root: Path) -> list[str]:
    """Remove the ``tcpview-`` instances whose owner no longer runs; returns their names."""
    gone = []
    with contextlib.suppress(OSError):
        for p in (root / "instances").iterdir():
            if p.name.startswith(PREFIX) and not owner_alive(p.name) and remove_instance(p):
                gone.append(p.name)
    return gone


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@dataclass
class TraceInstance:
    """tcpview's trace instance, made by :meth:`open`; a context manager that removes it.

    Attributes:
        root: where tracefs is mounted.
        path: the instance's directory.
        enabled: ``"system:event"`` of each tracepoint enabled.
        missing: ``"system:event"`` of each wanted tracepoint this kernel lacks.
    """

    root: Path
    path: Path
    enabled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mounted: bool = False
    _watchdog: subprocess.Popen | None = None

    @classmethod
    def open(cls, buffer_kb: int = 4096, events: tuple = EVENTS, watchdog: bool = True,
             mount: bool = True) -> TraceInstance:
        """Make the instance and enable ``events`` (those this kernel has).

        Args:
            buffer_kb: the ring buffer's size per CPU.
            events: (system, event, filter) of the tracepoints to enable.
            watchdog: start the process that removes the instance if this one dies.
            mount: mount tracefs when it is not mounted.

        Raises:
            PrivilegeError: not allowed to make an instance (needs root).
            TraceError: no tracefs, or none of ``events`` on this kernel.
        """
        root, mounted = find_tracefs(mount)
        if not os.access(root, os.R_OK | os.X_OK) or not os.access(root / "instances", os.W_OK):
            raise _privilege(f"cannot write {root}/instances")
        remove_stale(root)
        path = root / "instances" / instance_name()
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except PermissionError:
            raise _privilege(f"cannot write {root}/instances") from None
        except OSError as e:
            raise TraceError(f"cannot make a trace instance: {e.strerror or e}") from None
        inst = cls(root, path, mounted=mounted)
        try:
            if watchdog:
                inst._watchdog = _start_watchdog(path, mounted)
            inst._configure(buffer_kb, events)
        except BaseException:
            inst.close()
            raise
        return inst

    def _configure(self, buffer_kb: int, events: tuple) -> None:
        p = self.path
        _write(p / "tracing_on", "0")
        _write(p / "trace_clock", CLOCK)
        with contextlib.suppress(OSError):  # a kernel may refuse the size: its default stays
            _write(p / "buffer_size_kb", str(buffer_kb))
        for system, event, filt in events:
            d = p / "events" / system / event
            if not (d / "enable").exists():
                self.missing.append(f"{system}:{event}")
                continue
            if filt:
                with contextlib.suppress(OSError):
                    _write(d / "filter", filt)
            _write(d / "enable", "1")
            self.enabled.append(f"{system}:{event}")
        if not self.enabled:
            raise TraceError("this kernel has none of the TCP tracepoints (sock:inet_sock_set_state, tcp:*)")

    def start(self) -> None:
        """Start recording (the events were enabled with recording off)."""
        _write(self.path / "tracing_on", "1")

    def has(self, event: str) -> bool:
        """Whether ``event`` (``system:event``) is enabled."""
        return event in self.enabled

    def close(self) -> None:
        """Stop recording and remove the instance (the files in it must be closed); then end
        the watchdog. Safe to call more than once."""
        with contextlib.suppress(OSError):
            _write(self.path / "tracing_on", "0")
        for _ in range(50):
            if remove_instance(self.path):
                break
            # EBUSY: a reader's file is still open on another thread; it closes within a poll
            time.sleep(0.02)
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                self._watchdog.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(5)
            self._watchdog = None
        elif self.mounted:
            unmount(self.root)

    def __enter__(self) -> TraceInstance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unmount(root: Path) -> None:
    """Unmount tracefs that tcpview mounted (left mounted when another user holds it)."""
    subprocess.run(["umount", str(root)], capture_output=True, check=False)


def _start_watchdog(path: Path, mounted: bool) -> subprocess.Popen:
    """The process that removes ``path`` when this one ends without removing it.

    It reads a pipe this process holds until the pipe closes: the kernel closes it whatever
    way this process ends. In a session of its own, so a Ctrl-C at the terminal reaches only
    its owner (which removes the instance itself).
    """
    args = [sys.executable, "-m", "tcpview.sources.tracefs.watchdog", str(path)]
    if mounted:
        args.append("--unmount")
    env = dict(os.environ)
    # the watchdog imports from the same tcpview as its owner, wherever that is
    pkg_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(x for x in (pkg_root, env.get("PYTHONPATH", "")) if x)
    try:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    except OSError as e:
        raise TraceError(f"cannot start the trace instance's watchdog: {e.strerror or e}") from None
