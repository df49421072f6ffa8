"""A table's rows grouped by connection: the segment or transition rows of a few connections,
or of every one, found in one pass over the table's ``conn`` column (a question about each of
n connections would otherwise read the whole column n times)."""

from __future__ import annotations

import numpy as np


def rows_of_many(conn_col: np.ndarray, conns: list[int]) -> dict[int, np.ndarray]:
    """The rows of each of a few connections in a table's ``conn`` column, in order."""
    rows = np.flatnonzero(np.isin(conn_col, conns))
    owners = conn_col[rows].astype(np.int64)
    order = np.argsort(owners, kind="stable")
    rows, owners = rows[order], owners[order]
    bounds = np.searchsorted(owners, conns + [np.iinfo(np.int64).max])
    return {c: rows[bounds[j]:bounds[j + 1]] for j, c in enumerate(conns)}


def rows_by_conn(conn_col: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every connection's rows in a table's ``conn`` column at once: ``(rows, bounds)``, the
    rows of connection ``c`` being ``rows[bounds[c]:bounds[c + 1]]``, in order."""
    owners = np.asarray(conn_col, dtype=np.int64)
    rows = np.argsort(owners, kind="stable")
    return rows, np.searchsorted(owners[rows], np.arange(n + 1))
