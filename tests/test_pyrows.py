"""Plain Python mode's tables (tcpview.pyrows): a kernel run as Python reads and writes the very
memory of the record arrays it is handed, through rows that answer fields quickly, and hands
back ordinary arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tcpview.pyrows import Row, Table, as_table, python_entry

DT = np.dtype([("state", "u1", (2,)), ("seq", "u4"), ("ts", "f8")])


class Pair(NamedTuple):
    a: np.recarray
    b: np.ndarray


def _table(n: int = 4) -> np.recarray:
    return np.zeros(n, dtype=DT).view(np.recarray)


def test_rows_read_and_write_the_table_in_place():
    rec = _table()
    t = as_table(rec)
    assert isinstance(t, Table) and isinstance(t[1], Row)
    row = t[2]
    row.seq = np.uint32(0xFFFFFFFF)
    row.state[1] = 7  # a sub-array field is a view
    row.ts = 1.5
    assert rec[2].seq == 0xFFFFFFFF and rec[2].state[1] == 7 and rec[2].ts == 1.5
    assert type(row.seq) is np.uint32  # numpy scalars: their wrapping arithmetic, as compiled
    assert t.seq[2] == 0xFFFFFFFF and t.dtype.names == DT.names  # a column; not a field: ndarray's own
    rec[3].seq = 9
    assert t[3].seq == 9  # the same memory both ways


def test_an_entry_sees_tables_and_returns_plain_arrays():
    seen = {}

    def kernel(pair: Pair, n: int):
        seen["types"] = (type(pair.a), type(pair.b), type(pair.a[0]))
        pair.a[0].seq = n
        fresh = np.zeros(2, dtype=pair.a.dtype)  # made from a Table's dtype
        return pair.a[:2], fresh, np.arange(3)

    rec, col = _table(), np.arange(5)
    head, fresh, plain = python_entry(kernel)(Pair(rec, col), 42)
    assert seen["types"] == (Table, np.ndarray, Row)
    assert rec[0].seq == 42
    for out in (head, fresh):  # back as record arrays: nothing outside a kernel sees a Table
        assert type(out) is np.recarray and out.dtype.type is np.record
    assert head[0].seq == 42 and type(plain) is np.ndarray
