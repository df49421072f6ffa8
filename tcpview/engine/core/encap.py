"""The layers between a frame's link header and the IP header that carries TCP, compiled: one
step at a time, each layer found by its EtherType, IP protocol, well-known UDP port or the
heuristic Wireshark uses there.

:func:`step` reads the layer of kind ``kind`` at ``p`` and says the kind of the next one and
where it starts; :func:`ip_payload` does the same for an IP packet's payload that is not TCP.
Kinds are EtherTypes (VLAN tags, MPLS, PBB, FabricPath, PPPoE, PPP, ERSPAN...) and, above
16 bits, the ``K_*`` layers that have none; a negative kind is why the walk stops (``S_*``).
The walk itself, with its depth limit, and the IP layers are
:func:`tcpview.engine.core.decode.decode_frame`'s.

What each layer is, as read here (and as Wireshark reads it):

- Ethernet (also inside a tunnel; 802.3 with LLC/SNAP), 802.1Q/802.1ad tags, 802.1ah PBB (an
  I-tag, then the customer's Ethernet), Cisco FabricPath (EtherType 0x8903 and its FTag/TTL,
  then an Ethernet frame);
- MPLS (label stack to the bottom-of-stack bit; then the first nibble: 4 IPv4, 6 IPv6, 1 an
  associated channel (not IP), anything else an Ethernet pseudowire, with the 4-byte control
  word when the nibble is 0 and an EtherType fits after it);
- PPPoE session (0x8864), PPP (protocol field, compressed or not; HDLC-like framing ff 03;
  Cisco HDLC), PPP in GRE (PPTP);
- GRE (checksum, key and sequence fields by their flags; version 1 as PPTP's), with any
  EtherType payload (0x6558: transparent Ethernet bridging), ERSPAN type I (GRE 0x88be
  without a sequence number), II (0x88be) and III (0x22eb, with its platform sub-header);
- UDP tunels, by port (the lower port first, as Wireshark tries them): VXLAN 4789, Geneve 6081
  (options skipped), GRE-in-UDP 4754, Teredo 3544 (origin and authentication indicators),
  AYIYA 5072 (forwarded packets);
- IP in IP: protocol 4 (IPv4), 41 (IPv6), 137 (MPLS);
- 802.11 data frames (QoS, four addresses, HT control), after radiotap or PPI, with LLC/SNAP;
  protected (encrypted) frames and frames without data stop with their own reasons.
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, helper
from .wire import be16, le16

# layers that have no EtherType of their own
K_ETH = 0x10000  # an Ethernet header (destination, source, type)
K_PPP = 0x10001  # a PPP protocol field
K_HDLC = 0x10002  # PPP in HDLC-like framing (ff 03, then the protocol), or Cisco HDLC
K_WLAN = 0x10003  # an 802.11 frame
K_RADIOTAP = 0x10004
K_UDP = 0x10005
K_GRE = 0x10006
K_VXLAN = 0x10007
K_GENEVE = 0x10008
K_TEREDO = 0x10009
K_AYIYA = 0x1000A
K_LLC = 0x1000B  # 802.2 LLC with a SNAP header
K_IPVER = 0x1000C  # IPv4 or IPv6, by the version nibble
K_PWCW = 0x1000D  # an MPLS pseudowire's control word, then Ethernet
K_ERSPAN = 0x1000E  # an ERSPAN type II or III header, then Ethernet

# why a walk stops (negative kinds)
S_NOT_IP = -1  # the payload is known and not IP (ARP, PPP control, an MPLS channel...)
S_TRUNC = -2  # a header does not fit in the captured bytes
S_BAD = -3  # a header this decoder cannot read (GRE routing, ERSPAN of another frame type...)
S_PROTECTED = -4  # an encrypted 802.11 frame
S_NO_DATA = -5  # an 802.11 management, control or null-data frame
S_NOT_TCP = -6  # an IP payload that is neither TCP nor a tunnel

VLAN_TYPES = (0x8100, 0x88A8, 0x9100, 0x9200)
UDP_PORTS = {4789: K_VXLAN, 6081: K_GENEVE, 4754: K_GRE, 3544: K_TEREDO, 5072: K_AYIYA}
"""The UDP ports a tunnel is recognised by, and its kind."""


@helper
def _udp_kind(port: Int) -> Int:
    if port == 4789:
        return K_VXLAN
    if port == 6081:
        return K_GENEVE
    if port == 4754:
        return K_GRE
    if port == 3544:
        return K_TEREDO
    if port == 5072:
        return K_AYIYA
    return S_NOT_TCP


@helper
def _known_ethertype(et: Int) -> bool:
    """An EtherType an Ethernet pseudowire's inner frame is likely to carry (for the
    control-word guess)."""
    return (et == 0x0800 or et == 0x86DD or et == 0x0806 or et == 0x8100 or et == 0x88A8 or et == 0x8847
            or et == 0x8848 or et == 0x8864 or et == 0x8863 or et == 0x88CC or et == 0x8035 or et == 0x9100)


@helper
def _ppp(proto: Int) -> Int:
    """The layer a PPP protocol number carries."""
    if proto == 0x0021:
        return 0x0800
    if proto == 0x0057:
        return 0x86DD
    if proto == 0x0281 or proto == 0x0283:
        return 0x8847
    return S_NOT_IP


@helper
def _mpls(b: np.ndarray, p: Int, end: Int) -> tuple:
    """An MPLS label stack at p: the layer after its bottom label."""
    while True:
        if p + 4 > end:
            return np.int64(S_TRUNC), p
        bottom = b[p + 2] & 1
        p += 4
        if bottom:
            break
    if p >= end:
        return np.int64(S_TRUNC), p
    nibble = b[p] >> 4
    if nibble == 4:
        return np.int64(0x0800), p
    if nibble == 6:
        return np.int64(0x86DD), p
    if nibble == 1:
        return np.int64(S_NOT_IP), p  # a pseudowire associated channel (OAM, BFD)
    # an Ethernet pseudowire: Wireshark takes a first nibble 0 for a control word unless the
    # addresses' makers are known; here, unless an EtherType fits only without one
    if nibble == 0 and not (p + 14 <= end and _known_ethertype(be16(b, p + 12))
                            and not (p + 18 <= end and _known_ethertype(be16(b, p + 16)))):
        return np.int64(K_PWCW), p
    return np.int64(K_ETH), p


@helper
def _gre(b: np.ndarray, p: Int, end: Int) -> tuple:
    """A GRE header at p (RFC 2784/2890, or version 1 as PPTP's): its payload's layer."""
    if p + 4 > end:
        return np.int64(S_TRUNC), p
    fl = be16(b, p)
    proto = be16(b, p + 2)
    version = fl & 7
    q = p + 4
    if version == 0:
        if fl & 0x4000:  # routing present (RFC 1701): source routes are not read
            return np.int64(S_BAD), p
        if fl & 0x8000:
            q += 4
        if fl & 0x2000:
            q += 4
        if fl & 0x1000:
            q += 4
    elif version == 1:
        if proto != 0x880B or not fl & 0x2000:
            return np.int64(S_BAD), p
        q += 4  # payload length and call id
        if fl & 0x1000:
            q += 4
        if fl & 0x0080:
            q += 4
        if q > end:
            return np.int64(S_TRUNC), p
        if q == end:
            return np.int64(S_NOT_IP), q  # an acknowledgement alone
        return np.int64(K_HDLC), q
    else:
        return np.int64(S_BAD), p
    if q > end:
        return np.int64(S_TRUNC), p
    if proto == 0x88BE and not fl & 0x1000:
        return np.int64(K_ETH), q  # ERSPAN type I: no header of its own
    if proto == 0x88BE or proto == 0x22EB:
        return np.int64(K_ERSPAN), q
    if proto == 0x6558:
        return np.int64(K_ETH), q
    if proto == 0x880B:
        return np.int64(K_HDLC), q
    return np.int64(proto), q


@helper
def _wlan(b: np.ndarray, p: Int, end: Int) -> tuple:
    """An 802.11 frame at p: its LLC header when it is a data frame with data."""
    if p + 24 > end:
        return np.int64(S_TRUNC), p
    fc = np.int64(b[p])
    flags = np.int64(b[p + 1])
    if (fc >> 2) & 3 != 2 or fc & 0x40:  # not a data frame, or a null-data one (no payload)
        return np.int64(S_NO_DATA), p
    if flags & 0x40:
        return np.int64(S_PROTECTED), p
    q = p + 24
    if flags & 3 == 3:  # to and from the distribution system: a fourth address
        q += 6
    if fc & 0x80:  # QoS data: a QoS control field (and HT control with the order bit)
        if q + 2 > end:
            return np.int64(S_TRUNC), p
        if b[q] & 0x80:  # an A-MSDU: several subframes, not read
            return np.int64(S_BAD), p
        q += 2
        if flags & 0x80:
            q += 4
    return np.int64(K_LLC), q


@helper
def step(b: np.ndarray, kind: Int, p: Int, end: Int) -> tuple:
    """The layer of ``kind`` at ``p`` (not IPv4 or IPv6): ``(kind, start)`` of the next one,
    or a negative ``S_*`` kind saying why there is none."""
    if kind == K_ETH:
        if p + 14 > end:
            return np.int64(S_TRUNC), p
        et = be16(b, p + 12)
        if et < 0x0600:  # 802.3: a length, then LLC
            return np.int64(K_LLC), p + 14
        return et, p + 14
    if kind == 0x8100 or kind == 0x88A8 or kind == 0x9100 or kind == 0x9200:
        if p + 4 > end:
            return np.int64(S_TRUNC), p
        return be16(b, p + 2), p + 4
    if kind == 0x8847 or kind == 0x8848:
        return _mpls(b, p, end)
    if kind == K_PWCW:
        return np.int64(K_ETH), p + 4
    if kind == 0x88E7:  # 802.1ah I-tag: priority, flags and service id, then the customer's frame
        return np.int64(K_ETH), p + 4
    if kind == 0x8903:  # FabricPath: the FTag and TTL end its header; an Ethernet frame follows
        return np.int64(K_ETH), p + 2
    if kind == 0x8864:  # PPPoE session: version/type, code, session id, length
        if p + 6 > end:
            return np.int64(S_TRUNC), p
        return np.int64(K_PPP), p + 6
    if kind == 0x880B or kind == K_HDLC:
        if p + 2 > end:
            return np.int64(S_TRUNC), p
        if b[p] == 0xFF and b[p + 1] == 0x03:
            return np.int64(K_PPP), p + 2
        if (b[p] == 0x0F or b[p] == 0x8F) and b[p + 1] == 0:  # Cisco HDLC: an EtherType follows
            if p + 4 > end:
                return np.int64(S_TRUNC), p
            return be16(b, p + 2), p + 4
        return np.int64(K_PPP), p
    if kind == K_PPP:
        if p >= end:
            return np.int64(S_TRUNC), p
        if b[p] & 1:  # protocol field compression: one byte
            return _ppp(np.int64(b[p])), p + 1
        if p + 2 > end:
            return np.int64(S_TRUNC), p
        return _ppp(be16(b, p)), p + 2
    if kind == K_LLC:
        if p + 8 > end:
            return np.int64(S_TRUNC), p
        if b[p] == 0xAA and b[p + 1] == 0xAA and b[p + 2] == 0x03:
            return be16(b, p + 6), p + 8
        return np.int64(S_NOT_IP), p
    if kind == K_GRE:
        return _gre(b, p, end)
    if kind == K_ERSPAN:
        if p + 8 > end:
            return np.int64(S_TRUNC), p
        version = b[p] >> 4
        if version == 1:
            return np.int64(K_ETH), p + 8
        if version == 2:
            if p + 12 > end:
                return np.int64(S_TRUNC), p
            if (b[p + 10] >> 2) & 0x1F:  # frame type: 0 Ethernet; 2 (IP) and others not read
                return np.int64(S_BAD), p
            return np.int64(K_ETH), p + 20 if b[p + 11] & 1 else p + 12
        return np.int64(S_BAD), p
    if kind == K_UDP:
        if p + 8 > end:
            return np.int64(S_TRUNC), p
        sport, dport = be16(b, p), be16(b, p + 2)
        low, high = (sport, dport) if sport <= dport else (dport, sport)
        k = _udp_kind(low)
        if k == S_NOT_TCP:
            k = _udp_kind(high)
        return k, p + 8
    if kind == K_VXLAN:
        return np.int64(K_ETH), p + 8
    if kind == K_GENEVE:
        if p + 8 > end:
            return np.int64(S_TRUNC), p
        proto = be16(b, p + 2)
        q = p + 8 + (np.int64(b[p]) & 0x3F) * 4
        return np.int64(K_ETH) if proto == 0x6558 else proto, q
    if kind == K_TEREDO:
        q = p
        if q + 2 <= end and be16(b, q) == 0x0001:  # authentication indicator
            if q + 4 > end:
                return np.int64(S_TRUNC), p
            q += 4 + np.int64(b[q + 2]) + np.int64(b[q + 3]) + 9
        if q + 2 <= end and be16(b, q) == 0x0000:  # origin indicator
            q += 8
        if q >= end:
            return np.int64(S_TRUNC), p
        return (np.int64(0x86DD) if b[q] >> 4 == 6 else np.int64(S_NOT_IP)), q
    if kind == K_AYIYA:
        if p + 8 > end:
            return np.int64(S_TRUNC), p
        q = p + 8 + (np.int64(1) << (b[p] >> 4)) + (np.int64(b[p + 1]) >> 4) * 4
        if b[p + 2] & 15 != 1:  # only "forward" carries a packet
            return np.int64(S_NOT_IP), p
        return ip_payload(np.int64(b[p + 3])), q
    if kind == K_IPVER:
        if p >= end:
            return np.int64(S_TRUNC), p
        v = b[p] >> 4
        return (np.int64(0x0800) if v == 4 else np.int64(0x86DD) if v == 6 else np.int64(S_NOT_IP)), p
    if kind == K_RADIOTAP:
        if p + 4 > end:
            return np.int64(S_TRUNC), p
        return np.int64(K_WLAN), p + le16(b, p + 2)
    if kind == K_WLAN:
        return _wlan(b, p, end)
    return np.int64(S_NOT_IP), p


@helper
def ip_payload(proto: Int) -> Int:
    """The layer an IP packet's payload of protocol ``proto`` is (not TCP)."""
    if proto == 4:
        return np.int64(0x0800)
    if proto == 41:
        return np.int64(0x86DD)
    if proto == 47:
        return np.int64(K_GRE)
    if proto == 17:
        return np.int64(K_UDP)
    if proto == 137:
        return np.int64(0x8847)
    return np.int64(S_NOT_TCP)
