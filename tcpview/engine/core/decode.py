"""Raw frame bytes -> TCP segment fields, compiled, with no dissection and no Python objects.

:func:`decode_frame` is the decoder the engine's compiled loop calls for every frame: link
layers (Ethernet with 802.1Q/QinQ, Linux cooked SLL and SLL2, BSD/OpenBSD loopback, raw
IPv4/IPv6, NFLOG, PPI, IP over InfiniBand, Linux ARCnet, PPP and Cisco HDLC, PPPoE, 802.11
with or without radiotap), IPv4 (options skipped), IPv6 (extension header chain, jumbo
payloads) and the TCP header. The usual frame (Ethernet, VLAN tags, IP, TCP) is read straight
through; any other goes through :func:`_walk`, which follows encapsulations and tunnels (MPLS,
PBB, FabricPath, PPPoE, GRE, ERSPAN, VXLAN, Geneve, GRE-in-UDP, IP-in-IP, Teredo, AYIYA:
:mod:`tcpview.engine.core.encap`) to the inner IP header, keeping where each layer was
(``O_LAYERS``) so that the outer layers can be named later from the frame. It never raises on
bad input: a frame it cannot use comes back with a reason code (``REASONS``), which the engine
counts; a fragment of a TCP datagram comes back as ``FRAGMENT`` with ``O_FRAG_*`` for
:mod:`tcpview.engine.core.reassembly`.

:func:`decode` is the same decoder for one frame from Python (tests, tools), :func:`layers`
the layers it walked. scapy's full dissection is used only for the one frame a user inspects
(``tcpview.sources.dissect``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...jit import Int, helper
from ...textutil import addr_value
from .encap import (
    K_HDLC,
    K_IPVER,
    K_LLC,
    K_PPP,
    K_RADIOTAP,
    K_WLAN,
    S_BAD,
    S_NO_DATA,
    S_NOT_IP,
    S_NOT_TCP,
    S_PROTECTED,
    S_TRUNC,
    ip_payload,
    step,
)
from .wire import be16 as _be16
from .wire import be32 as _be32
from .wire import be64 as _be64
from .wire import le16 as _le16
from .wire import le32 as _le32

MAX_LAYERS = 16
"""The most layers (encapsulations, and the IP headers between them) a frame is walked through."""
OK = 0
TRUNC_LINK, NOT_IP, UNSUPPORTED_LINK, TRUNC_IP, BAD_IP_VERSION, BAD_IHL, NOT_TCP, FRAGMENT, TRUNC_TCP, BAD_THL = range(1, 11)
(FRAG_WAITING, FRAG_TIMED_OUT, FRAG_NO_FIRST, FRAG_OVERLAP, FRAG_DUPLICATE, FRAG_BAD, FRAG_TABLE_FULL,
 FRAG_OVER_LIMIT) = range(11, 19)
TOO_DEEP, BAD_ENCAP, TRUNC_ENCAP, WLAN_PROTECTED, WLAN_NO_DATA, TUNNEL_FRAGMENT = range(19, 25)
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
    # where the walk through encapsulations stops
    f"more than {MAX_LAYERS} encapsulation layers",
    "undecodable encapsulation",
    "truncated encapsulation header",
    "802.11 protected frame",
    "802.11 frame without data",
    "ip fragment carrying a tunnel (not reassembled)",
)
"""Why a frame was skipped, by reason code."""
REASON_SLOTS = 32
"""How many reason codes the skipped counts have room for (link types' counts come after)."""


def reason_text(code: Int, linktype: int) -> str:
    """The text a skipped frame is counted under (``unsupported link type 105``)."""
    if code == UNSUPPORTED_LINK:
        return f"unsupported link type {linktype}"
    return REASONS[code]


# where decode_frame puts a segment's fields
(O_FAM, O_SRC_HI, O_SRC_LO, O_DST_HI, O_DST_LO, O_SPORT, O_DPORT, O_SEQ, O_ACK, O_FLAGS, O_WIN, O_PLEN, O_TOFF,
 O_THL, O_LINKTYPE) = range(15)
# an IP packet's payload that is not TCP: its protocol and where it starts (for the walk)
O_NEXT, O_NEXT_AT = 15, 16
# the layers walked (see _walk): how many, then each as kind << 32 | its offset in the frame
O_NLAYERS, O_LAYERS = 17, 18
# and for a fragment: its datagram's id, its bytes' offset in the datagram's payload, their number,
# more to follow, the bytes before the TCP header (the first's), where its bytes are in ``b``
O_FRAG_ID, O_FRAG_OFF, O_FRAG_LEN, O_FRAG_MORE, O_FRAG_PRE, O_FRAG_AT = range(O_LAYERS + MAX_LAYERS,
                                                                            O_LAYERS + MAX_LAYERS + 6)
OUT_SIZE = O_LAYERS + MAX_LAYERS + 6


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
        out[O_NEXT] = b[p + 9]  # a tunnel, maybe (see _walk)
        out[O_NEXT_AT] = p + ihl
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
            out[O_NEXT] = nh  # a tunnel, maybe (see _walk)
            out[O_NEXT_AT] = q
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
def _stop_reason(kind: Int) -> Int:
    """The reason code of a walk's stop (an ``encap.S_*`` kind)."""
    if kind == S_TRUNC:
        return TRUNC_ENCAP
    if kind == S_BAD:
        return BAD_ENCAP
    if kind == S_PROTECTED:
        return WLAN_PROTECTED
    if kind == S_NO_DATA:
        return WLAN_NO_DATA
    if kind == S_NOT_TCP:
        return NOT_TCP
    return NOT_IP


@helper
def _walk(b: np.ndarray, kind: Int, p: Int, end: Int, wire_end: Int, base: Int, out: np.ndarray) -> Int:
    """Decode from the layer of ``kind`` at ``p`` (an EtherType, or an ``encap.K_*`` kind)
    through any encapsulations to the TCP header, for at most ``MAX_LAYERS`` layers.
    ``wire_end`` is where the frame ends on the wire, ``base`` where it starts (in ``b``).

    The layers that say where the segment travelled (not the link's own framing: VLAN tags,
    PPP, 802.11, LLC) are kept in ``out``: ``O_NLAYERS`` of them from ``O_LAYERS`` on, the
    last the IP header of the segment itself; more than one means it came through a tunnel or
    an encapsulation (``encap``'s docstring lists them).
    """
    n = 0
    in_ip = False
    for _ in range(MAX_LAYERS):
        if not (kind == K_HDLC or kind == K_PPP or kind == K_WLAN or kind == K_RADIOTAP or kind == K_LLC
                or kind == K_IPVER or kind == 0x8100 or kind == 0x88A8 or kind == 0x9100 or kind == 0x9200):
            out[O_LAYERS + n] = (kind << 32) | (p - base)
            n += 1
            out[O_NLAYERS] = n
        if kind == 0x0800 or kind == 0x86DD:
            if kind == 0x0800:
                code = _ip4(b, p, end, wire_end - p, out)
            else:
                code = _ip6(b, p, end, wire_end - p, out)
            if code != NOT_TCP:
                return code
            kind = ip_payload(out[O_NEXT])
            if kind == S_NOT_TCP:
                return NOT_TCP
            if b[p] >> 4 == 4 and _be16(b, p + 6) & 0x3FFF:  # in pieces: its inner headers are not all here
                if _be16(b, p + 6) & 0x1FFF:
                    return NOT_TCP  # a later piece: nothing in it says what it carries
                if kind == 0x0800 or kind == 0x86DD:  # IP in IP: the inner header is in this first piece
                    return TUNNEL_FRAGMENT
                following, _at = step(b, kind, out[O_NEXT_AT], end)  # UDP to a tunnel's port, GRE: a tunnel
                return TUNNEL_FRAGMENT if following >= 0 else NOT_TCP
            p = out[O_NEXT_AT]
            in_ip = True
        else:
            kind, p = step(b, kind, p, end)
            if kind < 0:
                if kind == S_NOT_IP and in_ip:
                    return NOT_TCP  # inside an IP packet (PPP control in PPTP's GRE, say): as before the walk
                return _stop_reason(kind)
    return TOO_DEEP


@helper
def _by_ethertype(b: np.ndarray, et: Int, p: Int, end: Int, wire_len: Int, out: np.ndarray, base: Int) -> Int:
    if et == 0x0800:
        code = _ip4(b, p, end, wire_len, out)
    elif et == 0x86DD:
        code = _ip6(b, p, end, wire_len, out)
    else:
        code = NOT_IP
    if code == NOT_TCP or code == NOT_IP:  # a tunnel or encapsulation, maybe: the slow way
        return _walk(b, et, p, end, p + wire_len, base, out)
    return code


@helper
def decode_frame(b: np.ndarray, off: Int, caplen: Int, origlen: Int, linktype: Int, out: np.ndarray) -> Int:
    """Decode the frame in ``b[off:off+caplen]`` (``origlen`` bytes on the wire).

    Returns 0 for a TCP segment, its fields in ``out`` (``O_*`` indices; an IPv4 address is
    ``(0, addr)``, an IPv6 address its two 64-bit halves), else the reason code.
    """
    lt = linktype
    base = off
    out[O_NLAYERS] = 0
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
        return _by_ethertype(b, et, p, end, origlen - (p - off), out, base)
    if lt == 113:
        if off + 16 > end:
            return TRUNC_LINK
        return _by_ethertype(b, _be16(b, off + 14), off + 16, end, origlen - 16, out, base)
    if lt == 276:
        if off + 20 > end:
            return TRUNC_LINK
        return _by_ethertype(b, _be16(b, off), off + 20, end, origlen - 20, out, base)
    if lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:
        if off >= end:
            return TRUNC_LINK
        v = b[off] >> 4
        if v == 4:
            return _by_ethertype(b, 0x0800, off, end, origlen, out, base)
        if v == 6:
            return _by_ethertype(b, 0x86DD, off, end, origlen, out, base)
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
            return _by_ethertype(b, 0x0800, off + 4, end, origlen - 4, out, base)
        if af == 10 or af == 24 or af == 28 or af == 30:
            return _by_ethertype(b, 0x86DD, off + 4, end, origlen - 4, out, base)
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
        return _by_ethertype(b, _be16(b, off + 40), off + 44, end, origlen - 44, out, base)
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
    if lt == 9 or lt == 50 or lt == 104:  # PPP, PPP in HDLC-like framing, Cisco HDLC
        return _walk(b, K_HDLC, off, end, off + origlen, base, out)
    if lt == 51:  # PPPoE without its Ethernet header
        return _walk(b, 0x8864, off, end, off + origlen, base, out)
    if lt == 105:
        return _walk(b, K_WLAN, off, end, off + origlen, base, out)
    if lt == 127:
        return _walk(b, K_RADIOTAP, off, end, off + origlen, base, out)
    out[O_LINKTYPE] = lt  # the link type it does not read (PPI's inner one, say)
    return UNSUPPORTED_LINK


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


def layers(buf: Any, origlen: int, linktype: int) -> list[tuple[int, int]]:
    """The layers :func:`decode_frame` walked to the TCP segment in frame ``buf``, as
    ``(kind, offset)`` (an EtherType or ``encap.K_*``; its offset in the frame), the last the
    segment's own IP header; [] for a frame it read the quick way (no encapsulation) or could
    not use."""
    b = np.frombuffer(buf, dtype=np.uint8)
    out = np.zeros(OUT_SIZE, dtype=np.int64)
    if decode_frame(b, 0, len(b), origlen, linktype, out) != OK:
        return []
    return [(v >> 32, v & 0xFFFFFFFF) for v in out[O_LAYERS:O_LAYERS + out[O_NLAYERS]].tolist()]
