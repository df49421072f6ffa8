"""The connections of the summary JSON, written from the columns by a compiled loop.

``tcpview summary --json`` prints what ``json.dumps(summary, indent=1)`` would; a million
connections (a SYN flood) made that a million dicts, then an f-string each (6 s). Here the
usual row (IPv4) is written into one byte buffer by :func:`_write_rows`, and the few unusual
rows (IPv6, a clock that stepped back) by the f-string of :func:`rows_text`, their text
copied in place.

Time stamps are written as ``json`` writes floats, ``float.__repr__``: the shortest decimal
that reads back as the same double (the closest such when there are several). For a time
stamp of a real capture (seconds since 1970, at most 9 decimals needed) :func:`_ts_digits`
finds it with exact integer arithmetic; any other value (small, huge, a tie) is left to
Python's ``repr``.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np

from ...jit import array_kernel, helper, inlined, kernel
from ..core import columns as col
from ..core.tcp import STATE_NAMES
from ..core.zeek_analyzer import CONN_STATES
from ..timeline.conn_columns import ConnArrays, ConnColumns

# json.dumps(indent=1)'s layout of one connection around its fields: id, client ip, port,
# state, server ip, port, state, first_ts, last_ts, packets, bytes
_PIECES = ('  {\n   "id": ', ',\n   "client": {\n    "ip": "', '",\n    "port": ', ',\n    "state": "',
           '"\n   },\n   "server": {\n    "ip": "', '",\n    "port": ', ',\n    "state": "',
           '"\n   },\n   "first_ts": ', ',\n   "last_ts": ', ',\n   "packets": ', ',\n   "bytes": ')


def _tail(partial: bool, notes: tuple[str, ...], conn_state: str, history: str) -> str:
    """The end of a connection's layout, after its byte count."""
    return (f',\n   "partial": {"true" if partial else "false"},\n   "notes": {_notes_json(notes)},\n'
            f'   "conn_state": "{conn_state}",\n   "history": "{history}"\n  }}')


class Blob(NamedTuple):
    """Texts as one byte array: text k is ``data[off[k]:off[k + 1]]``."""

    data: np.ndarray  # uint8
    off: np.ndarray  # int64, one more than there are texts


class Texts(NamedTuple):
    """The texts the usual rows are written from."""

    pieces: Blob  # the layout around the fields (_PIECES)
    names: Blob  # the state names, by state
    stamps: Blob  # the time stamps only Python's repr writes (see Stamps)
    tails: Blob  # each kind of row end: partial, notes, Zeek state and history
    apart: Blob  # the rows written apart, whole


class Stamps(NamedTuple):
    """The usual rows' time stamps, first and last of each row in turn, as :func:`_ts_parts`
    splits them: digits ``-1 - k`` means the text is text k of ``Texts.stamps``."""

    whole: np.ndarray
    frac: np.ndarray
    digits: np.ndarray


class RowFields(NamedTuple):
    """One int64 array per field, a connection each."""

    ids: np.ndarray
    caddr: np.ndarray  # IPv4 addresses (of the usual rows)
    cport: np.ndarray
    cstate: np.ndarray
    saddr: np.ndarray
    sport: np.ndarray
    sstate: np.ndarray
    packets: np.ndarray
    nbytes: np.ndarray
    tail: np.ndarray  # which of Texts.tails ends it
    apart: np.ndarray  # its text in Texts.apart when it is written apart, else -1


def _blob(texts: list[str]) -> Blob:
    """Texts as one :class:`Blob`."""
    data = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=off[1:])
    return Blob(data, off)


_PIECE_TEXTS = _blob(list(_PIECES))
_NAME_TEXTS = _blob(list(STATE_NAMES))
_ROW_MOST = len(_PIECE_TEXTS.data) + 2 + 5 * 20 + 2 * 15 + 2 * max(map(len, STATE_NAMES))  # bytes, but times and tail


def _notes_json(notes: tuple[str, ...]) -> str:
    return '[\n    "' + '",\n    "'.join(notes) + '"\n   ]' if notes else "[]"


def extra_json(key: str, value) -> str:
    """``"key": value`` as the last field of a summary's connection, as ``json.dumps(indent=1)``
    lays it out there (after a ``,``)."""
    lines = json.dumps({key: value}, indent=1).splitlines()[1:-1]
    return ",\n" + "\n".join("  " + line for line in lines)


def rows_text(cols: ConnColumns, extra: dict[int, str] | None = None) -> list[str]:
    """Each connection of ``cols`` as ``json.dumps(indent=1)`` lays it out in the summary
    (``extra``: text to end a connection's fields with, by id: see :func:`extra_json`)."""
    extra = extra or {}
    rows = zip(cols.ids, cols.cip, cols.cport, cols.cstate, cols.sip, cols.sport, cols.sstate, cols.first,
               cols.last, cols.packets, cols.nbytes, cols.partial, cols.notes, cols.conn_state, cols.history,
               strict=True)
    return [f'  {{\n   "id": {i},\n   "client": {{\n    "ip": "{cip}",\n    "port": {cp},\n'
            f'    "state": "{cs}"\n   }},\n   "server": {{\n    "ip": "{sip}",\n    "port": {sp},\n'
            f'    "state": "{ss}"\n   }},\n   "first_ts": {t0!r},\n   "last_ts": {t1!r},\n'
            f'   "packets": {pk},\n   "bytes": {nb}{_tail(part, notes, zs, zh)[:-4]}{extra.get(i, "")}\n  }}'
            for i, cip, cp, cs, sip, sp, ss, t0, t1, pk, nb, part, notes, zs, zh in rows]


class RowsWriter:
    """Writes the connections of the summary JSON a piece at a time into one reused buffer."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.uint8)
        self.first = True
        """Whether no connection has been written yet (the next one is not after ``,``)."""
        self.extra: dict[int, str] = {}
        """Text to end a connection's fields with, by id (:func:`extra_json`): those rows are
        written apart."""

    def rows(self, part: ConnArrays) -> memoryview:
        """The connections of ``part`` as the summary JSON's list items, each after ``,\\n``
        (but the very first of the list); valid until the next call."""
        n = len(part)
        if n == 0:
            return memoryview(b"")
        usual = part.plain()
        if self.extra:
            usual &= ~np.isin(part.ids, np.fromiter(self.extra, dtype=np.int64))
        apart = np.flatnonzero(~usual)
        apart_texts = _blob(rows_text(part.columns(apart), self.extra))
        which = np.full(n, -1, dtype=np.int64)  # a row written apart: its text's number in apart_texts
        which[apart] = np.arange(len(apart))
        # the end of each usual row: one text per kind of notes (most have none: kind 0), Zeek
        # state and history (a handful of each)
        kinds: dict[tuple[bool, tuple[str, ...]], int] = {(False, ()): 0}
        noted = np.zeros(n, dtype=np.int64)
        for i in np.flatnonzero(usual & part.noted).tolist():
            noted[i] = kinds.setdefault((bool(part.note_bits[i] & col.NOTE_PARTIAL), part.notes[i]), len(kinds))
        nz, nh = len(CONN_STATES), max(1, len(part.ztexts))
        combos, tail = np.unique((noted * nz + part.zstate) * nh + part.zhist, return_inverse=True)
        tail = tail.astype(np.int64).ravel()
        by_number = list(kinds)
        tails = _blob([_tail(*by_number[c // (nz * nh)], CONN_STATES[c // nh % nz], part.ztexts[c % nh])
                       for c in map(int, combos.tolist())])
        times = np.ascontiguousarray(np.stack([part.first, part.last], axis=1)[usual].ravel(), dtype=np.float64)
        stamps = Stamps(*_ts_parts(times))
        slow = np.flatnonzero(stamps.digits < 0)
        slow_texts = _blob(list(map(float.__repr__, times[slow].tolist())))
        stamps.digits[slow] = -1 - np.arange(len(slow))  # -1 - its text's number in slow_texts
        most = n * (_ROW_MOST + int(np.diff(tails.off).max())) + len(slow_texts.data) + len(apart_texts.data)
        if len(self._buf) < most:
            self._buf = np.empty(max(most, 2 * len(self._buf)), dtype=np.uint8)
        conns = part.v.conns[part.lo: part.lo + n]
        rows = RowFields(_i64(part.ids), _i64(conns.caddr), _i64(part.cport), _i64(part.cstate), _i64(conns.saddr),
                         _i64(part.sport), _i64(part.sstate), _i64(part.packets), _i64(part.nbytes), tail, which)
        texts = Texts(_PIECE_TEXTS, _NAME_TEXTS, slow_texts, tails, apart_texts)
        end = _write_rows(self._buf, rows, stamps, texts, self.first)
        self.first = False
        return self._buf[:end].data


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


@inlined
def _put_text(out, pos, blob, k):
    """Text k of ``blob`` into ``out`` at ``pos``; returns where it ends."""
    for j in range(blob.off[k], blob.off[k + 1]):
        out[pos] = blob.data[j]
        pos += 1
    return pos


@inlined
def _put_int(out, pos, v):
    if v < 0:
        out[pos] = 45  # '-'
        pos += 1
        v = -v
    digits = 1
    x = v
    while x >= 10:
        x //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        out[pos + k] = 48 + v % 10
        v //= 10
    return pos + digits


@inlined
def _put_ip4(out, pos, a):
    for shift in (24, 16, 8, 0):
        pos = _put_int(out, pos, (a >> shift) & 0xFF)
        if shift:
            out[pos] = 46  # '.'
            pos += 1
    return pos


@helper
def _ts_digits(x):
    """``repr(x)`` as (whole seconds, decimals as an integer, how many decimals), or
    decimals -1 when only Python's ``repr`` says it (see the module's docstring)."""
    if not (1048576.0 <= x < 1e15):
        return 0, 0, -1
    m, k = math.frexp(x)  # x = m * 2**k, 0.5 <= m < 1: one unit in the last place is 2**(k-53)
    if m == 0.5:
        return 0, 0, -1  # a power of two: the double below is nearer
    shift = 53 - k  # at most 32 here, so every product below fits in 64 bits
    whole = int(math.floor(x))
    r = int((x - whole) * (1 << shift))  # the fraction in units in the last place, exactly
    ten = 1
    for d in range(10):
        u0 = int(round((x - whole) * ten))
        best, best_gap = -1, 0
        for u in (u0 - 1, u0, u0 + 1):
            if u < 0 or u > ten:
                continue
            # |u / 10**d - r / 2**shift| against half a unit (2**-shift / 2), times 10**d * 2**shift
            gap = abs(u * (1 << shift) - r * ten)
            # the nearest; halfway between two, the even one (as repr)
            if 2 * gap < ten and (best < 0 or gap < best_gap or (gap == best_gap and u % 2 == 0)):
                best, best_gap = u, gap
            elif 2 * gap == ten:
                return 0, 0, -1  # a tie: rounding to even decides; leave it to repr
        if best >= 0:
            if best == ten:
                return whole + 1, 0, 0  # only when d is 0: a whole number of seconds
            return whole, best, d
        ten *= 10
    return 0, 0, -1


@array_kernel
def _ts_parts(times):
    """:func:`_ts_digits` of each time stamp, as three arrays."""
    n = len(times)
    whole, frac, digits = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        whole[i], frac[i], digits[i] = _ts_digits(times[i])
    return whole, frac, digits


@inlined
def _put_ts(out, pos, whole, frac, d):
    pos = _put_int(out, pos, whole)
    out[pos] = 46  # '.'
    pos += 1
    if d == 0:
        out[pos] = 48
        return pos + 1
    for k in range(d - 1, -1, -1):
        out[pos + k] = 48 + frac % 10
        frac //= 10
    return pos + d


@kernel
def _write_rows(out, rows, stamps, texts, first):
    """Write each connection of ``rows`` into ``out`` as ``json.dumps(indent=1)`` lays it out
    in the summary (see :class:`RowFields`, :class:`Stamps`, :class:`Texts`), each after
    ``,\\n`` but the very first of the list (``first``); returns the bytes written."""
    pos = 0
    k = 0  # the next time stamp of a usual row
    for i in range(len(rows.ids)):
        if i > 0 or not first:
            out[pos] = 44  # ','
            out[pos + 1] = 10
            pos += 2
        j = rows.apart[i]
        if j >= 0:  # written apart
            pos = _put_text(out, pos, texts.apart, j)
            continue
        for f in range(11):
            pos = _put_text(out, pos, texts.pieces, f)
            if f == 0:
                pos = _put_int(out, pos, rows.ids[i])
            elif f == 1:
                pos = _put_ip4(out, pos, rows.caddr[i])
            elif f == 2:
                pos = _put_int(out, pos, rows.cport[i])
            elif f == 3:
                pos = _put_text(out, pos, texts.names, rows.cstate[i])
            elif f == 4:
                pos = _put_ip4(out, pos, rows.saddr[i])
            elif f == 5:
                pos = _put_int(out, pos, rows.sport[i])
            elif f == 6:
                pos = _put_text(out, pos, texts.names, rows.sstate[i])
            elif f == 7 or f == 8:
                d = stamps.digits[k]
                if d >= 0:
                    pos = _put_ts(out, pos, stamps.whole[k], stamps.frac[k], d)
                else:
                    pos = _put_text(out, pos, texts.stamps, -1 - d)
                k += 1
            elif f == 9:
                pos = _put_int(out, pos, rows.packets[i])
            else:
                pos = _put_int(out, pos, rows.nbytes[i])
        pos = _put_text(out, pos, texts.tails, rows.tail[i])
    return pos
