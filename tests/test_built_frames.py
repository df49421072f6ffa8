"""The tests' frame builder: its direct byte packing gives exactly the frames scapy builds."""

from __future__ import annotations

import random

from helpers import Flow, eth, ether_ipv4_tcp
from scapy.layers.inet import IP, TCP


def test_direct_frames_equal_scapys():
    rnd = random.Random(5)
    for _ in range(300):
        flags = "".join(f for f in "FSRPAUEC" if rnd.random() < 0.3)
        data = rnd.randbytes(rnd.choice((0, 1, 2, 7, 100)))
        seq, ack, win = rnd.getrandbits(32), rnd.getrandbits(32), rnd.getrandbits(16)
        src, dst = (".".join(str(rnd.randrange(256)) for _ in range(4)) for _ in range(2))
        sport, dport = rnd.randrange(65536), rnd.randrange(65536)
        pkt = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win)
        want = bytes(eth() / (pkt / data if data else pkt))
        assert ether_ipv4_tcp(src, dst, sport, dport, flags, seq, ack, win, data) == want


def test_flow_builds_the_same_frames_either_way():
    flows = []
    for direct in (True, False):
        f = Flow(cport=33000, t0=5.0)
        f.direct = direct
        f.handshake()
        f.c("PA", b"GET / HTTP/1.1\r\n\r\n")
        f.s("PA", b"HTTP/1.1 200 OK\r\n\r\nhello")
        f.s("A", ack=1234)
        f.c("FA", seq=99)
        f.s("R")
        flows.append(f.frames)
    assert flows[0] == flows[1] and len(flows[0]) == 8
