"""What a pcapng capture's statistics blocks say about packets its capturing program lost.

An Interface Statistics Block (pcapng, block type 5) carries an interface's counters as the
capturing program kept them: ``isb_ifdrop`` (option 5: dropped by the interface or the
kernel's capture buffer, what tcpdump calls "dropped by kernel") and ``isb_osdrop`` (option
7: dropped by the operating system). dumpcap writes one per interface when it stops; a reader
of a stream learns from it that the world it shows has holes.
"""

from __future__ import annotations

import struct

ISB_IFDROP, ISB_OSDROP = 5, 7


def interface_drops(buf: bytes, body: int, bend: int, bo: str) -> tuple[int, int | None]:
    """The interface an Interface Statistics Block (its body ``buf[body:bend]``, byte order
    ``bo``) is about, and the packets it says were dropped (None: it does not say).

    Raises:
        ValueError: the block is too short for its fixed fields.
    """
    if bend - body < 12:  # interface id and a 64-bit time stamp
        raise ValueError("pcapng interface statistics block too short")
    iface = struct.unpack_from(bo + "I", buf, body)[0]
    drops, o = None, body + 12
    while o + 4 <= bend:
        code, olen = struct.unpack_from(bo + "HH", buf, o)
        if code == 0:  # opt_endofopt
            break
        if code in (ISB_IFDROP, ISB_OSDROP) and olen == 8 and o + 12 <= bend:
            drops = (drops or 0) + struct.unpack_from(bo + "Q", buf, o + 4)[0]
        o += 4 + ((olen + 3) & ~3)
    return iface, drops
