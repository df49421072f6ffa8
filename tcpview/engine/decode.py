"""Raw frame bytes -> TCP segment fields, with precompiled structs and no dissection.

This is the hot path: every captured frame goes through :func:`decode`. It never raises on
bad input; a frame it cannot use comes back as a ``str`` reason, which the caller counts.
scapy's full dissection is used only for the one frame a user inspects (``tcpview.sources.frames``).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_LE_H = struct.Struct("<H")
_I_LE = struct.Struct("<I")
_I_BE = struct.Struct("!I")
# version/ihl, total length, flags+fragment offset, protocol, src, dst
_IP4 = struct.Struct("!BxHxxHxBxxII")
# payload length, next header, src(16), dst(16)
_IP6 = struct.Struct("!4xHBx16s16s")
# sport, dport, seq, ack, data offset, flags, window
_TCP = struct.Struct("!HHIIBBH")
_PPI = struct.Struct("<BBHI")

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
_IP6_EXT = frozenset((0, 43, 60, 135, 139, 140, 253, 254))

# Returned tuple layout (indices), kept as a plain tuple because it is built per packet.
# (family, src, dst, sport, dport, seq, ack, flags, win, payload_len, tcp_off, tcp_hlen)
# family is 4 or 6; src/dst are ints for IPv4 and 16-byte bytes for IPv6.
Decoded = tuple


def decode(buf: Any, off: int, caplen: int, origlen: int, linktype: int) -> Decoded | str:
    """Decode one frame that occupies ``buf[off:off+caplen]``.

    Args:
        buf: the bytes (or memoryview / bytearray) holding the frame.
        off: the frame's first byte in ``buf``.
        caplen: how many bytes of the frame were captured.
        origlen: the frame's length on the wire (snaplen-cut frames have caplen < origlen).
        linktype: the pcap link-layer header type.

    Returns:
        ``(family, src, dst, sport, dport, seq, ack, flags, win, payload_len, tcp_off,
        tcp_hlen)`` for a TCP segment, otherwise a short reason string (e.g. ``"not tcp"``).
    """
    end = off + caplen
    if linktype == 1:
        p = off + 12
        if p + 2 > end:
            return "truncated link header"
        et = _H.unpack_from(buf, p)[0]
        p += 2
        while et in _VLAN_TYPES:
            if p + 4 > end:
                return "truncated link header"
            et = _H.unpack_from(buf, p + 2)[0]
            p += 4
        if et == 0x0800:
            return _ip4(buf, p, end, origlen - (p - off))
        if et == 0x86DD:
            return _ip6(buf, p, end, origlen - (p - off))
        return "not ip"
    if linktype == 113:
        if off + 16 > end:
            return "truncated link header"
        et = _H.unpack_from(buf, off + 14)[0]
        p = off + 16
    elif linktype == 276:
        if off + 20 > end:
            return "truncated link header"
        et = _H.unpack_from(buf, off)[0]
        p = off + 20
    elif linktype in (101, 12, 14, 228, 229):
        if off >= end:
            return "truncated link header"
        v = buf[off] >> 4
        if v == 4:
            return _ip4(buf, off, end, origlen)
        if v == 6:
            return _ip6(buf, off, end, origlen)
        return "not ip"
    elif linktype == 0 or linktype == 108:
        if off + 4 > end:
            return "truncated link header"
        if linktype == 108:
            af = _I_BE.unpack_from(buf, off)[0]
        else:
            af = _I_LE.unpack_from(buf, off)[0]
            if af > 0xFFFF:
                af = _I_BE.unpack_from(buf, off)[0]
        p = off + 4
        if af == 2:
            return _ip4(buf, p, end, origlen - 4)
        if af in (10, 24, 28, 30):
            return _ip6(buf, p, end, origlen - 4)
        return "not ip"
    elif linktype == 239:
        return _nflog(buf, off, end, origlen)
    elif linktype == 192:
        if off + 8 > end:
            return "truncated link header"
        _v, _f, plen, dlt = _PPI.unpack_from(buf, off)
        if plen < 8 or off + plen > end or dlt == 192:
            return "truncated link header"
        return decode(buf, off + plen, caplen - plen, origlen - plen, dlt)
    else:
        return f"unsupported link type {linktype}"
    if et == 0x0800:
        return _ip4(buf, p, end, origlen - (p - off))
    if et == 0x86DD:
        return _ip6(buf, p, end, origlen - (p - off))
    return "not ip"


def _nflog(buf: Any, off: int, end: int, origlen: int) -> Decoded | str:
    if off + 4 > end:
        return "truncated link header"
    family = buf[off]
    p = off + 4
    while p + 4 <= end:
        tlen, ttype = _LE_H.unpack_from(buf, p)[0], _LE_H.unpack_from(buf, p + 2)[0]
        if tlen < 4:
            return "truncated link header"
        if ttype == 9:  # NFULA_PAYLOAD
            start = p + 4
            stop = min(p + tlen, end)
            if family == 2:
                return _ip4(buf, start, stop, tlen - 4)
            if family == 10:
                return _ip6(buf, start, stop, tlen - 4)
            return "not ip"
        p += (tlen + 3) & ~3
    return "not ip"


def _ip4(buf: Any, p: int, end: int, wire_len: int) -> Decoded | str:
    if p + 20 > end:
        return "truncated ip header"
    vihl, total, frag, proto, src, dst = _IP4.unpack_from(buf, p)
    if vihl >> 4 != 4:
        return "bad ip version"
    ihl = (vihl & 15) * 4
    if ihl < 20:
        return "bad ip header length"
    if proto != 6:
        return "not tcp"
    if frag & 0x1FFF:
        return "ip fragment (not reassembled)"
    if total == 0 or total > wire_len:
        # 0: TSO / BIG TCP leaves the field empty; too big: a bad header. The frame tells.
        total = wire_len
    return _tcp(buf, p + ihl, end, total - ihl, 4, src, dst)


def _ip6(buf: Any, p: int, end: int, wire_len: int) -> Decoded | str:
    if p + 40 > end:
        return "truncated ip header"
    if buf[p] >> 4 != 6:
        return "bad ip version"
    plen, nh, src, dst = _IP6.unpack_from(buf, p)
    q = p + 40
    jumbo = plen == 0
    while nh != 6:
        if nh == 44:  # fragment header
            if q + 8 > end:
                return "truncated ip header"
            if _H.unpack_from(buf, q + 2)[0] & 0xFFF8:
                return "ip fragment (not reassembled)"
            nh = buf[q]
            q += 8
        elif nh in _IP6_EXT:
            if q + 2 > end:
                return "truncated ip header"
            if nh == 0 and jumbo:
                # Jumbo Payload option (type 0xC2) carries the real length
                o, oend = q + 2, q + 8 + buf[q + 1] * 8
                while o + 2 <= min(oend, end):
                    t = buf[o]
                    if t == 0:
                        o += 1
                        continue
                    if t == 0xC2 and o + 6 <= end:
                        plen = _I_BE.unpack_from(buf, o + 2)[0]
                        jumbo = False
                    o += 2 + buf[o + 1]
            nh, q = buf[q], q + 8 + buf[q + 1] * 8
        elif nh == 51:  # AH: length in 4-byte units, minus 2
            if q + 2 > end:
                return "truncated ip header"
            nh, q = buf[q], q + (buf[q + 1] + 2) * 4
        else:
            return "not tcp"
    if jumbo or plen > wire_len - 40:
        plen = wire_len - 40
    return _tcp(buf, q, end, plen - (q - p - 40), 6, src, dst)


def _tcp(buf: Any, t: int, end: int, tcp_total: int, fam: int, src: Any, dst: Any) -> Decoded | str:
    if t + 20 > end:
        return "truncated tcp header"
    sport, dport, seq, ack, doff, flags, win = _TCP.unpack_from(buf, t)
    hlen = (doff >> 4) * 4
    if hlen < 20:
        return "bad tcp header length"
    plen = tcp_total - hlen
    if plen < 0:
        plen = 0
    return (fam, src, dst, sport, dport, seq, ack, flags, win, plen, t, hlen)


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
            out["mss"] = _H.unpack_from(buf, p + 2)[0]
        elif kind == 3 and olen == 3:
            out["ws"] = min(buf[p + 2], 14)
        elif kind == 4 and olen == 2:
            out["sack_perm"] = True
        elif kind == 5 and olen >= 10:
            blocks = []
            for b in range(p + 2, p + olen - 7, 8):
                blocks.append(struct.unpack_from("!II", buf, b))
            out["sack"] = blocks
        elif kind == 8 and olen == 10:
            out["ts"] = struct.unpack_from("!II", buf, p + 2)
        else:
            out.setdefault("other", []).append(kind)
        p += olen
    return out


def ip_text(family: int, addr: Any) -> str:
    """Format an address from :func:`decode` (int for IPv4, 16 bytes for IPv6)."""
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, _I_BE.pack(addr))
    return socket.inet_ntop(socket.AF_INET6, bytes(addr))
