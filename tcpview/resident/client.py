"""The ``tcpview`` command's first step: hand the command to the resident engine if one
answers, else run it here (see :mod:`tcpview.resident`).

This module imports only the standard library's small modules: it runs before anything
else, on every command, and a command the engine does not serve must not pay for it. A
command that reads a capture streamed on standard input starts emptying the pipe here
(:func:`tcpview.sources.drain.start_early`, the standard library's modules only), before the
rest of tcpview loads: the pipe holds milliseconds of a busy producer's packets.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import sys

SERVED = frozenset({"summary", "expert", "export", "ladder", "graph", "stream", "diagnose"})
"""The commands the resident engine answers (they read files and write text)."""

NOT_SERVED_OPTIONS = frozenset({"-i", "--interface", "--kernel", "--remote", "--jobs", "--scheduler", "--follow",
                                "-"})
"""Options that make a command live, a stream's or a cluster's: those run in their own process."""

HEADER = struct.Struct("!I")
"""A request's length, before it (its descriptors ride with it)."""
INT = struct.Struct("!i")
"""A process id, then an exit status: what the engine answers."""
STALE = b"S"  # what an engine of older sources answers before it ends (never the start of a process id)


def served(argv: list[str]) -> bool:
    """Whether the resident engine answers this command line."""
    if not argv or argv[0] not in SERVED:
        return False
    return not any(a in NOT_SERVED_OPTIONS or a.startswith(("--interface=", "--jobs=", "--scheduler=", "--remote="))
                   for a in argv[1:])


def _package_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def key() -> str:
    """What a resident engine must share with a command to answer it: this copy of tcpview,
    this interpreter, and the environment that changes how the engine runs."""
    env = sorted((k, v) for k, v in os.environ.items()
                 if k.startswith(("NUMBA_", "TCPVIEW_", "PYTHON")) and k not in ("TCPVIEW_RESIDENT",))
    h = hashlib.sha256(json.dumps([_package_dir(), sys.executable, env]).encode())
    return h.hexdigest()[:16]


def directory() -> str | None:
    """The user's own directory for the engine's socket (``TCPVIEW_RESIDENT_DIR``, else in
    ``XDG_RUNTIME_DIR`` or the temporary directory), made mode 0700; None when it is not
    the user's alone."""
    base = os.environ.get("TCPVIEW_RESIDENT_DIR")
    if not base:
        import tempfile

        root = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        base = os.path.join(root, f"tcpview-{os.getuid()}")
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        st = os.lstat(base)  # (a link planted in a shared directory is not followed)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return base


def socket_path(folder: str) -> str:
    """The socket of the resident engine for this key in ``folder``."""
    return os.path.join(folder, f"resident-{key()}.sock")


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""What a terminal (or a user's kill) sends: forwarded to the served command."""


class _Forward:
    """Signals for the served command: held until its process is known, then passed on."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.held: list[int] = []
        self.before = {sig: signal.signal(sig, self.on_signal) for sig in SIGNALS}

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.pid is None:
            self.held.append(signum)
        else:
            self.send(signum)

    def send(self, signum: int) -> None:
        assert self.pid is not None
        try:
            os.kill(self.pid, signum)
        except OSError:
            pass

    def started(self, pid: int) -> None:
        self.pid = pid
        for signum in self.held:
            self.send(signum)

    def restore(self) -> None:
        """The signals as they were (the command runs here after all); one that came
        meanwhile is raised now, as it would have been."""
        for sig, handler in self.before.items():
            signal.signal(sig, handler)
        for signum in self.held:
            signal.raise_signal(signum)


def try_serve(argv: list[str]) -> int | None:
    """Run ``argv`` in the resident engine; its exit status, or None when none answered (the
    command has not started: run it here)."""
    folder = directory()
    if folder is None:
        return None
    forward = _Forward()  # from the start: a Ctrl-C while the command starts reaches it too
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path(folder))
        body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        fds = array.array("i", [0, 1, 2])
        s.sendmsg([HEADER.pack(len(body))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        s.sendall(body)
        got = _recv(s, INT.size)
    except OSError:
        got = b""
    if len(got) != INT.size:  # none answered, or a stale one (it sent STALE): run it here
        s.close()
        forward.restore()
        return None
    forward.started(INT.unpack(got)[0])
    return _wait(s)


def _recv(s: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer when the engine closed the connection first (after ``S``, the
    stale engine's answer, or when its copy of the command died)."""
    out = b""
    while len(out) < n:
        part = s.recv(n - len(out))
        if not part:
            break
        out += part
    return out


def _wait(s: socket.socket) -> int:
    """The served command's exit status, once it says it."""
    try:
        got = _recv(s, INT.size)
    except OSError:
        got = b""
    s.close()
    if len(got) != INT.size:
        print("tcpview: error: the resident engine's process ended without an answer", file=sys.stderr)
        return 1
    return INT.unpack(got)[0]


def wanted() -> bool:
    """Whether a resident engine should be started for this user: at a terminal, unless
    ``TCPVIEW_RESIDENT=0`` (``1``: also without one)."""
    setting = os.environ.get("TCPVIEW_RESIDENT", "")
    if setting == "0":
        return False
    if setting == "1":
        return True
    try:
        return os.isatty(2)
    except OSError:
        return False


def start_in_background() -> None:
    """Start a resident engine for this key (it gives up at once if one runs already)."""
    import subprocess

    folder = directory()
    if folder is None:
        return
    env = dict(os.environ)  # this copy of tcpview first, wherever the engine starts
    top = os.path.dirname(_package_dir())
    env["PYTHONPATH"] = top + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        subprocess.Popen([sys.executable, "-m", "tcpview.resident.server", socket_path(folder)], cwd="/", env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        pass


def reads_stdin(argv: list[str]) -> bool:
    """Whether the command line names ``-`` (a capture streamed on standard input) as a source:
    a ``-`` after the command, not after an option (which may take it as its value)."""
    return any(a == "-" and not prev.startswith("-") for prev, a in zip(argv, argv[1:]))


def main() -> None:
    """The ``tcpview`` command: served by the resident engine, or run here."""
    argv = sys.argv[1:]
    if reads_stdin(argv):  # the first thing: a producer writes from its first packet on
        from ..apart import run_apart
        from ..sources.drain import start_early, yield_to_producers

        yield_to_producers()  # (as run() asks): tcpview's own start comes after the producer
        relayed = start_early(0)  # (the relay stays in the terminal's session, as cat would be)
        if relayed and os.environ.get("TCPVIEW_APART") != "0":  # the command in a session of its own:
            run_apart()  # what it takes is not taken from the producer's (TCPVIEW_APART=0: the terminal's)
        if relayed:  # a producer writes into tcpview: it starts in short turns (tcpview.pacer),
            from ..pacer import start_pacing  # and the viewer draws in them until the stream ends

            start_pacing()  # (a command reading on its own thread stops at its first take: Drain.take)
    if served(argv) and os.environ.get("TCPVIEW_RESIDENT") != "0":
        status = try_serve(argv)
        if status is not None:
            sys.exit(status)
        if wanted():
            from ..jitcache import is_whole

            # (on a first run the compile comes first; numba's switch off: nothing to compile)
            if is_whole() or os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
                start_in_background()
    from ..cli import run

    run()
