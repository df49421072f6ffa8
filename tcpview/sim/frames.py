"""Turning simulated segments into real Ethernet frames, with scapy.

Every layer is built by scapy -- ``Ether / IP (or IPv6) / TCP / Raw`` -- so lengths, options
encoding and checksums come out exactly as ``bytes(Ether()/IP()/TCP()/payload)`` gives them (a
test holds the two equal, byte for byte). What is done differently is only what makes it about
twice as fast, which matters for a live demo:

- the TCP segment is built on its own and its checksum computed with scapy's ``checksum()``
  over the RFC 9293 pseudo-header, which is what scapy's ``in4_chksum`` does after copying the
  whole packet to find the addresses;
- layers are chained with ``add_payload`` (``/`` copies every layer) and marked explicit,
  which spares scapy another copy of the packet before building it.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

ROUTER_MAC = "02:00:5e:00:00:01"
"""The gateway on the capture's LAN: frames from the far side come from it."""

_MAC_CACHE: dict[str, str] = {}
_PSEUDO_CACHE: dict[tuple[str, str], bytes] = {}
_LEN = struct.Struct("!H")
_LEN6 = struct.Struct("!I")

# a TCP layer built without an IP layer under it says so at INFO level; the checksum is ours
logging.getLogger("scapy.runtime").addFilter(lambda r: "No IP underlayer" not in r.getMessage())


def host_mac(ip: str) -> str:
    """A stable, locally administered MAC address for a host on the client's LAN."""
    mac = _MAC_CACHE.get(ip)
    if mac is None:
        h = hashlib.blake2s(ip.encode(), digest_size=5).digest()
        mac = "02:" + ":".join(f"{b:02x}" for b in h)
        _MAC_CACHE[ip] = mac
    return mac


def _pseudo(family: int, src: str, dst: str) -> bytes:
    """The address part of the TCP pseudo-header (RFC 9293 3.1; RFC 8200 8.1 for IPv6)."""
    key = (src, dst)
    p = _PSEUDO_CACHE.get(key)
    if p is None:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        p = socket.inet_pton(af, src) + socket.inet_pton(af, dst)
        if len(_PSEUDO_CACHE) > 65536:
            _PSEUDO_CACHE.clear()
        _PSEUDO_CACHE[key] = p
    return p


def build_frame(
    *,
    src_mac: str,
    dst_mac: str,
    family: int,
    src: str,
    dst: str,
    ttl: int,
    ip_id: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: list,
    payload: bytes,
) -> bytes:
    """Build one Ethernet + IPv4/IPv6 + TCP frame (checksums as scapy computes them)."""
    tcp = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window, options=options, chksum=0)
    if payload:
        tcp.add_payload(Raw(payload))
    tcp.explicit = 1
    seg = tcp.build()
    if family == 4:
        pseudo = _pseudo(4, src, dst) + b"\x00\x06" + _LEN.pack(len(seg))
        ip: IP | IPv6 = IP(src=src, dst=dst, ttl=ttl, id=ip_id, flags=2, proto=6)
    else:
        pseudo = _pseudo(6, src, dst) + _LEN6.pack(len(seg)) + b"\x00\x00\x00\x06"
        ip = IPv6(src=src, dst=dst, hlim=ttl, nh=6)
    seg = seg[:16] + _LEN.pack(checksum(pseudo + seg)) + seg[18:]
    eth = Ether(src=src_mac, dst=dst_mac)
    eth.add_payload(ip)
    ip.add_payload(Raw(seg))
    # explicit: the layers hold concrete values, so scapy need not copy them before building
    eth.explicit = ip.explicit = 1
    return eth.build()


def build_frame_reference(**kw) -> bytes:
    """The same frame built the plain way, ``bytes(Ether()/IP()/TCP()/payload)`` (tests)."""
    ipl = (IP(src=kw["src"], dst=kw["dst"], ttl=kw["ttl"], id=kw["ip_id"], flags=2) if kw["family"] == 4
           else IPv6(src=kw["src"], dst=kw["dst"], hlim=kw["ttl"]))
    pkt = (Ether(src=kw["src_mac"], dst=kw["dst_mac"]) / ipl
           / TCP(sport=kw["sport"], dport=kw["dport"], seq=kw["seq"], ack=kw["ack"], flags=kw["flags"],
                 window=kw["window"], options=kw["options"]))
    if kw["payload"]:
        pkt = pkt / Raw(kw["payload"])
    return bytes(pkt)
