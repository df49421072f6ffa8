"""How tcpview's hot loops are compiled: numba, cached on disk, without the GIL.

Every kernel (the engine's, and the capture-file scanner's) is a plain Python function over
numpy arrays and numbers, decorated with :func:`kernel`. numba compiles it to machine code the first time it runs and
caches the result beside the module (in ``__pycache__``, or a per-user cache directory when
the package directory is read-only; ``NUMBA_CACHE_DIR`` chooses another place), so later runs
only load it. Compiled kernels release the GIL: a reader thread (the UI) runs while a kernel
works through a batch of frames.

``NUMBA_DISABLE_JIT=1`` runs the very same functions as Python (slowly): the tests run the
engine's core that way too, so there is one implementation and it can be stepped through in a
debugger.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
"""True when numba runs the kernels as plain Python (``NUMBA_DISABLE_JIT=1``)."""


def _writable(directory: str) -> bool:
    """Whether files can be made in ``directory`` (made first if it does not exist)."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".tcpview-probe-")  # noqa: SIM115
        probe.close()
        return True
    except OSError:
        return False


def sources_digest() -> str:
    """A digest of every module kernels are compiled from. numba checks only the file of the
    kernel itself before it reuses what it cached, not the files of the functions it calls
    (and compiled in): so the cache lives in a directory named by this digest, and a change
    anywhere (an upgrade, an edit) compiles everything again."""
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(numba.__version__.encode())
    for sub in ("engine", "sources"):
        for folder, dirs, files in sorted(os.walk(os.path.join(here, sub))):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        h.update(os.path.relpath(path, here).encode() + b"\0" + f.read())
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    """Where the compiled kernels are cached: a directory named by :func:`sources_digest` in
    ``NUMBA_CACHE_DIR`` when set, else in ``__pycache__`` beside the engine when it is
    writable, else in the user's cache directory (``~/.cache/numba``), else, when neither can
    be written, in a directory of this user's in the system's temporary directory. Beside the
    engine, caches of other versions of the sources are removed (elsewhere another install
    may still use them)."""
    base = str(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else ""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "__pycache__")
    if not base:
        if _writable(here):
            base = here
        else:
            from numba.misc.appdirs import AppDirs

            user = AppDirs(appname="numba", appauthor=False).user_cache_dir
            base = user if _writable(user) else os.path.join(
                tempfile.gettempdir(), f"tcpview-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")
    mine = f"tcpview-{sources_digest()}"
    if base == here:
        try:
            for old in os.listdir(base):
                if old.startswith("tcpview-") and old != mine and len(old) == len(mine):
                    shutil.rmtree(os.path.join(base, old), ignore_errors=True)
        except OSError:
            pass
    numba.config.CACHE_DIR = os.path.join(base, mine)  # numba reads it when a kernel is first compiled
    return numba.config.CACHE_DIR


CACHE_DIR = cache_dir()
CACHE_BASE = os.path.dirname(CACHE_DIR)
"""Where :data:`CACHE_DIR` is made (what ``NUMBA_CACHE_DIR`` says to another process)."""


# Without numba's reference counting (its "NRT"): a kernel only reads and writes arrays that
# its Python caller made and holds, so counting references to them is pure cost, and it was
# most of it: an atomic count up and down per array argument of every call, per packet
# (0.56 s -> 0.35 s for a million packets). Such a kernel cannot make an array: numba refuses
# to compile one that tries. Those that do make one (and return it) are `array_kernel`s.
# `_nrt` is numba's option for it (private: a numba that drops it fails here, at import).
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "_nrt": False}


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba: cached on disk, no Python objects, the GIL released, and no
    reference counting (it makes no arrays)."""
    return _register(numba.njit(**_OPTS)(fn), entry=True)  # type: ignore[no-any-return]


def array_kernel(fn: F) -> F:
    """A :func:`kernel` that makes arrays (numba counts references to them)."""
    return _register(numba.njit(**dict(_OPTS, _nrt=True))(fn), entry=True)  # type: ignore[no-any-return]


def helper(fn: F) -> F:
    """A function kernels call (compiled when its first caller is)."""
    return _register(numba.njit(**_OPTS)(fn))


def inlined(fn: F) -> F:
    """A helper that is compiled into each caller (numba's ``inline="always"``): for the few
    called once or more per packet, where a call's cost shows. Compiling takes longer for
    each caller, so only where it pays."""
    return _register(numba.njit(inline="always", **_OPTS)(fn))  # type: ignore[no-any-return]


_COMPILED: dict[int, Any] = {}  # id(py_func) -> its dispatcher, for every kernel and helper
_ENTRIES: list[Any] = []  # the kernels Python calls (helpers are compiled into them)
_PY_MODE = False


def _register(dispatcher: Any, entry: bool = False) -> Any:
    py_func = getattr(dispatcher, "py_func", None)  # a plain function when the JIT is off
    if py_func is not None:
        _COMPILED[id(py_func)] = dispatcher
        if entry:
            _ENTRIES.append(dispatcher)
    return dispatcher


def not_loaded() -> list[str]:
    """The kernels Python calls that are not compiled or loaded yet in this process."""
    return [f"{d.py_func.__module__}.{d.py_func.__name__}" for d in _ENTRIES if not d.signatures]


def python_mode(on: bool) -> None:
    """Run every kernel as plain Python (``on``) or compiled.

    While a first run compiles in another process (see ``tcpview.engine.warm``), the
    engine goes on in plain Python, slowly but at once: each module's names for the kernels
    are pointed at the functions themselves, then back at the compiled ones once they are
    loaded. Only the thread that feeds the engine calls this.
    """
    global _PY_MODE
    if JIT_DISABLED or on == _PY_MODE:
        return
    _PY_MODE = on
    by_py = {id(d): d.py_func for d in _COMPILED.values()} if on else {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "") or ""
        if not name.startswith("tcpview"):
            continue
        space = module.__dict__
        for key, value in list(space.items()):
            if on and id(value) in by_py:
                space[key] = by_py[id(value)]
            elif not on and id(value) in _COMPILED:
                space[key] = _COMPILED[id(value)]


def in_python_mode() -> bool:
    """Whether the kernels run as plain Python just now (see :func:`python_mode`)."""
    return _PY_MODE
