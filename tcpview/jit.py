"""How tcpview's hot loops run: compiled with numba (cached on disk, without the GIL), or as
the plain Python they are written in.

Every kernel (the engine's, and the capture-file scanner's) is a plain Python function over
numpy arrays and numbers, decorated with :func:`kernel` (or :func:`helper`, :func:`inlined`
for the functions kernels call, :func:`anywhere` for the small ones Python calls too). A
process runs them in one of two modes:

- **compiled**: numba compiles each kernel the first time it is called and caches the machine
  code on disk (:mod:`tcpview.jitcache` says where), so later runs only load it. Compiled
  kernels release the GIL: a reader thread (the UI) runs while a kernel works through a
  batch of frames.
- **python**: the very same functions run as Python, slowly but at once, and numba is not
  even imported (a third of a second). A small capture is read this way, and a large one
  while a first run compiles (``tcpview.engine.warm`` chooses).

The decorators only note the function: numba is imported, and each function handed to it,
when a process first goes compiled (:func:`use_compiled`; or the first call of a kernel when
nothing chose a mode and a whole compile is cached: compiled is the default; on a cold cache
that call runs as Python and the choice stays open). Switching rebinds each tcpview module's
names for the kernels to the compiled dispatchers or back to the functions.

``NUMBA_DISABLE_JIT=1`` keeps every process in plain Python (numba is never imported): the
tests run the engine's core that way too, so there is one implementation and it can be
stepped through in a debugger.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import numpy as np

from .pyrows import python_entry

F = TypeVar("F", bound=Callable[..., Any])

Int: TypeAlias = int | np.integer
"""An integer in a kernel: a numpy integer where it runs as plain Python (a field of a
record, ``np.int64(b[p]) << 8``), a machine integer where it is compiled."""

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
"""True when every kernel runs as plain Python (``NUMBA_DISABLE_JIT=1``)."""

# Without numba's reference counting (its "NRT"): a kernel only reads and writes arrays that
# its Python caller made and holds, so counting references to them is pure cost, and it was
# most of it: an atomic count up and down per array argument of every call, per packet
# (0.56 s -> 0.35 s for a million packets). Such a kernel cannot make an array: numba refuses
# to compile one that tries. Those that do make one (and return it) are `array_kernel`s.
# `_nrt` is numba's option for it (private: a numba that drops it fails when compiling).
_OPTS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "_nrt": False}


class _Kernel:
    """One decorated function: the function itself, numba's options for it, and its compiled
    dispatcher once the process went compiled."""

    __slots__ = ("dispatcher", "entry", "fn", "opts", "py", "stub")

    def __init__(self, fn: Callable, opts: dict, entry: bool) -> None:
        self.fn = fn
        self.opts = opts
        self.entry = entry
        self.py = python_entry(fn) if entry else fn
        """What Python calls in plain Python mode (an entry reads its tables as
        :class:`tcpview.pyrows.Table` s there)."""
        self.dispatcher: Any = None
        self.stub: _Entry | None = None

    def name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__name__}"


class _Entry:
    """What a module holds for a kernel Python calls before the process chose a mode: it calls
    what the mode says. Called before anything chose one, it chooses compiled (the default)
    when a whole compile is cached; on a cold cache it runs that one call as plain Python and
    leaves the choice open, so a command that looks at its input before it chooses (the
    check of a capture's first record) never waits for the compiler."""

    def __init__(self, k: _Kernel) -> None:
        self._k = k
        self.py_func = k.fn
        functools.update_wrapper(self, k.fn)

    def __call__(self, *args: Any) -> Any:
        if _MODE is None:
            from .jitcache import is_whole

            if not is_whole():
                return self._k.py(*args)
            use_compiled()
        k = self._k
        return (k.dispatcher if _MODE == "compiled" and k.dispatcher is not None else k.py)(*args)


_KERNELS: list[_Kernel] = []
_MODE: str | None = "python" if JIT_DISABLED else None  # None: not chosen yet
_SWITCH = threading.RLock()  # one switch at a time (a viewer's first query and its reader may both start one)


def kernel(fn: F) -> F:
    """A kernel Python calls: cached on disk, no Python objects, the GIL released, and no
    reference counting (it makes no arrays)."""
    return _register(fn, _OPTS, entry=True)


def array_kernel(fn: F) -> F:
    """A :func:`kernel` that makes arrays (numba counts references to them)."""
    return _register(fn, dict(_OPTS, _nrt=True), entry=True)


def helper(fn: F) -> F:
    """A function kernels call (compiled when its first caller is)."""
    return _register(fn, _OPTS, entry=False)


def inlined(fn: F) -> F:
    """A helper that is compiled into each caller (numba's ``inline="always"``): for the few
    called once or more per packet, where a call's cost shows. Compiling takes longer for
    each caller, so only where it pays."""
    return _register(fn, dict(_OPTS, inline="always"), entry=False)


def anywhere(fn: F) -> F:
    """A small function that Python and kernels both call (a field of a packed word, say):
    called from Python it is the plain function, in either mode (so it takes numbers or whole
    numpy arrays, and costs no dispatch); a compiled kernel that calls it has it compiled in
    (and LLVM inlines something this small)."""
    _ANYWHERE.append(fn)
    if _MODE == "compiled":  # a module imported after the switch
        _jitable(fn)
    return fn


_ANYWHERE: list[Callable] = []
_JITABLE: set[int] = set()


def _jitable(fn: Callable) -> None:
    """Tell numba how to compile ``fn`` where a kernel calls it (once)."""
    if id(fn) in _JITABLE:
        return
    from numba.extending import register_jitable

    # Not numba's inline="always" here: for these overloads it miscompiled a caller (a SYN's
    # analysis bits were lost in seqanalysis.make_state); LLVM inlines them anyway.
    register_jitable(fn)
    _JITABLE.add(id(fn))


def _register(fn: Any, opts: dict, entry: bool) -> Any:
    k = _Kernel(fn, opts, entry)
    _KERNELS.append(k)
    if _MODE == "compiled":  # a module imported after the switch
        return _compile(k)
    if _MODE is None and entry:
        k.stub = _Entry(k)
        return k.stub
    return k.py


def _compile(k: _Kernel) -> Any:
    """The kernel's numba dispatcher (made once)."""
    if k.dispatcher is None:
        import numba

        from .jitload import light_cache_loads

        light_cache_loads()
        k.dispatcher = numba.njit(**k.opts)(k.fn)
        _plain_calls(k.dispatcher)
    return k.dispatcher


def _plain_calls(dispatcher: Any) -> None:
    """Compile a function called from a kernel once per type of its arguments, not once per
    constant: numba types a constant argument (a flag, a column number) as a literal and
    compiled a helper again for each one (19 times for ``add_transition``), a large share of
    the first run's compile. The constants are still folded in once the helper is linked into
    its caller. A function that needs a literal (none of tcpview's do) still gets it: the
    plain types are tried first."""
    from numba.core import errors, types

    typed = dispatcher.get_call_template

    def get_call_template(args: tuple, kws: dict) -> Any:
        plain = tuple(types.unliteral(a) for a in args)
        if plain != tuple(args):
            try:
                return typed(plain, {k: types.unliteral(v) for k, v in kws.items()})
            except errors.TypingError:
                pass
        return typed(args, kws)

    dispatcher.get_call_template = get_call_template


def _rebind(compiled: bool) -> None:
    """Point every tcpview module's names for the kernels at the dispatchers (``compiled``) or
    at the functions."""
    swap: dict[int, Any] = {}
    for k in _KERNELS:
        target = k.dispatcher if compiled else k.py
        for obj in (k.fn, k.py, k.dispatcher, k.stub):
            if obj is not None and obj is not target:
                swap[id(obj)] = target
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "") or ""
        if name != "tcpview" and not name.startswith("tcpview."):
            continue
        space = module.__dict__
        for key, value in list(space.items()):
            target = swap.get(id(value))
            if target is not None:
                space[key] = target


def use_compiled(cache_dir: str | None = None) -> None:
    """Run the kernels compiled from now on (numba loads each from the cache, or compiles it,
    at its first call). ``cache_dir``: where numba caches them (the default is
    :data:`tcpview.jitcache.CACHE_DIR`; a compile that publishes whole uses its own). A no-op
    under ``NUMBA_DISABLE_JIT``. One switch at a time; once the engine is fed, only the thread
    that feeds it switches (a kernel running as Python on another thread would find compiled
    helpers half-way)."""
    global _MODE
    with _SWITCH:
        if JIT_DISABLED or _MODE == "compiled":
            return
        import numba

        from .jitcache import CACHE_DIR

        # each new dispatcher reads it; numba.config makes its settings at run time, unseen by
        # the type checker
        numba.config.CACHE_DIR = cache_dir or CACHE_DIR  # type: ignore[attr-defined]
        for fn in _ANYWHERE:
            _jitable(fn)
        for k in _KERNELS:
            _compile(k)
        _rebind(True)
        _MODE = "compiled"


def use_python() -> None:
    """Run the kernels as plain Python from now on (numba is not imported for it); who may
    switch: see :func:`use_compiled`."""
    global _MODE
    with _SWITCH:
        if _MODE == "python":
            return
        _rebind(False)
        _MODE = "python"


def python_mode(on: bool) -> None:
    """:func:`use_python` (``on``) or :func:`use_compiled`."""
    if on:
        use_python()
    else:
        use_compiled()


def mode() -> str | None:
    """``"compiled"``, ``"python"``, or None while nothing has chosen (the first kernel called
    then chooses compiled)."""
    return _MODE


def in_python_mode() -> bool:
    """Whether the kernels run as plain Python just now."""
    return _MODE == "python"


def numba_loaded() -> bool:
    """Whether this process has imported numba."""
    return "numba" in sys.modules


def entries() -> list[str]:
    """The kernels Python calls (helpers are compiled into them), by module and name."""
    return [k.name() for k in _KERNELS if k.entry]


def not_loaded() -> list[str]:
    """The kernels Python calls that are not compiled or loaded yet in this process."""
    return [k.name() for k in _KERNELS if k.entry and (k.dispatcher is None or not k.dispatcher.signatures)]


def loaded() -> list[str]:
    """The kernels Python calls that this process has compiled or loaded."""
    return [k.name() for k in _KERNELS if k.entry and k.dispatcher is not None and k.dispatcher.signatures]
