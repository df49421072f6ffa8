"""How the fuzzer damages a capture: where its length fields are (:func:`structure`), and
the mutations (:data:`MUTATIONS`) that flip, truncate, splice and rewrite them. Used by
``fuzzhelp.py``."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

LINKTYPES = (0, 1, 9, 12, 14, 101, 104, 105, 108, 113, 127, 129, 192, 228, 229, 239, 242, 276)
INTERESTING32 = (0, 1, 2, 3, 4, 8, 11, 12, 13, 15, 16, 19, 20, 24, 27, 28, 31, 32, 36, 40, 54, 64, 0x7F, 0x80,
                 0xFF, 0x100, 0xFFFF, 0x10000, 0x40000, 1 << 24, (1 << 24) + 4, 0x7FFFFFFF, 0x80000000,
                 0xFFFFFFF0, 0xFFFFFFFC, 0xFFFFFFFF)


# -- where the lengths are ------------------------------------------------------------------------
def structure(data: bytes) -> tuple[str, list[tuple[int, int]]]:
    """The file's kind and ``(offset, kind)`` of the length fields a mutation may aim at:
    kind 0 a pcap record's captured length, 1 its original length, 2 a pcapng block's leading
    total length, 3 its trailing one, 4 an enhanced packet block's captured length, 5 a link
    type field (pcap header or interface block)."""
    out: list[tuple[int, int]] = []
    if len(data) < 24:
        return "short", out
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        bo = "<" if magic[0] in (0xD4, 0x4D) else ">"
        out.append((20, 5))
        pos = 24
        while pos + 16 <= len(data) and len(out) < 2000:
            incl = struct.unpack_from(bo + "I", data, pos + 8)[0]
            out += [(pos + 8, 0), (pos + 12, 1)]
            if pos + 16 + incl > len(data):
                break
            pos += 16 + incl
        return "pcap", out
    if magic == b"\x0a\x0d\x0d\x0a":
        pos, bo = 0, "<"
        while pos + 12 <= len(data) and len(out) < 2000:
            if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                bo = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(bo + "II", data, pos)
            if blen < 12 or pos + blen > len(data):
                break
            out += [(pos + 4, 2), (pos + blen - 4, 3)]
            if btype == 6 and blen >= 32:
                out.append((pos + 20, 4))
            if btype == 1 and blen >= 20:
                out.append((pos + 8, 5))
            pos += blen
        return "pcapng", out
    return "other", out


def _put32(buf: bytearray, off: int, value: int, big: bool) -> None:
    if 0 <= off and off + 4 <= len(buf):
        buf[off:off + 4] = struct.pack(">I" if big else "<I", value & 0xFFFFFFFF)


def _big(data: bytes | bytearray, off: int) -> bool:
    """Whether the length field at ``off`` is big-endian (the file's byte order, as well as can
    be told: a pcapng's last section header before ``off``)."""
    if data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return True
    i = bytes(data[:off]).rfind(b"\x0a\x0d\x0d\x0a")
    return i >= 0 and bytes(data[i + 8:i + 12]) == b"\x1a\x2b\x3c\x4d"


# -- mutations ------------------------------------------------------------------------------------
def _pos(rng: random.Random, data: bytearray, fields: list[tuple[int, int]]) -> int:
    """A position to damage: near a header half of the time, anywhere otherwise."""
    if fields and rng.random() < 0.5:
        off, _kind = rng.choice(fields)
        return max(0, min(len(data) - 1, off + rng.randrange(-8, 24)))
    return rng.randrange(len(data))


def m_flip(rng, data, fields, other):  # type: ignore[no-untyped-def]
    n = rng.choice((1, 1, 2, 4, 8))
    for _ in range(n):
        p = _pos(rng, data, fields)
        data[p] ^= 1 << rng.randrange(8)
    return data, f"flip {n} bits"


def m_bytes(rng, data, fields, other):  # type: ignore[no-untyped-def]
    p = _pos(rng, data, fields)
    k = rng.choice((1, 2, 4))
    val = rng.choice((b"\x00", b"\xff", b"\x7f", b"\x80", bytes([rng.randrange(256)]))) * k
    data[p:p + k] = val[: max(0, min(k, len(data) - p))]
    return data, f"overwrite {k} bytes at {p} with {val[:1].hex()}"


def m_truncate(rng, data, fields, other):  # type: ignore[no-untyped-def]
    p = _pos(rng, data, fields) if rng.random() < 0.7 else rng.randrange(len(data) + 1)
    return data[:p], f"truncate at {p}"


def m_length(rng, data, fields, other):  # type: ignore[no-untyped-def]
    lens = [(o, k) for o, k in fields if k != 5]
    if not lens:
        return m_flip(rng, data, fields, other)
    off, kind = rng.choice(lens)
    old = struct.unpack_from(">I" if _big(data, off) else "<I", data, off)[0]
    val = rng.choice(INTERESTING32 + (old - 1, old + 1, old - 4, old + 4, old * 2, old + 0x10000))
    _put32(data, off, val, _big(data, off))
    return data, f"length field ({'incl orig lead trail epb-incl'.split()[kind]}) at {off}: {old} -> {val & 0xFFFFFFFF}"


def m_linktype(rng, data, fields, other):  # type: ignore[no-untyped-def]
    lts = [o for o, k in fields if k == 5]
    if not lts:
        return m_bytes(rng, data, fields, other)
    off = rng.choice(lts)
    r = rng.random()
    val = rng.choice(LINKTYPES) if r < 0.7 else rng.randrange(1 << 16) if r < 0.9 else rng.randrange(1 << 32)
    kind, _f = structure(bytes(data))
    big = _big(data, off)
    if kind == "pcapng":  # a 16-bit link type, then 16 reserved bits
        data[off:off + 2] = struct.pack(">H" if big else "<H", val & 0xFFFF)
    else:
        _put32(data, off, val, big)
    return data, f"link type at {off} -> {val}"


def m_splice(rng, data, fields, other):  # type: ignore[no-untyped-def]
    name, odata = other
    if rng.random() < 0.5 and fields:
        cut = rng.choice(fields)[0] - rng.choice((0, 4, 8))
    else:
        cut = rng.randrange(len(data) + 1)
    ofields = structure(odata)[1]
    if rng.random() < 0.5 and ofields:
        ocut = rng.choice(ofields)[0] - rng.choice((0, 4, 8))
    else:
        ocut = rng.randrange(len(odata) + 1)
    cut, ocut = max(0, cut), max(0, ocut)
    return data[:cut] + odata[ocut:], f"splice: head {cut} bytes + {name} from {ocut}"


def m_insert(rng, data, fields, other):  # type: ignore[no-untyped-def]
    p = _pos(rng, data, fields)
    k = rng.choice((1, 2, 3, 4, 8, 16))
    data[p:p] = bytes(rng.randrange(256) for _ in range(k))
    return data, f"insert {k} bytes at {p}"


def m_delete(rng, data, fields, other):  # type: ignore[no-untyped-def]
    p = _pos(rng, data, fields)
    k = rng.choice((1, 2, 3, 4, 8, 16, 64))
    del data[p:p + k]
    return data, f"delete {k} bytes at {p}"


def m_double(rng, data, fields, other):  # type: ignore[no-untyped-def]
    if len(fields) < 2:
        return m_insert(rng, data, fields, other)
    i = rng.randrange(len(fields) - 1)
    a, b = fields[i][0], fields[i + 1][0]
    a, b = min(a, b), max(a, b)
    data[b:b] = data[a:b]
    return data, f"double bytes {a}..{b}"


def m_header(rng, data, fields, other):  # type: ignore[no-untyped-def]
    kind, _f = structure(bytes(data))
    if kind == "pcap":
        what = rng.choice(("version", "snaplen", "magic"))
        big = _big(data, 0)
        if what == "version":
            data[4:6] = struct.pack(">H" if big else "<H", rng.choice((0, 1, 2, 3, 0xFFFF)))
        elif what == "snaplen":
            _put32(data, 16, rng.choice(INTERESTING32), big)
        else:
            data[0:4] = rng.choice((b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d",
                                    b"\x0a\x0d\x0d\x0a"))
        return data, f"pcap header: {what}"
    if kind == "pcapng":
        shbs = [i for i in range(0, len(data) - 12, 4) if data[i:i + 4] == b"\x0a\x0d\x0d\x0a"]
        i = rng.choice(shbs) if shbs else 0
        what = rng.choice(("byte order", "version", "section length", "tsresol"))
        if what == "byte order":
            data[i + 8:i + 12] = rng.choice((b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d", b"\x00\x00\x00\x00"))
        elif what == "version":
            data[i + 12:i + 14] = bytes([rng.randrange(4), 0])
        elif what == "section length":
            data[i + 16:i + 24] = rng.choice((b"\xff" * 8, b"\x00" * 8, bytes(rng.randrange(256) for _ in range(8))))
        else:  # the if_tsresol option's value byte: code 9 after an interface block's header
            at = bytes(data).find(b"\x09\x00\x01\x00")
            if at < 0:
                at = bytes(data).find(b"\x00\x09\x00\x01")
            if at >= 0 and at + 4 < len(data):
                data[at + 4] = rng.choice((0, 6, 9, 19, 63, 0x80, 0x8A, 0xBF, 0xFF, rng.randrange(256)))
        return data, f"pcapng header: {what}"
    return m_bytes(rng, data, fields, other)


def m_short_block(rng, data, fields, other):  # type: ignore[no-untyped-def]
    """A record or block too short for its own fields, put between two others or at the end."""
    kind, _f = structure(bytes(data))
    starts = [o - (8 if k == 0 else 4) for o, k in fields if k in (0, 2)] + [len(data)]
    at = rng.choice(starts) if rng.random() < 0.5 else len(data)
    big = _big(data, max(0, min(at, len(data) - 1)))
    o = ">" if big else "<"
    if kind == "pcapng":
        btype = rng.choice((2, 3, 6, 6, 1, 5, 0x0A0D0D0A, rng.randrange(1 << 32)))
        blen = rng.choice((12, 16, 20, 24, 28))
        body = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(blen - 12))
        block = struct.pack(o + "II", btype, blen) + body + struct.pack(o + "I", blen)
    else:
        incl = rng.choice((0, 1, 4, 14, 20, 40))
        block = struct.pack(o + "IIII", 1, 0, incl, rng.choice((incl, 0, 0xFFFFFFFF))) + bytes(incl)
    data[at:at] = block
    return data, f"short block of {len(block)} bytes at {at}"


MUTATIONS: tuple[Callable, ...] = (m_flip, m_flip, m_bytes, m_bytes, m_truncate, m_length, m_length, m_linktype,
                                   m_splice, m_insert, m_delete, m_double, m_header, m_short_block)
