"""Loading cached kernels without numba's compiler set-up.

Before it loads a kernel from its cache, numba refreshes its target context: it imports and
registers the implementations of everything it could compile (numpy's linear algebra, random
generators, typed containers, ...) and the typing templates to match. Loading machine code
from the cache needs none of it, only numba's runtime for the arrays a kernel allocates; and
a compile that does need it refreshes the contexts itself (``numba.core.compiler`` does before
every compile). Measured on a warm summary of an 8,000-packet capture: the refresh was about
0.2 s of the command's 0.55 s of CPU, the set-up cost of the first kernel.

:func:`light_cache_loads` makes numba's cache load initialise just the runtime. It checks that
the numba in use has the parts it replaces, and changes nothing otherwise (then numba loads as
it always did, only slower).
"""

from __future__ import annotations

from typing import Any

from .pacer import pace

_done = False


def light_cache_loads() -> bool:
    """Make every numba cache load from now on skip the compiler's set-up; returns whether it
    did (False: this numba's cache does not look as expected, and is left as it is)."""
    global _done
    if _done:
        return True
    try:
        from numba.core import caching
        from numba.core.runtime.nrt import rtsys
    except ImportError:
        return False
    cache = caching.Cache
    needed = ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")
    if not all(hasattr(cache, n) for n in needed) or not hasattr(rtsys, "initialize"):
        return False
    load = cache._load_overload  # noqa: SLF001 - numba's own method, kept as the load itself
    guard = cache._guard_against_spurious_io_errors  # noqa: SLF001

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        """numba's ``Cache.load_overload`` without ``target_context.refresh()``: the runtime
        a cached kernel needs is initialised, nothing else."""
        rtsys.initialize(target_context)
        pace()  # a load holds the GIL for milliseconds, and a viewer's start loads dozens
        with guard(self):
            return load(self, sig, target_context)

    setattr(cache, "load_overload", load_overload)  # numba's class, changed for the process
    _done = True
    return True
