"""How the engine's hot loops are compiled: numba, cached on disk, without the GIL.

Every kernel of the engine is a plain Python function over numpy arrays and numbers,
decorated with :func:`kernel`. numba compiles it to machine code the first time it runs and
caches the result beside the module (in ``__pycache__``, or a per-user cache directory when
the package directory is read-only; ``NUMBA_CACHE_DIR`` chooses another place), so later runs
only load it. Compiled kernels release the GIL: a reader thread (the UI) runs while a kernel
works through a batch of frames.

``NUMBA_DISABLE_JIT=1`` runs the very same functions as Python (slowly): the tests run the
engine's core that way too, so there is one implementation and it can be stepped through in a
debugger.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
"""True when numba runs the kernels as plain Python (``NUMBA_DISABLE_JIT=1``)."""


def kernel(fn: F) -> F:
    """Compile ``fn`` with numba: cached on disk, no Python objects, the GIL released."""
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)  # type: ignore[return-value]


def helper(fn: F) -> F:
    """A small function kernels call; compiled into its callers."""
    return numba.njit(cache=True, nogil=True, inline="never", error_model="numpy")(fn)  # type: ignore[return-value]


_ready = threading.Event()
_warm_lock = threading.Lock()
_warming = False


def compiled() -> bool:
    """True once every kernel is compiled or loaded (at once with the JIT disabled)."""
    return JIT_DISABLED or _ready.is_set()


def warm_up(block: bool = True) -> bool:
    """Compile or load every kernel now; with ``block=False`` on a thread of its own.

    Returns whether the kernels are ready. The first run after an install compiles for a few
    seconds; later runs load the cache in a fraction of a second.
    """
    global _warming
    if compiled():
        return True
    with _warm_lock:
        start = not _warming
        _warming = True
    if start:
        t = threading.Thread(target=_warm, name="tcpview-jit", daemon=True)
        t.start()
    if block:
        _ready.wait()
    return _ready.is_set()


def _warm() -> None:
    from .warm import run_every_kernel

    try:
        run_every_kernel()
    finally:
        _ready.set()
