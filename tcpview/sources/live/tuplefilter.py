"""Whether a capture filter lets a 4-tuple's packets through, with no packet to test.

``--kernel`` beside a filtered capture keeps only the kernel's events of the sockets whose
packets the filter captures (:mod:`tcpview.sources.tracefs.sockselect`). A socket's events
can come before any of its packets, and a filter may let through only some of a
connection's packets (its SYNs, or one direction), so the test is made on TCP segments
built for the 4-tuple: an ACK, SYN, SYN-ACK, a data segment, FIN and RST, each way, framed
as the capture frames them (with no link-layer addresses). The compiled filter is run on
them by libpcap's own interpreter, the code the kernel runs on real packets.
"""

from __future__ import annotations

import struct

from ..linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from .ring import compile_filter, offline_filter

# flags of the segments tried (the plain ACK first: it decides most filters at once), and
# the bytes of data one carries
_TRIES = ((0x10, 0), (0x02, 0), (0x12, 0), (0x18, 1), (0x11, 0), (0x04, 0), (0x14, 0))
_TCP = struct.Struct("!HHIIBBHHH")


class TupleFilter:
    """A capture filter, compiled for a link type, asked about 4-tuples.

    Args:
        expr: the filter (tcpdump syntax).
        linktype: the capture's link type; Ethernet is built as such, any other is tested
            as raw IP (what a filter says of addresses and ports is the same).

    Raises:
        LiveError: the filter does not compile for that link type (libpcap's one line).
    """

    def __init__(self, expr: str, linktype: int) -> None:
        self.linktype = LINKTYPE_ETHERNET if linktype == LINKTYPE_ETHERNET else LINKTYPE_RAW
        self._keeps = offline_filter(compile_filter(expr, self.linktype))

    def accepts(self, fam: int, saddr: bytes, sport: int, daddr: bytes, dport: int) -> bool:
        """Whether the filter lets through some segment of this 4-tuple, either way
        (``fam`` 4 or 6, addresses of at least 4 or 16 bytes)."""
        at = (14 if self.linktype == LINKTYPE_ETHERNET else 0) + (40 if fam == 6 else 20) + 13  # the flags
        for data in (0, 1):
            for src, sp, dst, dp in ((saddr, sport, daddr, dport), (daddr, dport, saddr, sport)):
                frame = bytearray(self.frame(fam, src, sp, dst, dp, 0, data))
                for flags, with_data in _TRIES:  # the same segment but for its flags (and ack number)
                    if with_data == data:
                        frame[at], frame[at - 2] = flags, 1 if flags & 0x10 else 0
                        if self._keeps(bytes(frame)):
                            return True
        return False

    def frame(self, fam: int, src: bytes, sport: int, dst: bytes, dport: int, flags: int, data: int = 0) -> bytes:
        """A TCP segment from ``src:sport`` to ``dst:dport``, framed for the link type."""
        tcp = _TCP.pack(sport, dport, 1, 1 if flags & 0x10 else 0, 5 << 4, flags, 65535, 0, 0) + b"x" * data
        if fam == 6:
            ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + bytes(src[:16]) + bytes(dst[:16])
            ethertype = 0x86DD
        else:
            ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0) + bytes(src[:4]) + bytes(dst[:4])
            ethertype = 0x0800
        if self.linktype == LINKTYPE_ETHERNET:
            return bytes(12) + struct.pack("!H", ethertype) + ip + tcp
        return ip + tcp
