"""The captures the goldens build with scapy-free frame builders (``built.json.gz``): each a
:class:`Case` with its bytes, options and cursor times. ``make_golden.py`` describes them."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
for _p in (str(TESTS), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from helpers import (  # noqa: E402
    DLT_EN10MB,
    DLT_LINUX_SLL,
    C,
    Flow,
    end_as,
    pcap_bytes,
    pcapng_bytes,
)
from trackhelp import M32, closed_by_client, established  # noqa: E402


# -- captures built with scapy -------------------------------------------------------------------
@dataclass
class Case:
    """One built capture: its bytes, file name, CLI options and ``--at`` arguments."""

    name: str
    data: bytes
    ext: str = ".pcap"
    opts: tuple[str, ...] = ()
    ats: tuple[str, ...] | None = None  # None: 25/50/75 % of the duration
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.name + self.ext


def _pcap(frames: list, **kw) -> bytes:
    lts = {lt for _t, lt, _b in frames}
    assert len(lts) == 1, lts
    return pcap_bytes([(t, b) for t, _lt, b in frames], linktype=lts.pop(), **kw)


def _lifecycle(**kw) -> Flow:
    """Handshake, a request and a reply, client closes first."""
    f = established(**kw)
    f.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 100)
    f.c("A")
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    return f


def _interleaved(n: int) -> list:
    """``n`` overlapping conversations with different endings, merged in time order; no
    random numbers, so nothing depends on the random module's algorithms."""
    frames: list = []
    for i in range(n):
        k = (i * 7919 + 13) % 1009
        f = Flow(cport=30000 + i, sport=(80, 443, 8080)[k % 3], t0=(k % 97) / 10.0, dt=0.001 + (k % 37) / 100.0,
                 cisn=(k * 2654435761) % M32, sisn=(k * 40503 + 99991) % M32, frames=frames)
        f.handshake()
        for j in range(k % 3):
            f.c("PA", b"q" * (1 + (k + j) % 49))
            f.s("PA", b"r" * (1 + (k * 3 + j) % 499))
        end = ("client", "server", "rst", "close_wait", "open")[k % 5]
        end_as(f, end)
    frames.sort(key=lambda x: x[0])
    return frames


def built_cases() -> list[Case]:
    """Every built capture, in a fixed order (names are unique)."""
    cases: list[Case] = []

    def add(name: str, frames_or_bytes, **kw) -> None:  # type: ignore[no-untyped-def]
        data = frames_or_bytes if isinstance(frames_or_bytes, bytes) else _pcap(frames_or_bytes)
        cases.append(Case(name, data, **kw))

    # opening -----------------------------------------------------------------------------
    f = established()
    f.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 100)
    f.c("A")
    add("handshake-data", f.frames)

    f = Flow()
    f.c("S")
    f.s("S")
    f.c("SA", seq=1000)
    f.s("SA", seq=5000)
    f.c("PA", b"hi")
    f.s("A")
    f.c("FA")
    f.s("FA", ack=1003)
    f.c("A")
    f.s("A")
    add("simultaneous-open-close", f.frames)

    f = Flow()
    f.nxt[C] += 1  # the client's SYN happened before the capture
    f.s("SA")
    f.c("A")
    f.c("PA", b"q" * 30)
    f.s("PA", b"r" * 40)
    dup = []
    for t, lt, raw in f.frames:
        dup += [(t, lt, raw), (t + 1e-5, lt, raw)]
    add("synack-without-syn-every-frame-twice", dup)

    f = Flow()
    f.c("S")
    f.s("SA", ack=1234)  # acks the wrong ISN
    f.c("R", seq=1234)
    g = Flow(cport=40001, t0=f.t + 0.5, frames=f.frames)
    g.c("S")
    g.s("SA")
    g.c("R", seq=1001)  # client aborts during the handshake
    add("bad-synack-and-handshake-abort", f.frames)

    # closing -----------------------------------------------------------------------------
    add("close-client-first", _lifecycle().frames)

    f = established()
    f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
    add("close-server-first", f.frames)

    f = established()
    f.c("FA")
    f.s("FA", ack=1001)  # FINs cross
    f.c("A")
    f.s("A")
    add("simultaneous-close", f.frames)

    f = established()
    f.c("FA")
    f.s("FA")  # acks the client's FIN and carries the server's
    f.c("A")
    add("fin-acks-fin", f.frames)

    f = established()
    f.c("PA", b"request")
    f.c("FA")
    f.s("A")
    f.s("PA", b"a" * 500)
    f.c("A")
    f.s("PA", b"b" * 500)
    f.c("A")
    f.s("FPA", b"bye")
    f.c("A")
    add("half-close-fin-with-data", f.frames)

    f = established()
    f.c("FA")
    f.c("FA", seq=1001)
    f.s("A")
    f.c("FA", seq=1001)
    f.s("FA")
    f.c("A")
    f.s("FA", seq=5001)  # the last ACK was lost
    f.c("A")
    add("retransmitted-fins", f.frames)

    # resets ------------------------------------------------------------------------------
    f = established()
    f.c("PA", b"abc")
    f.s("RA")
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.handshake()
    g.c("R")  # RST without ACK, in window
    h = Flow(cport=40002, t0=g.t + 0.1, frames=f.frames)
    h.handshake()
    h.s("R", seq=5001 + 3_000_000)  # far out of window: ignored
    h.c("PA", b"still open")
    add("resets", f.frames)

    f = Flow(sport=9)
    f.c("S")
    f.s("RA", seq=0)
    g = Flow(sport=9, cisn=2_000_000, t0=f.t + 1, frames=f.frames)  # retry: a new connection
    g.c("S")
    g.s("RA", seq=0)
    h = Flow(sport=9, cport=40001, t0=g.t + 1, frames=f.frames)
    h.c("S")
    h.s("RA", seq=0, ack=77)  # wrong ack: not a refusal
    add("refused", f.frames)

    # retransmissions, duplicate ACKs, order ------------------------------------------------
    f = Flow()
    f.c("S")
    f.c("S", seq=1000, at=f.t + 1.0)  # SYN again
    f.s("SA")
    f.s("SA", seq=5000, at=f.t + 1.0)  # SYN+ACK again
    f.c("A")
    f.c("PA", b"d" * 100)
    f.c("PA", b"d" * 100, seq=1001, at=f.t + 0.2)  # data again
    f.s("A")
    f.c("PA", b"e" * 50)
    f.c("PA", b"e" * 20, seq=1101)  # part of it again
    f.s("A")
    add("retransmissions", f.frames)

    f = established()
    f.c("PA", b"1" * 100)  # seq 1001
    f.nxt[C] += 100  # 1101..1200 lost before the capture point
    f.c("PA", b"3" * 100)
    f.s("A", ack=1101)
    f.c("PA", b"4" * 100)
    f.s("A", ack=1101)
    f.c("PA", b"5" * 100)
    f.s("A", ack=1101)
    f.s("A", ack=1101)
    f.c("PA", b"2" * 100, seq=1101)  # fast retransmission (out of order for an observer)
    f.s("A")
    add("dup-acks-fast-retransmit", f.frames)

    f = established()
    f.c("PA", b"b" * 10, seq=1011)  # the second segment arrives first
    f.c("PA", b"a" * 10, seq=1001)
    f.s("A", ack=1021)
    add("out-of-order", f.frames)

    # windows -----------------------------------------------------------------------------
    f = established()
    f.c("PA", b"z" * 1000)
    f.s("A", win=0)  # receiver full
    f.c("A", b"z", at=f.t + 0.2)  # zero-window probe
    f.s("A", win=0)
    f.nxt[C] -= 1  # the probe's byte was not taken
    f.c("A", b"z", at=f.t + 0.4)
    f.s("A", win=0)
    f.nxt[C] -= 1
    f.s("A", win=4096, at=f.t + 0.5)  # window update
    f.c("PA", b"y" * 500)
    f.s("A")
    add("zero-window-probes", f.frames)

    f = established()
    f.c("PA", b"hello")
    f.s("A")
    f.c("A", seq=1005, at=f.t + 45.0)  # keep-alive (seq = next - 1, no data)
    f.s("A")
    f.c("A", b"\0", seq=1005, at=f.t + 45.0)  # keep-alive with one garbage byte
    f.s("A")
    add("keep-alives", f.frames)

    f = Flow()
    f.c("S", win=64240, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
    f.s("SA", win=65160, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 3)])
    f.c("A", win=502)
    f.c("PA", b"w" * 300, win=502)
    f.s("A", win=8145)
    f.s("PA", b"v" * 3000, win=8145)
    f.c("A", win=479)
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.c("S", options=[("WScale", 7)])  # only one side offers it: no scaling
    g.s("SA")
    g.c("A", win=502)
    add("window-scaling", f.frames)

    # sequence numbers -------------------------------------------------------------------
    f = Flow(cisn=M32 - 3, sisn=M32 - 1)
    f.handshake()
    f.c("PA", b"a" * 10)
    f.s("A")
    f.s("PA", b"b" * 4)
    f.c("A")
    f.c("PA", b"c" * 10, seq=M32 - 2)  # retransmission across the wrap
    f.c("FA")
    f.s("FA")
    f.c("A")
    add("seq-wraparound", f.frames)

    frames: list = []
    a = Flow(cport=51000, sport=443, cisn=3_000_000_000, sisn=12345, frames=frames)
    a.s("PA", b"r" * 300)  # the capture starts with the server talking
    a.c("A")
    a.c("PA", b"q" * 20)
    a.s("A")
    b = Flow(cport=51001, sport=22, cisn=M32 - 10, sisn=77, t0=a.t, frames=frames)
    b.c("PA", b"z" * 40)  # crosses the wrap
    b.s("PA", b"y" * 8)
    b.c("FA")
    b.s("FA")
    b.c("A")
    c = Flow(cport=50123, sport=443, t0=b.t, frames=frames)
    c.c("FA")  # first segment seen is a FIN
    c.s("A")
    add("midstream-pickup", frames)

    # odd flags ---------------------------------------------------------------------------
    f = established()
    f.c("PA", b"abc")
    f.c("", ack=777)  # no flags
    f.c("FPU", ack=5)  # xmas, no ACK
    f.c("SF")  # SYN+FIN on an open connection
    f.c("SR")
    f.c("F")  # FIN without ACK
    f.s("R", ack=123)  # RST without ACK, ack field set
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.c("SF")  # SYN+FIN as the first packet
    g.c("FSRPAUEC")  # every flag
    add("odd-flags", f.frames)

    # reuse, many connections ---------------------------------------------------------------
    f = closed_by_client()
    f.c("PA", b"one", seq=1001)  # late retransmission into TIME_WAIT
    g = Flow(cisn=9_000_000, sisn=7_000_000, t0=f.t + 1.0, frames=f.frames)  # same 4-tuple in TIME_WAIT
    g.handshake()
    g.c("PA", b"two")
    g.s("RA")
    h = Flow(cisn=500_000, sisn=9_000, t0=g.t + 70.0, frames=f.frames)  # after 2MSL
    h.handshake()
    h.s("FA"), h.c("A"), h.c("FA"), h.s("A")
    add("reuse-after-time-wait", f.frames)

    add("interleaved-40", _interleaved(40))

    # link types and IPv6 ----------------------------------------------------------------------
    for link in ("vlan", "qinq", "sll", "sll2", "null", "loop", "raw", "ipv4"):
        add(f"link-{link}", _lifecycle(link=link).frames)
    for link in ("ether", "vlan", "sll2", "null", "raw", "ipv6"):
        add(f"ipv6-{link}", _lifecycle(cip="2001:db8::1", sip="2001:db8::2", link=link, cisn=4_000_000_000).frames)

    add("pcap-nano-bigendian", _pcap(_lifecycle(t0=1_700_000_000.123456789).frames, nano=True, endian=">"))

    frames = []
    a = _lifecycle(t0=1000.0, dt=0.002, frames=frames)
    b = _lifecycle(cport=40001, cip="2001:db8::1", sip="2001:db8::2", link="sll", t0=1000.001, dt=0.002)
    pk = [(0, t, raw) for t, _lt, raw in a.frames] + [(1, t, raw) for t, _lt, raw in b.frames]
    pk.sort(key=lambda p: p[1])
    add("pcapng-two-interfaces", pcapng_bytes([(DLT_EN10MB, 6), (DLT_LINUX_SLL, 9)], pk), ext=".pcapng")

    # timers with --at -----------------------------------------------------------------------
    # first packet at 100.001; the server's FIN (TIME_WAIT) at 100.006 -> expiry at +60.005
    cbc = _pcap(closed_by_client().frames)
    add("timer-time-wait", cbc, ats=("0.002", "30", "60.004", "60.006", "200"))
    add("timer-time-wait-msl2-5", cbc, opts=("--msl2", "5", "--fin-timeout", "3"), ats=("4.9", "5.1", "20"))
    f = established()
    f.c("FA")
    f.s("A")  # FIN_WAIT_2 from +0.004, the server never closes
    orphan = _pcap(f.frames)
    add("timer-fin-wait-2", orphan, ats=("1", "60.003", "60.005", "300"))
    add("timer-fin-wait-2-short", orphan, opts=("--fin-timeout", "10"), ats=("9", "10.01", "11"))
    f = closed_by_client()
    g = Flow(cport=40001, t0=f.frames[5][0] + 61, frames=f.frames)  # fires the timer itself
    g.c("S")
    g.s("SA")
    add("timer-fired-by-later-packet", f.frames, ats=("30", "61.5"))

    # damaged files ---------------------------------------------------------------------------
    whole = _pcap(_lifecycle().frames)
    add("truncated-in-record", whole[:-10])
    last = len(_lifecycle().frames[-1][2])
    add("truncated-in-header", whole[: len(whole) - last - 16 + 7])
    add("header-only", whole[:24])
    add("not-a-capture", b"this is not a capture file\n" * 4, ext=".pcap")
    bad = bytearray(whole)
    # the fifth record's length made absurd: corrupt record part-way
    off = 24
    for _ in range(4):
        caplen = struct.unpack_from("<I", bad, off + 8)[0]
        off += 16 + caplen
    struct.pack_into("<I", bad, off + 8, 0x7FFFFFF0)
    add("corrupt-record-length", bytes(bad))

    names = [c.name for c in cases]
    assert len(names) == len(set(names)), names
    return cases
