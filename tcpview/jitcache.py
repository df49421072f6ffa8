"""Where the compiled kernels are cached on disk, and how a compile publishes them whole.

The cache is a directory named by a digest of the sources (:func:`sources_digest`), in
``NUMBA_CACHE_DIR`` when set, else beside the engine (``tcpview/engine/__pycache__``) when that
is writable, else in the user's cache directory, else in the system's temporary directory.

Nothing but a whole cache is ever found there. One process compiles at a time: it holds an
exclusive ``flock`` on ``<cache>.lock`` (the kernel lets it go when the process ends, however
it ends, so a compile killed half-way leaves no stale lock), compiles into a directory of its
own (``<cache>.tmp-<pid>``), writes a ``ready`` mark into it last and renames it into place, in
one step. A reader sees no cache or a whole one; a compile that died leaves only its
directory, which the next compile removes.

This module imports nothing of numba (a command that runs as plain Python never loads it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import tempfile

READY = "ready"
"""The file a compile writes into its directory last: a cache with it is whole."""

_HERE = os.path.dirname(os.path.abspath(__file__))


def _numba_version_file() -> bytes:
    """The text of numba's version file, found without importing numba (which takes a third of
    a second): the cache is named by it, so another numba compiles again."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        return b"no numba"
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "_version.py"), "rb") as f:
            return f.read()
    except OSError:
        return spec.origin.encode()


def sources_digest() -> str:
    """A digest of every module kernels are compiled from, of numba's version and of where
    these modules are. numba checks only the file of the kernel itself before it reuses what
    it cached, not the files of the functions it calls (and compiled in): so the cache lives in
    a directory named by this digest, and a change anywhere (an upgrade, an edit) compiles
    everything again. numba files each kernel under a name made from its module's folder, so
    another install of the same sources (another virtualenv sharing ``NUMBA_CACHE_DIR`` or the
    user's cache) finds nothing of this one's there: it gets a directory, and a compile, of its
    own rather than a cache marked whole that its commands would compile into one by one."""
    h = hashlib.sha256(_numba_version_file())
    h.update(_HERE.encode(errors="surrogateescape") + b"\0")
    for sub in ("engine", "sources"):
        for folder, dirs, files in sorted(os.walk(os.path.join(_HERE, sub))):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        h.update(os.path.relpath(path, _HERE).encode() + b"\0" + f.read())
    for name in ("jit.py", "jitcache.py"):
        with open(os.path.join(_HERE, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _writable(directory: str) -> bool:
    """Whether files can be made in ``directory`` (made first if it does not exist)."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".tcpview-probe-")
        probe.close()
        return True
    except OSError:
        return False


def _user_cache() -> str:
    """numba's own choice of a per-user cache directory (``~/.cache/numba`` on Linux)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "numba")


def cache_dir() -> str:
    """Where the compiled kernels are cached: a directory named by :func:`sources_digest` in
    ``NUMBA_CACHE_DIR`` when set, else in ``__pycache__`` beside the engine when it is
    writable, else in the user's cache directory (``~/.cache/numba``), else, when neither can
    be written, in a directory of this user's in the system's temporary directory. Beside the
    engine, what other versions of the sources left is removed (elsewhere another install
    may still use it)."""
    base = os.environ.get("NUMBA_CACHE_DIR", "")
    here = os.path.join(_HERE, "engine", "__pycache__")
    if not base:
        if _writable(here):
            base = here
        else:
            user = _user_cache()
            base = user if _writable(user) else os.path.join(
                tempfile.gettempdir(), f"tcpview-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")
    mine = f"tcpview-{sources_digest()}"
    if base == here:
        try:
            for old in os.listdir(base):
                if old.startswith("tcpview-") and not old.startswith(mine):
                    path = os.path.join(base, old)
                    if os.path.isdir(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:  # its lock and log
                        os.unlink(path)
        except OSError:
            pass
    return os.path.join(base, mine)


CACHE_DIR = cache_dir()
CACHE_BASE = os.path.dirname(CACHE_DIR)
"""Where :data:`CACHE_DIR` is made (what ``NUMBA_CACHE_DIR`` says to another process)."""


def is_whole(directory: str = CACHE_DIR) -> bool:
    """Whether a whole compile was published in ``directory``."""
    return os.path.exists(os.path.join(directory, READY))


class CompileLock:
    """The one compile of this version of the kernels: an exclusive ``flock`` on a file beside
    the cache. The kernel releases it when its holder ends, killed or not; the file holds the
    holder's pid (for people: the lock itself is the ``flock``). The file is never removed
    while it may be in use: another process could then lock a new one."""

    def __init__(self, directory: str = CACHE_DIR) -> None:
        self.path = directory + ".lock"
        self._fd: int | None = None

    def acquire(self, wait: bool) -> bool:
        """Take the lock (waiting for it with ``wait``); False when another process holds it."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.adopt(fd)
        return True

    def adopt(self, fd: int) -> None:
        """Hold the lock taken on ``fd`` by the process that started this one (a lock goes
        with the open file, so a child handed the descriptor holds it from the start)."""
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    @property
    def fd(self) -> int | None:
        """The descriptor the lock is held on (None when it is not held here)."""
        return self._fd

    def release(self) -> None:
        """Let the lock go."""
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def held(self) -> bool:
        """Whether a process holds the lock now (it is compiling)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # a shared lock taken here goes with the file
        return False

    def holder(self) -> int | None:
        """The pid of the process compiling now, or None when none is."""
        if not self.held():
            return None
        try:
            with open(self.path) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def staging_dir(directory: str = CACHE_DIR) -> str:
    """A fresh directory to compile into, for the holder of the :class:`CompileLock`: what
    earlier compiles left half-done (killed) is removed first; never the directory of a
    process still alive (however it came to compile meanwhile)."""
    base, name = os.path.split(directory)
    with contextlib.suppress(OSError):
        for old in os.listdir(base):
            if old.startswith((name + ".tmp-", name + ".old-")) and not _alive(old.rsplit("-", 1)[1]):
                shutil.rmtree(os.path.join(base, old), ignore_errors=True)
    path = f"{directory}.tmp-{os.getpid()}"
    os.makedirs(path)
    return path


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (text) is running (a zombie, ended but not waited for, is not)."""
    try:
        os.kill(int(pid), 0)
    except ValueError:
        return False
    except PermissionError:  # another user's: alive
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def publish(staging: str, directory: str = CACHE_DIR) -> None:
    """Put a whole compile in place, for the holder of the :class:`CompileLock`: the mark
    last, then one rename. A cache made in place (by a process that compiled as it went, not
    whole) is moved aside first and removed."""
    with open(os.path.join(staging, READY), "w") as f:
        f.write(f"{os.getpid()}\n")
    if os.path.exists(directory):
        aside = f"{directory}.old-{os.getpid()}"
        os.rename(directory, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.rename(staging, directory)
