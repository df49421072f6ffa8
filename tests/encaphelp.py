"""One TCP connection inside each encapsulation the decoder walks, built with scapy, and what
tshark reads from a capture (for tests/test_encap.py)."""

from __future__ import annotations

import struct
import subprocess

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, GRE_PPTP, LLC, SNAP, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

CLIENT4, SERVER4 = "10.1.0.1", "10.2.0.2"
CLIENT6, SERVER6 = "2001:db8::1", "2001:db8::2"
OUT_A, OUT_B = "192.0.2.1", "198.51.100.2"  # the tunnel's ends
OUT6_A, OUT6_B = "2001:db8:ffff::1", "2001:db8:ffff::2"
MAC_A, MAC_B = "00:1b:21:00:00:01", "00:1b:21:00:00:02"


def conversation(v6: bool = False) -> list:
    """Handshake, data both ways, FIN both ways: (from_client, inner IP packet) in order."""
    c, s = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
    ip = IPv6 if v6 else IP
    ci, si = 1000, 5000
    steps = [(True, "S", ci, 0, b""), (False, "SA", si, ci + 1, b""), (True, "A", ci + 1, si + 1, b""),
             (True, "PA", ci + 1, si + 1, b"GET / HTTP/1.0\r\n\r\n"), (False, "PA", si + 1, ci + 19, b"HTTP/1.0 200 OK\r\n"),
             (True, "FA", ci + 19, si + 18, b""), (False, "FA", si + 18, ci + 20, b""), (True, "A", ci + 20, si + 19, b"")]
    out = []
    for fwd, flags, seq, ack, data in steps:
        src, dst = (c, s) if fwd else (s, c)
        sport, dport = (40000, 80) if fwd else (80, 40000)
        out.append((fwd, ip(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                                 window=1000) / Raw(data)))
    return out


def _eth(fwd: bool, payload, et: int | None = None):
    src, dst = (MAC_A, MAC_B) if fwd else (MAC_B, MAC_A)
    return Ether(src=src, dst=dst, type=et) / payload if et else Ether(src=src, dst=dst) / payload


def _outer(fwd: bool, proto: int | None = None, v6: bool = False):
    a, b = (OUT6_A, OUT6_B) if v6 else (OUT_A, OUT_B)
    src, dst = (a, b) if fwd else (b, a)
    if v6:
        return IPv6(src=src, dst=dst, nh=proto) if proto is not None else IPv6(src=src, dst=dst)
    return IP(src=src, dst=dst, proto=proto) if proto is not None else IP(src=src, dst=dst)


def _udp(fwd: bool, port: int):
    return UDP(sport=50000, dport=port) if fwd else UDP(sport=port, dport=50000)


def _raw_ppp(inner) -> bytes:
    return struct.pack("!H", 0x0021 if inner.version == 4 else 0x0057) + bytes(inner)


def _teredo(fwd: bool, inner) -> bytes:
    origin = b"\x00\x00" + struct.pack("!H", 0xFFFF ^ 40000) + bytes(4) if not fwd else b""
    auth = b"\x00\x01\x00\x00" + bytes(9) if fwd else b""  # no id, no value, nonce, confirmation
    return auth + origin + bytes(inner)


def _ayiya(inner) -> bytes:
    # identity 2**4 = 16 bytes (an IPv6 address), no signature, forward, next header
    return bytes([0x41, 0x00, 0x01, 41 if inner.version == 6 else 4]) + struct.pack("!I", 0) + bytes(16) + bytes(inner)


def _wlan(fwd: bool, inner, four: bool = False):
    et = 0x0800 if inner.version == 4 else 0x86DD
    a, b = (MAC_A, MAC_B) if fwd else (MAC_B, MAC_A)
    fc = 3 if four else (1 if fwd else 2)  # to the distribution system, from it, or both
    d = Dot11(type=2, subtype=8, FCfield=fc, addr1=b, addr2=a, addr3="00:1b:21:00:00:03",
              addr4="00:1b:21:00:00:04" if four else None)
    return RadioTap() / d / Dot11QoS() / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=et) / inner


# kind -> (link type, whether the inner connection is IPv6, frame builder (from_client, inner) -> bytes)
KINDS = {
    "mpls": (1, False, lambda f, p: bytes(_eth(f, MPLS(label=100, s=0, ttl=64) / MPLS(label=200, s=1, ttl=64) / p))),
    "mpls-vlan": (1, False, lambda f, p: bytes(_eth(f, Dot1Q(vlan=7) / MPLS(label=16, s=1, ttl=64) / p))),
    "mpls-pw-cw": (1, False, lambda f, p: bytes(_eth(f, MPLS(label=300, s=1, ttl=64) / Raw(bytes(4)) / _eth(f, p), 0x8847))),
    "pbb": (1, False, lambda f, p: bytes(_eth(f, Raw(b"\x00\x00\x10\x01") / _eth(f, p), 0x88E7))),
    "fabricpath": (1, False, lambda f, p: bytes(_eth(f, Raw(b"\x00\x41") / _eth(f, p), 0x8903))),
    "pppoe-qinq": (1, False, lambda f, p: bytes(_eth(f, Dot1AD(vlan=10) / Dot1Q(vlan=20) / PPPoE(sessionid=0x1234)
                                                    / PPP(proto=0x0021) / p))),
    "ppp": (9, False, lambda f, p: b"\xff\x03" + _raw_ppp(p)),
    "ppp-hdlc": (50, False, lambda f, p: b"\xff\x03" + _raw_ppp(p)),
    "pptp": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE_PPTP(seqnum_present=1, sequence_number=1, call_id=7)
                                              / Raw(b"\xff\x03" + _raw_ppp(p))))),
    "vxlan": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / _udp(f, 4789) / VXLAN(vni=42) / _eth(f, p)))),
    "geneve": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / _udp(f, 6081)
                                                / GENEVE(vni=7, proto=0x6558, optionlen=2,
                                                         options=b"\x01\x02\x03\x01" + bytes(4)) / _eth(f, p)))),
    "gre": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE(chksum_present=1, key_present=1, key=9,
                                                                seqnum_present=1, sequence_number=1) / p))),
    "gre-teb": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE(proto=0x6558) / _eth(f, p)))),
    "gre-in-udp": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / _udp(f, 4754) / GRE() / p))),
    "erspan-1": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE(proto=0x88BE) / _eth(f, p)))),
    "erspan-2": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=5)
                                                  / _eth(f, p)))),
    "erspan-3": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / GRE(proto=0x22EB, seqnum_present=1)
                                                  / ERSPAN_III(session_id=6, o=1) / ERSPAN_PlatformSpecific() / _eth(f, p)))),
    "ipip": (1, False, lambda f, p: bytes(_eth(f, _outer(f) / p))),
    "6in4": (1, True, lambda f, p: bytes(_eth(f, _outer(f) / p))),
    "4in6": (1, False, lambda f, p: bytes(_eth(f, _outer(f, v6=True) / p))),
    "teredo": (1, True, lambda f, p: bytes(_eth(f, _outer(f) / _udp(f, 3544) / Raw(_teredo(f, p))))),
    "ayiya": (1, True, lambda f, p: bytes(_eth(f, _outer(f) / _udp(f, 5072) / Raw(_ayiya(p))))),
    "wlan": (127, False, lambda f, p: bytes(_wlan(f, p))),
    "wlan-4addr": (127, False, lambda f, p: bytes(_wlan(f, p, four=True))),
}


def write_frames(path, linktype: int, frames: list[bytes]) -> None:
    """A pcap file of ``frames`` (10 ms apart) of link type ``linktype``."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for i, data in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i * 10000, len(data), len(data)) + data)


def write(path, kind: str) -> None:
    """A capture of :func:`conversation` inside encapsulation ``kind`` (of :data:`KINDS`)."""
    lt, v6, build = KINDS[kind]
    write_frames(path, lt, [build(fwd, inner) for fwd, inner in conversation(v6)])


def tshark_segments(path) -> list[tuple[int, int]]:
    """(seq_raw, ack_raw) of each TCP frame tshark decodes (not those quoted inside ICMP)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp and not icmp and not icmpv6", "-T", "fields",
                          "-e", "tcp.seq_raw", "-e", "tcp.ack_raw"], capture_output=True, text=True, check=True).stdout
    return [(int(a.split(",")[-1]), int(b.split(",")[-1])) for a, b in (line.split("\t") for line in out.splitlines())]


def tshark_frames(path) -> dict[int, tuple[int, int]]:
    """Frame number -> (seq_raw, ack_raw) of each TCP frame tshark decodes (not inside ICMP)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp and not icmp and not icmpv6", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw"],
                         capture_output=True, text=True, check=False).stdout  # it reads up to any damage
    rows = (line.split("\t") for line in out.splitlines())
    # a truncated TCP header has no seq/ack: None
    return {int(n): (int(a.split(",")[-1]) if a else None, int(b.split(",")[-1]) if b else None) for n, a, b in rows}


def tshark_conversations(path) -> int:
    """How many TCP conversations ``tshark -z conv,tcp`` counts."""
    out = subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "conv,tcp"], capture_output=True, text=True,
                         check=True).stdout
    return sum(1 for line in out.splitlines() if "<->" in line)
