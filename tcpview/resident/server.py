"""The resident engine's process: everything loaded once, then a fork per command.

``python -m tcpview.resident.server SOCKET`` loads tcpview's commands and the compiled kernels,
listens on ``SOCKET`` (one engine per socket: a second one gives up), and for each command
forks: the copy takes the caller's standard input, output and error, working directory,
environment and command line, says its process id (so the caller can forward Ctrl-C), runs
the command as ``tcpview`` would and says its exit status. Only the socket's owner is
served (its directory is the user's alone, and each caller's credentials are checked).

It notes each command it serves in ``SOCKET.log`` (its time, the process that ran it, the
command) and writes its own process id into ``SOCKET.lock``. It ends after :data:`IDLE` seconds without a command (``TCPVIEW_RESIDENT_IDLE``), and when
tcpview's sources change (a reinstall, an edit): a command then runs on its own and starts
a new engine.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

from .client import HEADER, INT, SIGNALS, STALE

IDLE = 600.0
"""Seconds without a command after which the engine ends."""

_FORWARDED = set(SIGNALS)
"""The signals a caller passes on to its command."""


def _stamp() -> tuple:
    """Names, sizes and times of tcpview's sources: a change means another tcpview."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for folder, dirs, files in os.walk(here):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                out.append((folder, name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _load() -> None:
    """Everything a served command would import and load, loaded now."""
    from .. import cli
    from ..engine import warm

    cli.build_parser()
    if warm.cache_is_warm():
        warm.ready(groups=warm.VIEW_GROUPS)


def serve(path: str, idle: float) -> None:
    """Serve commands on the Unix socket ``path`` until ``idle`` seconds pass without one."""
    lock = open(path + ".lock", "a+")  # held for the process's life: the one engine of this socket
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another engine serves this socket
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _load()
    stamp = _stamp()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(idle)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the copies are reaped as they end
    signal.signal(signal.SIGTERM, _end)  # (so the socket goes with it)
    try:
        while True:
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                return
            with conn:
                conn.settimeout(None)
                if not _same_user(conn):
                    continue
                got = _request(conn)
                if got is None:
                    continue
                request, fds = got
                if _stamp() != stamp:
                    conn.sendall(STALE)  # another tcpview now: the caller runs it itself
                    for fd in fds:
                        os.close(fd)
                    return
                # the caller's signals wait until the copy has its own handlers (a Ctrl-C
                # between the fork and them would run this loop's cleanup in the copy)
                signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn, request, fds)  # never returns
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
                for fd in fds:
                    os.close(fd)
                _log(path, f"{time.time():.3f} {pid} {request['argv'][0]}")
    finally:
        with contextlib.suppress(OSError):  # (the lock says no other engine bound it)
            os.unlink(path)
        listener.close()


def _end(_signum: int, _frame: object) -> None:
    sys.exit(0)


def _log(path: str, line: str) -> None:
    """One line per command served, in ``SOCKET.log`` (the last thousand or so)."""
    log = path + ".log"
    with contextlib.suppress(OSError):
        if os.path.exists(log) and os.path.getsize(log) > 64 << 10:
            os.replace(log, log + ".old")
        with open(log, "a") as f:
            f.write(line + "\n")


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _request(conn: socket.socket) -> tuple[dict, list[int]] | None:
    """The caller's request and its three descriptors, or None (a caller that went away)."""
    try:
        msg, anc, _flags, _addr = conn.recvmsg(HEADER.size, socket.CMSG_LEN(3 * array.array("i").itemsize))
        fds = array.array("i")
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if len(msg) != HEADER.size or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return None
        size = HEADER.unpack(msg)[0]
        body = b""
        while len(body) < size:
            part = conn.recv(size - len(body))
            if not part:
                raise OSError("short request")
            body += part
        return json.loads(body), list(fds)
    except (OSError, ValueError):
        return None


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """The forked copy: become the caller's command, run it, say its status, end."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _std_streams()
        conn.sendall(INT.pack(os.getpid()))
        threading.Thread(target=_watch, args=(conn,), daemon=True, name="tcpview-resident-watch").start()
        sys.argv = ["tcpview", *request["argv"]]
        from ..cli import main
        from ..sources.drain import yield_to_producers

        yield_to_producers()
        status = main(request["argv"])
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:  # (before the command's own handling of it)
        status = 130
    except BaseException:  # a traceback, as the command would print it
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(INT.pack(status))
        os._exit(status)


def _watch(conn: socket.socket) -> None:
    """End the command when its caller goes away (killed, say): nobody reads its answer."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os._exit(1)


def _std_streams() -> None:
    """Text streams on the caller's descriptors, as an interpreter started there makes them."""
    encoding = os.environ.get("PYTHONIOENCODING") or "utf-8"
    errors = None
    if ":" in encoding:
        encoding, errors = encoding.split(":", 1)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding,
                                 errors=errors)
    out = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding=encoding,
                           errors=errors, line_buffering=os.isatty(1))
    sys.stdout = out
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding=encoding,
                                  errors=errors or "backslashreplace", line_buffering=True)


def main() -> None:
    """``python -m tcpview.resident.server SOCKET``."""
    # no thread pools in a process that forks (numpy's BLAS would start one at import)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    serve(sys.argv[1], float(os.environ.get("TCPVIEW_RESIDENT_IDLE", IDLE)))


if __name__ == "__main__":
    main()
