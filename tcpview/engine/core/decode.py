"""Raw frame bytes -> TCP segment fields, compiled, with no dissection and no Python objects.

:func:`decode_frame` is the decoder the engine's compiled loop calls for every frame: link
layers (Ethernet with 802.1Q/QinQ, Linux cooked SLL and SLL2, BSD/OpenBSD loopback, raw
IPv4/IPv6, NFLOG, PPI, IP over InfiniBand, Linux ARCnet), IPv4 (options skipped), IPv6
(extension header chain, jumbo payloads) and the TCP header. It never raises on bad input: a
frame it cannot use comes back with a reason code (``REASONS``), which the engine counts; a
fragment comes back as ``FRAGMENT`` with ``O_FRAG_*`` for :mod:`tcpview.engine.core.reassembly`.

:func:`decode` is the same for one frame from Python (tests, tools); :func:`parse_options`
formats what the views show; scapy dissects only the frame a user inspects.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ...jit import Int, helper, inlined
from ...textutil import addr_value
from .tcp import WS_NONE

OK = 0
TRUNC_LINK, NOT_IP, UNSUPPORTED_LINK, TRUNC_IP, BAD_IP_VERSION, BAD_IHL, NOT_TCP, FRAGMENT, TRUNC_TCP, BAD_THL = range(1, 11)
REASONS: tuple[str, ...] = (
    "",
    "truncated link header",
    "not ip",
    "unsupported link type",  # the number is added where it is counted
    "truncated ip header",
    "bad ip version",
    "bad ip header length",
    "not tcp",
    "ip fragment (not reassembled)",
    "truncated tcp header",
    "bad tcp header length",
    # what IP fragment reassembly (tcpview.engine.core.reassembly) counts a fragment's frame under
    "ip fragment (its datagram not complete yet)",
    "ip fragment (timed out, not reassembled)",
    "ip fragment (timed out without the first, not reassembled)",
    "ip fragment (overlapping: datagram dropped)",
    "ip fragment (duplicate: dropped)",
    "ip fragment (bad length or offset: dropped)",
    "ip fragment (reassembly table full: dropped)",
    "ip fragment (reassembly memory limit: dropped)",
)
"""Why a frame was skipped, by reason code."""
(FRAG_WAITING, FRAG_TIMED_OUT, FRAG_NO_FIRST, FRAG_OVERLAP, FRAG_DUPLICATE, FRAG_BAD, FRAG_TABLE_FULL,
 FRAG_OVER_LIMIT) = range(11, 19)
ABSENT = -1
"""What the option readers give for an option the segment does not carry."""
_END = -1  # the length _option_at gives at the end of the options (or where one does not fit)


def reason_text(code: Int, linktype: int) -> str:
    """The text a skipped frame is counted under (``unsupported link type 105``)."""
    if code == UNSUPPORTED_LINK:
        return f"unsupported link type {linktype}"
    return REASONS[code]


@inlined
def _be16(b: np.ndarray, p: Int) -> Int:
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@inlined
def _be32(b: np.ndarray, p: Int) -> Int:
    return (np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16) | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])


@inlined
def _le16(b: np.ndarray, p: Int) -> Int:
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@inlined
def _le32(b: np.ndarray, p: Int) -> Int:
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@inlined
def _be64(b: np.ndarray, p: Int) -> Int:
    v = np.int64(0)
    for i in range(8):
        v = (v << 8) | np.int64(b[p + i])
    return v


# where decode_frame puts a segment's fields
(O_FAM, O_SRC_HI, O_SRC_LO, O_DST_HI, O_DST_LO, O_SPORT, O_DPORT, O_SEQ, O_ACK, O_FLAGS, O_WIN, O_PLEN, O_TOFF,
 O_THL, O_LINKTYPE) = range(15)
# and for a fragment: its datagram's id, its bytes' offset in the datagram's payload, their number,
# more to follow, the bytes before the TCP header (the first's), where its bytes are in ``b``
O_FRAG_ID, O_FRAG_OFF, O_FRAG_LEN, O_FRAG_MORE, O_FRAG_PRE, O_FRAG_AT = range(16, 22)
OUT_SIZE = 24


@helper
def _tcp(b: np.ndarray, t: Int, end: Int, tcp_total: Int, out: np.ndarray) -> Int:
    if t + 20 > end:
        return TRUNC_TCP
    hlen = (np.int64(b[t + 12]) >> 4) * 4
    if hlen < 20:
        return BAD_THL
    plen = tcp_total - hlen
    out[O_SPORT] = _be16(b, t)
    out[O_DPORT] = _be16(b, t + 2)
    out[O_SEQ] = _be32(b, t + 4)
    out[O_ACK] = _be32(b, t + 8)
    out[O_FLAGS] = b[t + 13]
    out[O_WIN] = _be16(b, t + 14)
    out[O_PLEN] = plen if plen > 0 else 0
    out[O_TOFF] = t
    out[O_THL] = hlen
    return OK


@helper
def _fragment(b: np.ndarray, t: Int, end: Int, size: Int, ident: Int, off: Int, more: Int, pre: Int,
              out: np.ndarray) -> Int:
    """FRAGMENT: ``size`` bytes of a TCP datagram's payload from its byte ``off``, in ``out``; the
    first's TCP header (at ``t``, ``pre`` bytes into the payload) is read too (20 bytes at least)."""
    out[O_FRAG_ID] = ident
    out[O_FRAG_OFF] = off
    out[O_FRAG_LEN] = size
    out[O_FRAG_MORE] = more
    out[O_FRAG_PRE] = pre
    out[O_FRAG_AT] = t - pre
    if off == 0:  # (the options may go on in the next fragment: reassembly reads them)
        code = _tcp(b, t, min(end, t + size - pre), size - pre, out)
        if code != OK:
            return code
    return FRAGMENT


@helper
def _ip4(b: np.ndarray, p: Int, end: Int, wire_len: Int, out: np.ndarray) -> Int:
    if p + 20 > end:
        return TRUNC_IP
    vihl = np.int64(b[p])
    if vihl >> 4 != 4:
        return BAD_IP_VERSION
    ihl = (vihl & 15) * 4
    if ihl < 20:
        return BAD_IHL
    if b[p + 9] != 6:
        return NOT_TCP
    total = _be16(b, p + 2)
    if total == 0 or total > wire_len:
        # 0: TSO / BIG TCP leaves the field empty; too big: a bad header. The frame tells.
        total = wire_len
    out[O_FAM] = 4
    out[O_SRC_HI] = 0
    out[O_SRC_LO] = _be32(b, p + 12)
    out[O_DST_HI] = 0
    out[O_DST_LO] = _be32(b, p + 16)
    if _be16(b, p + 6) & 0x3FFF:  # more fragments, or an offset: reassembly's
        fo = _be16(b, p + 6)
        return _fragment(b, p + ihl, end, total - ihl, _be16(b, p + 4), (fo & 0x1FFF) * 8, (fo >> 13) & 1, 0, out)
    return _tcp(b, p + ihl, end, total - ihl, out)


@helper
def _ip6(b: np.ndarray, p: Int, end: Int, wire_len: Int, out: np.ndarray) -> Int:
    if p + 40 > end:
        return TRUNC_IP
    if b[p] >> 4 != 6:
        return BAD_IP_VERSION
    plen = _be16(b, p + 4)
    nh = np.int64(b[p + 6])
    q = p + 40
    jumbo = plen == 0
    frag = np.int64(-1)  # where the fragment header of a first fragment is
    while nh != 6:
        if nh == 44:  # fragment header
            if q + 8 > end:
                return TRUNC_IP
            word = _be16(b, q + 2)
            if word & 0xFFF8:  # a later fragment: TCP's when TCP comes next (only the first has the rest)
                if b[q] != 6:
                    return NOT_TCP
                frag = np.int64(q)
                break
            frag = np.int64(q) if word & 1 else frag  # the first (an atomic fragment, with no more, is whole)
            nh = np.int64(b[q])
            q += 8
        elif nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140 or nh == 253 or nh == 254:
            if q + 2 > end:
                return TRUNC_IP
            if nh == 0 and jumbo:
                # the Jumbo Payload option (type 0xC2) carries the real length
                o = q + 2
                oend = min(q + 8 + np.int64(b[q + 1]) * 8, end)
                while o + 2 <= oend:
                    t = b[o]
                    if t == 0:
                        o += 1
                        continue
                    if t == 0xC2 and o + 6 <= end:
                        plen = _be32(b, o + 2)
                        jumbo = False
                    o += 2 + np.int64(b[o + 1])
            nh, q = np.int64(b[q]), q + 8 + np.int64(b[q + 1]) * 8
        elif nh == 51:  # AH: length in 4-byte units, minus 2
            if q + 2 > end:
                return TRUNC_IP
            nh, q = np.int64(b[q]), q + (np.int64(b[q + 1]) + 2) * 4
        else:
            return NOT_TCP
    if jumbo or plen > wire_len - 40:
        plen = wire_len - 40
    out[O_FAM] = 6
    out[O_SRC_HI] = _be64(b, p + 8)
    out[O_SRC_LO] = _be64(b, p + 16)
    out[O_DST_HI] = _be64(b, p + 24)
    out[O_DST_LO] = _be64(b, p + 32)
    if frag >= 0:  # offsets count from the end of the fragment header
        word = _be16(b, frag + 2)
        if word & 0xFFF8:
            q = frag + 8
        return _fragment(b, q, end, plen - (frag + 8 - p - 40), _be32(b, frag + 4), word & 0xFFF8, word & 1,
                         q - frag - 8, out)
    return _tcp(b, q, end, plen - (q - p - 40), out)


@helper
def _by_ethertype(b: np.ndarray, et: Int, p: Int, end: Int, wire_len: Int, out: np.ndarray) -> Int:
    if et == 0x0800:
        return _ip4(b, p, end, wire_len, out)
    if et == 0x86DD:
        return _ip6(b, p, end, wire_len, out)
    return NOT_IP


@helper
def decode_frame(b: np.ndarray, off: Int, caplen: Int, origlen: Int, linktype: Int, out: np.ndarray) -> Int:
    """Decode the frame in ``b[off:off+caplen]`` (``origlen`` bytes on the wire).

    Returns 0 for a TCP segment, its fields in ``out`` (``O_*`` indices; an IPv4 address is
    ``(0, addr)``, an IPv6 address its two 64-bit halves), else the reason code.
    """
    lt = linktype
    while lt == 192:  # PPI: a header, then a frame of another link type
        if caplen < 8:
            return TRUNC_LINK
        hl = _le16(b, off + 2)
        dlt = _le32(b, off + 4)
        if hl < 8 or hl > caplen or dlt == 192:
            return TRUNC_LINK
        off += hl
        caplen -= hl
        origlen -= hl
        lt = dlt
    end = off + caplen
    if lt == 1:
        p = off + 12
        if p + 2 > end:
            return TRUNC_LINK
        et = _be16(b, p)
        p += 2
        while et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200:
            if p + 4 > end:
                return TRUNC_LINK
            et = _be16(b, p + 2)
            p += 4
        return _by_ethertype(b, et, p, end, origlen - (p - off), out)
    if lt == 113:
        if off + 16 > end:
            return TRUNC_LINK
        return _by_ethertype(b, _be16(b, off + 14), off + 16, end, origlen - 16, out)
    if lt == 276:
        if off + 20 > end:
            return TRUNC_LINK
        return _by_ethertype(b, _be16(b, off), off + 20, end, origlen - 20, out)
    if lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:
        if off >= end:
            return TRUNC_LINK
        v = b[off] >> 4
        if v == 4:
            return _ip4(b, off, end, origlen, out)
        if v == 6:
            return _ip6(b, off, end, origlen, out)
        return NOT_IP
    if lt == 0 or lt == 108:
        if off + 4 > end:
            return TRUNC_LINK
        if lt == 108:
            af = _be32(b, off)
        else:
            af = _le32(b, off)
            if af > 0xFFFF:
                af = _be32(b, off)
        if af == 2:
            return _ip4(b, off + 4, end, origlen - 4, out)
        if af == 10 or af == 24 or af == 28 or af == 30:
            return _ip6(b, off + 4, end, origlen - 4, out)
        return NOT_IP
    if lt == 239:  # NFLOG: TLVs, the packet in NFULA_PAYLOAD
        if off + 4 > end:
            return TRUNC_LINK
        family = b[off]
        p = off + 4
        while p + 4 <= end:
            tlen = _le16(b, p)
            ttype = _le16(b, p + 2)
            if tlen < 4:
                return TRUNC_LINK
            if ttype == 9:
                start = p + 4
                stop = min(p + tlen, end)
                if family == 2:
                    return _ip4(b, start, stop, tlen - 4, out)
                if family == 10:
                    return _ip6(b, start, stop, tlen - 4, out)
                return NOT_IP
            p += (tlen + 3) & ~3
        return NOT_IP
    if lt == 242:  # IP over InfiniBand: source and destination hardware addresses, type, reserved
        if off + 44 > end:
            return TRUNC_LINK
        return _by_ethertype(b, _be16(b, off + 40), off + 44, end, origlen - 44, out)
    if lt == 129:  # Linux ARCnet: source, destination, offset, protocol (RFC 1201: split flag, sequence)
        if off + 5 > end:
            return TRUNC_LINK
        proto = b[off + 4]
        if proto == 0xF0:  # RFC 1051 IP: no split flag
            return _ip4(b, off + 5, end, origlen - 5, out)
        if proto != 0xD4 and proto != 0xC4:
            return NOT_IP
        if off + 8 > end:
            return TRUNC_LINK
        p = off + 8
        if b[off + 5] == 0xFF:  # an exception packet: padding, then the protocol and split flag again
            p += 4
            if p > end:
                return TRUNC_LINK
        if proto == 0xD4:
            return _ip4(b, p, end, origlen - (p - off), out)
        return _ip6(b, p, end, origlen - (p - off), out)
    out[O_LINKTYPE] = lt  # the link type it does not read (PPI's inner one, say)
    return UNSUPPORTED_LINK


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


def decode(buf: Any, off: int, caplen: int, origlen: int, linktype: int) -> tuple | str:
    """Decode one frame from Python: the fields as a tuple, or the reason it was skipped.

    Returns ``(family, src, dst, sport, dport, seq, ack, flags, win, payload_len, tcp_off,
    tcp_hlen)`` for a TCP segment (``src``/``dst`` ints for IPv4, 16 bytes for IPv6),
    otherwise a short reason such as ``"not tcp"``.
    """
    b = np.frombuffer(buf, dtype=np.uint8)
    out = np.zeros(OUT_SIZE, dtype=np.int64)
    code = decode_frame(b, off, min(caplen, len(b) - off), origlen, linktype, out)
    if code:
        return reason_text(code, linktype)
    r = out.tolist()
    fam = r[O_FAM]
    src, dst = addr_value(fam, r[O_SRC_HI], r[O_SRC_LO]), addr_value(fam, r[O_DST_HI], r[O_DST_LO])
    return (fam, src, dst, *r[O_SPORT:O_THL + 1])


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
