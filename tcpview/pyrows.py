"""The engine's record tables as plain Python reads them, at the speed of numpy's own C code.

The kernels read a table's rows by attribute (``conn = conns[c]``, ``conn.state[side]``), as
numba compiles them. Run as plain Python (a small capture, a first run), that attribute goes
through ``numpy.record.__getattribute__``, written in Python, which tries the ordinary
attribute machinery first and catches its error: about 2 µs a field, half of all the time a
capture of 8,000 packets took. A :class:`Row` answers a field by ``numpy.void``'s own item
lookup (about 0.4 µs), and a :class:`Table` hands out Rows (``table[i]`` six times faster
than a ``recarray``'s).

:func:`python_entry` wraps a kernel for plain Python: the record arrays it is handed (alone or
in a NamedTuple of tables) become Tables (views: the same memory, nothing copied), and what
it returns is given back as ordinary arrays, so nothing outside a kernel ever sees a Table and
the compiled kernels, which the same arrays are later handed to, never do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

_get = np.void.__getitem__
_set = np.void.__setitem__
_MISSING = (ValueError, IndexError, KeyError)  # what numpy raises for a name that is no field


# (numpy's stubs make void final; numpy itself makes numpy.record from it, as here)
class Row(np.void):  # type: ignore[misc]
    """One row of a :class:`Table`: ``row.field`` reads the field (a sub-array field is a view,
    so ``row.state[side] = x`` writes the table), ``row.field = x`` writes it."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        try:
            return _get(self, name)
        except _MISSING:  # an attribute of the scalar itself (dtype, ...), not a field
            return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        _set(self, name, value)


class Table(np.ndarray):
    """A record array whose rows are :class:`Row` s; ``table.field`` is the field's column."""

    def __getattr__(self, name: str) -> Any:  # called only for names ndarray does not have
        try:
            return self[name]
        except _MISSING:
            raise AttributeError(name) from None


_ROW_TYPES: dict[np.dtype, np.dtype] = {}


def as_table(records: np.recarray) -> Table:
    """``records`` (a record array) as a :class:`Table`: the same memory."""
    dt = records.dtype
    row = _ROW_TYPES.get(dt)
    if row is None:
        row = _ROW_TYPES[dt] = np.dtype((Row, dt))
    return records.view(np.ndarray).view(row).view(Table)


def _in(arg: Any) -> Any:
    if isinstance(arg, np.recarray):
        return as_table(arg)
    if isinstance(arg, tuple) and hasattr(arg, "_fields"):  # a NamedTuple of tables
        return type(arg)(*map(_in, arg))
    return arg


def _out(value: Any) -> Any:
    if isinstance(value, Table):
        plain = value.view(np.ndarray)
        return plain.view(np.recarray) if plain.dtype.names else plain
    if isinstance(value, np.ndarray) and value.dtype.type is Row:  # made from a Table's dtype
        return value.view(np.recarray)
    if isinstance(value, tuple):
        items = tuple(map(_out, value))
        return type(value)(*items) if hasattr(value, "_fields") else items
    return value


def python_entry(fn: Callable) -> Callable:
    """``fn`` (a kernel Python calls) for plain Python: it reads and writes its record arrays
    as :class:`Table` s, and returns ordinary arrays."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        return _out(fn(*map(_in, args)))

    return call
