"""The type of tcpview's numpy record arrays (the engine's tables, a batch's frames).

A record array reads its fields as attributes (``conns.port``), by numba and by plain Python
alike. numpy's type stubs know that of ``np.recarray`` itself (any attribute, typed ``Any``),
but type its rows taken by a slice or a mask as a plain ``ndarray``, which has no fields;
at run time they are record arrays too. :class:`Records` is ``np.recarray`` at run time,
and to the type checker a record array whose slices are record arrays again. Make one with
``np.zeros(n, dtype=...).view(Records)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np

if TYPE_CHECKING:

    class Records(np.recarray):
        """A record array: a field is an attribute, a row a record, rows a record array."""

        # (numpy's ndarray.__getitem__ says a slice is a plain ndarray: not so of a record array)
        @overload  # type: ignore[override]
        def __getitem__(self, key: slice | np.ndarray | list[int], /) -> Records: ...
        @overload
        def __getitem__(self, key: int | np.integer, /) -> np.record: ...
        @overload
        def __getitem__(self, key: str, /) -> np.ndarray: ...
        def __getitem__(self, key: object, /) -> Any: ...

else:
    Records = np.recarray
