"""The struct decoder: every link type, IPv4/IPv6 headers, TCP header and options, and the
reasons it gives for frames it skips. Frames are built with scapy."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from helpers import eth, wrap
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP

from tcpview.engine.core.decode import decode
from tcpview.engine.core.tcpopts import parse_options
from tcpview.textutil import ip_text

V4 = ("192.0.2.10", "198.51.100.20")
V6 = ("2001:db8::10", "2001:db8:1::20")


def dec(linktype: int, raw: bytes, origlen: int | None = None):
    return decode(raw, 0, len(raw), len(raw) if origlen is None else origlen, linktype)


def tcp4(**kw):
    return IP(src=V4[0], dst=V4[1]) / TCP(**kw)


def tcp6(**kw):
    return IPv6(src=V6[0], dst=V6[1]) / TCP(**kw)


SEG = dict(sport=43210, dport=443, seq=0xDEADBEEF, ack=0x01020304, flags="PA", window=1234)
LINKS = ["ether", "vlan", "qinq", "sll", "sll2", "null", "loop", "raw", "ipoib", "arcnet"]


def check(d, fam, src, dst, payload_len):
    assert not isinstance(d, str), d
    assert d[0] == fam
    assert ip_text(fam, d[1]) == str(ipaddress.ip_address(src))
    assert ip_text(fam, d[2]) == str(ipaddress.ip_address(dst))
    assert d[3:10] == (43210, 443, 0xDEADBEEF, 0x01020304, 0x18, 1234, payload_len)


@pytest.mark.parametrize("link", LINKS + ["ipv4"])
def test_ipv4_over_every_link_type(link):
    lt, raw = wrap(tcp4(**SEG) / b"hello", link)
    check(dec(lt, raw), 4, *V4, 5)


@pytest.mark.parametrize("link", LINKS + ["ipv6"])
def test_ipv6_over_every_link_type(link):
    lt, raw = wrap(tcp6(**SEG) / b"hello!", link)
    check(dec(lt, raw), 6, *V6, 6)


@pytest.mark.parametrize("af", [10, 24, 28, 30])
def test_bsd_null_ipv6_family_values_of_each_os(af):
    # Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30
    raw = struct.pack("<I", af) + bytes(tcp6(**SEG))
    check(dec(0, raw), 6, *V6, 0)


def test_bsd_null_written_big_endian():
    # DLT_NULL holds the family in the *writer's* byte order; a big-endian host writes 00000002
    raw = struct.pack(">I", 2) + bytes(tcp4(**SEG))
    check(dec(0, raw), 4, *V4, 0)


def test_tcp_offsets_point_at_the_tcp_header():
    lt, raw = wrap(tcp4(**SEG, options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]), "vlan")
    d = dec(lt, raw)
    off, hlen = d[10], d[11]
    assert hlen == 28
    assert struct.unpack_from("!HH", raw, off) == (43210, 443)
    assert parse_options(raw, off + 20, off + hlen) == {"mss": 1460, "ws": 7}


def test_ipv4_options_are_skipped():
    pkt = IP(src=V4[0], dst=V4[1], options=[IPOption_RR(routers=["1.1.1.1", "2.2.2.2"])]) / TCP(**SEG) / b"xyz"
    raw = bytes(eth() / pkt)
    assert (raw[14] & 15) > 5  # the header really carries options
    check(dec(1, raw), 4, *V4, 3)


def test_ethernet_padding_is_not_payload():
    # a pure ACK is 54 bytes; Ethernet pads it to 60 on the wire, the IP length tells the truth
    raw = bytes(eth() / tcp4(**SEG)) + b"\0" * 6
    check(dec(1, raw), 4, *V4, 0)


def test_snaplen_cut_frame_keeps_payload_length_from_ip_header():
    raw = bytes(eth() / tcp4(**SEG) / (b"x" * 1000))
    cut = raw[:96]
    d = decode(cut, 0, len(cut), len(raw), 1)
    check(d, 4, *V4, 1000)


def test_decode_at_an_offset_inside_a_larger_buffer():
    raw = bytes(eth() / tcp4(**SEG) / b"abc")
    buf = b"\xff" * 37 + raw + b"\xee" * 50
    check(decode(buf, 37, len(raw), len(raw), 1), 4, *V4, 3)


def test_ipv4_fragments_are_not_taken_for_whole_segments():
    # one frame alone cannot be reassembled (the engine's loop reassembles: test_fragments.py);
    # a first fragment is no longer taken for the whole segment
    first = IP(src=V4[0], dst=V4[1], flags="MF", frag=0) / TCP(**SEG) / (b"a" * 16)
    assert dec(1, bytes(eth() / first)) == "ip fragment (not reassembled)"
    later = IP(src=V4[0], dst=V4[1], proto=6, frag=3) / (b"b" * 24)
    assert dec(1, bytes(eth() / later)) == "ip fragment (not reassembled)"
    assert dec(1, bytes(eth() / IP(src=V4[0], dst=V4[1], proto=17, frag=3) / (b"c" * 8))) == "not tcp"
    # the first piece of a tunnel's packet (VXLAN in UDP, IP in IP) is told as such; of other UDP, not tcp
    vxlan = IP(src=V4[0], dst=V4[1], flags="MF") / UDP(sport=50000, dport=4789) / (b"\x08" + b"\0" * 15)
    assert dec(1, bytes(eth() / vxlan)) == "ip fragment carrying a tunnel (not reassembled)"
    ipip = IP(src=V4[0], dst=V4[1], flags="MF") / IP(src=V4[1], dst=V4[0]) / TCP(**SEG)
    assert dec(1, bytes(eth() / ipip)) == "ip fragment carrying a tunnel (not reassembled)"
    dns = IP(src=V4[0], dst=V4[1], flags="MF") / UDP(sport=50000, dport=53) / (b"d" * 16)
    assert dec(1, bytes(eth() / dns)) == "not tcp"


def test_ipv6_extension_header_chain():
    pkt = (IPv6(src=V6[0], dst=V6[1]) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
           / IPv6ExtHdrDestOpt() / TCP(**SEG) / b"ext")
    check(dec(1, bytes(eth() / pkt)), 6, *V6, 3)


def test_ipv6_fragments():
    first = IPv6(src=V6[0], dst=V6[1]) / IPv6ExtHdrFragment(offset=0, m=1, id=7) / TCP(**SEG) / (b"q" * 8)
    assert dec(1, bytes(eth() / first)) == "ip fragment (not reassembled)"
    later = IPv6(src=V6[0], dst=V6[1]) / IPv6ExtHdrFragment(offset=2, m=0, id=7, nh=6) / (b"r" * 8)
    assert dec(1, bytes(eth() / later)) == "ip fragment (not reassembled)"
    # an atomic fragment (offset 0, no more: RFC 6946) is a whole packet
    atomic = IPv6(src=V6[0], dst=V6[1]) / IPv6ExtHdrFragment(offset=0, m=0, id=8) / TCP(**SEG) / (b"s" * 8)
    check(dec(1, bytes(eth() / atomic)), 6, *V6, 8)


def test_tcp_options_all_kinds():
    opts = [("MSS", 1400), ("SAckOK", b""), ("Timestamp", (123456, 654321)), ("NOP", None),
            ("WScale", 9), ("NOP", None), ("NOP", None), ("SAck", (1000, 2000, 3000, 4000))]
    raw = bytes(tcp4(**SEG, options=opts))
    d = dec(101, raw)
    o = parse_options(raw, d[10] + 20, d[10] + d[11])
    assert o["mss"] == 1400
    assert o["ws"] == 9
    assert o["sack_perm"] is True
    assert tuple(o["ts"]) == (123456, 654321)
    assert [tuple(b) for b in o["sack"]] == [(1000, 2000), (3000, 4000)]


def test_window_scale_is_capped_at_14():
    # RFC 7323 2.3: a shift count above 14 is used as 14
    raw = bytes(tcp4(**SEG, options=[("WScale", 20)]))
    d = dec(101, raw)
    assert parse_options(raw, d[10] + 20, d[10] + d[11])["ws"] == 14


def test_truncated_option_stops_quietly():
    # NOP NOP then an MSS option whose 4 bytes run past the end of the option space
    raw = bytes(tcp4(**SEG, options=[("NOP", None), ("NOP", None), ("MSS", 1000)]))
    d = dec(101, raw)
    start = d[10] + 20
    assert parse_options(raw, start, start + 4) == {}
    assert parse_options(raw, start, start + 8) == {"mss": 1000}
    # and a buffer that ends inside the option
    assert parse_options(raw[: start + 5], start, start + 8) == {}


@pytest.mark.parametrize(
    "pkt,reason",
    [
        (eth() / IP(src=V4[0], dst=V4[1]) / UDP(sport=1, dport=53) / b"q", "not tcp"),
        (eth() / IP(src=V4[0], dst=V4[1]) / ICMP(), "not tcp"),
        (eth() / IPv6(src=V6[0], dst=V6[1]) / UDP(), "not tcp"),
        (eth() / ARP(), "not ip"),
    ],
    ids=["udp", "icmp", "udp6", "arp"],
)
def test_non_tcp_reasons(pkt, reason):
    assert dec(1, bytes(pkt)) == reason


def test_truncated_headers_give_reasons():
    raw = bytes(eth() / tcp4(**SEG))
    assert dec(1, raw[:10]) == "truncated link header"
    assert dec(1, raw[:14 + 12]) == "truncated ip header"
    assert dec(1, raw[:14 + 20 + 8]) == "truncated tcp header"
    raw6 = bytes(eth() / tcp6(**SEG))
    assert dec(1, raw6[:14 + 30]) == "truncated ip header"


def test_arcnet_rfc1051_and_exception_packets():
    """Linux ARCnet: RFC 1051 IP (protocol 0xf0) has no split flag; an RFC 1201 exception
    packet (split flag 0xff) carries four more bytes before the IP header."""
    ip = bytes(tcp4(**SEG) / b"hello")
    check(dec(129, bytes([1, 2, 0, 0, 0xF0]) + ip), 4, *V4, 5)
    check(dec(129, bytes([1, 2, 0, 0, 0xD4, 0xFF, 0, 1, 0, 0, 0xD4, 0]) + ip), 4, *V4, 5)
    assert dec(129, bytes([1, 2, 0, 0, 0xD5, 0, 0, 1]) + ip) == "not ip"  # RFC 1201 ARP
    assert dec(129, bytes([1, 2, 0, 0, 0xD4, 0])) == "truncated link header"
    assert dec(242, bytes(43)) == "truncated link header"


def test_unknown_link_type_is_a_reason_not_an_exception():
    r = dec(147, bytes(tcp4(**SEG)))
    assert isinstance(r, str) and "147" in r


def test_bad_tcp_header_length():
    raw = bytearray(bytes(tcp4(**SEG)))
    raw[20 + 12] = 0x30  # data offset 3 words (< 5)
    assert dec(101, bytes(raw)) == "bad tcp header length"


def test_garbage_never_raises():
    rng = random.Random(1234)
    base = [bytes(wrap(tcp4(**SEG) / b"p", link)[1]) for link in ("ether", "sll", "sll2", "null", "raw", "ipoib",
                                                                   "arcnet")]
    for lt in (0, 1, 12, 14, 101, 108, 113, 129, 192, 228, 229, 239, 242, 276, 9999):
        for _ in range(300):
            if rng.random() < 0.5:
                raw = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 90)))
            else:
                b = bytearray(rng.choice(base))
                for _ in range(rng.randrange(1, 6)):
                    b[rng.randrange(len(b))] = rng.getrandbits(8)
                raw = bytes(b[: rng.randrange(0, len(b) + 1)])
            d = decode(raw, 0, len(raw), rng.choice([len(raw), len(raw) + 100, 0]), lt)
            assert isinstance(d, (str, tuple))
            if isinstance(d, tuple):
                assert d[9] >= 0
                if d[10] + d[11] <= len(raw):
                    parse_options(raw, d[10] + 20, d[10] + d[11])
