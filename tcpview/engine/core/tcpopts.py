"""TCP options read from a segment's bytes: compiled for the loop (:func:`sack_delivered`,
:func:`syn_options`) and in Python for what the views show (:func:`parse_options`)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...jit import Int, helper, inlined
from .tcp import WS_NONE
from .wire import be16 as _be16
from .wire import be32 as _be32

ABSENT = -1
"""What the option readers give for an option the segment does not carry."""
_END = -1  # the length _option_at gives at the end of the options (or where one does not fit)


@inlined
def _option_at(b: np.ndarray, p: Int, end: Int) -> tuple:
    """The TCP option at p: ``(kind, length)``; length 1 for a NOP, ``_END`` at the end of the
    list or where an option does not fit."""
    kind = np.int64(b[p])
    if kind == 0:
        return kind, np.int64(_END)
    if kind == 1:
        return kind, np.int64(1)
    if p + 2 > end:
        return kind, np.int64(_END)
    olen = np.int64(b[p + 1])
    if olen < 2 or p + olen > end:
        return kind, np.int64(_END)
    return kind, olen


@helper
def sack_delivered(b: np.ndarray, start: Int, end: Int) -> Int:
    """The bytes a segment's SACK blocks cover (at most the first three, as Wireshark keeps),
    summed in 32 bits; ``ABSENT`` when it has no SACK option."""
    p = start
    while p < end:
        kind, olen = _option_at(b, p, end)
        if olen == _END:
            break
        if kind == 5:
            total = np.int64(0)
            q = p + 2
            k = 0
            while q + 8 <= p + olen and k < 3:
                total += _be32(b, q + 4) - _be32(b, q)
                q += 8
                k += 1
            return total & 0xFFFFFFFF
        p += olen
    return np.int64(ABSENT)


@helper
def syn_options(b: np.ndarray, start: Int, end: Int) -> tuple:
    """What a SYN's options say: ``(window-scale shift for scaling, mss, ws, sack_perm)``.

    The first is the shift as Wireshark reads it for scaling (``WS_NONE`` when there is no
    window-scale option); the others are what the ladder shows (``ABSENT`` when absent), read
    as :func:`parse_options` reads them.
    """
    shift = np.int64(WS_NONE)
    p = start
    while p < end:
        kind = b[p]
        if kind == 3:
            shift = min(np.int64(b[p + 2]), np.int64(14)) if p + 2 < end else np.int64(WS_NONE)
            break
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 1 >= end:
            break
        olen = np.int64(b[p + 1])
        if olen < 2:
            break
        p += olen
    mss: Int = np.int64(ABSENT)
    ws: Int = np.int64(ABSENT)
    sack = False
    p = start
    while p < end:
        kind, olen = _option_at(b, p, end)
        if olen == _END:
            break
        if kind == 2 and olen == 4:
            mss = _be16(b, p + 2)
        elif kind == 3 and olen == 3:
            ws = min(np.int64(b[p + 2]), np.int64(14))
        elif kind == 4 and olen == 2:
            sack = True
        p += olen
    return shift, mss, ws, sack


def parse_options(buf: Any, start: int, end: int) -> dict[str, Any]:
    """Parse TCP options in ``buf[start:end]`` (stops quietly at a truncated option).

    Returns a dict with any of: ``mss``, ``ws``, ``sack_perm``, ``sack`` (list of
    (left, right) raw edges), ``ts`` ((tsval, tsecr)), and ``other`` (list of kinds).
    """
    out: dict[str, Any] = {}
    p = start
    end = min(end, len(buf))
    while p < end:
        kind = buf[p]
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 2 > end:
            break
        olen = buf[p + 1]
        if olen < 2 or p + olen > end:
            break
        if kind == 2 and olen == 4:
            out["mss"] = struct.unpack_from("!H", buf, p + 2)[0]
        elif kind == 3 and olen == 3:
            out["ws"] = min(buf[p + 2], 14)
        elif kind == 4 and olen == 2:
            out["sack_perm"] = True
        elif kind == 5 and olen >= 10:
            out["sack"] = [struct.unpack_from("!II", buf, b) for b in range(p + 2, p + olen - 7, 8)]
        elif kind == 8 and olen == 10:
            out["ts"] = struct.unpack_from("!II", buf, p + 2)
        else:
            out.setdefault("other", []).append(kind)
        p += olen
    return out


def parse_options_of(fl: int, mss: int, ws: int, side: int) -> dict[str, Any] | None:
    """A connection side's SYN options as :func:`parse_options` gives them, from what the
    engine keeps of them (None when its SYN had no options)."""
    from .columns import F_SACK_PERM, F_SYN_OPTS

    if not fl & (F_SYN_OPTS << side):
        return None
    out: dict[str, Any] = {}
    if mss >= 0:
        out["mss"] = mss
    if ws >= 0:
        out["ws"] = ws
    if fl & (F_SACK_PERM << side):
        out["sack_perm"] = True
    return out
