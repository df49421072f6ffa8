"""The ring-buffer decoder: pages written here by hand from the kernel's layout
(``include/linux/ring_buffer.h``, ``kernel/trace/ring_buffer.c``) with every kind of event
header, and field offsets from two kernels' ``format`` files (``tcp_send_reset`` changed
shape in 6.10): each decoded as the layout says, missed events counted, damage not read.
"""

from __future__ import annotations

import struct

import numpy as np

from tcpview.sources.tracefs import decode, formats

PAGE = 4096
DATA = 16

STATE_FMT = """name: inet_sock_set_state
ID: 100
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;
"""

# tcp_send_reset before 6.10: the tcp_event_sk_skb class, ports and addresses as fields
OLD_RESET_FMT = """name: tcp_send_reset
ID: 101
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:32;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:38;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:42;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:58;\tsize:16;\tsigned:0;
"""

# tcp_probe: addresses as sockaddr_in6-sized arrays
PROBE_FMT = """name: tcp_probe
ID: 102
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:__u8 saddr[28];\toffset:8;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:36;\tsize:28;\tsigned:0;
\tfield:__u16 sport;\toffset:64;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:66;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:68;\tsize:2;\tsigned:0;
\tfield:__u32 snd_cwnd;\toffset:88;\tsize:4;\tsigned:0;
\tfield:__u32 ssthresh;\toffset:92;\tsize:4;\tsigned:0;
\tfield:__u32 snd_wnd;\toffset:96;\tsize:4;\tsigned:0;
\tfield:__u32 srtt;\toffset:100;\tsize:4;\tsigned:0;
\tfield:const void * skaddr;\toffset:128;\tsize:8;\tsigned:0;
"""


def _tables():
    fmts = {"sock:inet_sock_set_state": formats.parse_format(STATE_FMT),
            "tcp:tcp_send_reset": formats.parse_format(OLD_RESET_FMT),
            "tcp:tcp_probe": formats.parse_format(PROBE_FMT)}
    return formats.layout(fmts)


def _state(sk: int, old: int, new: int, sport: int, dport: int, v6: bytes | None = None) -> bytes:
    body = bytearray(72)
    struct.pack_into("<HxxiQiiHHHH", body, 0, 100, 4242, sk, old, new, sport, dport, 10 if v6 else 2, 6)
    body[32:36] = bytes([127, 0, 0, 1])
    body[36:40] = bytes([10, 0, 0, 2])
    if v6:
        body[40:56] = v6
        body[56:72] = v6
    return bytes(body)


def _probe(sk: int, cwnd: int, srtt: int, v6: bool) -> bytes:
    body = bytearray(136)
    struct.pack_into("<Hxxi", body, 0, 102, 7)
    if v6:
        struct.pack_into("<H", body, 8, 10)
        struct.pack_into(">H", body, 10, 443)
        body[16:32] = bytes(range(16))
    else:
        struct.pack_into("<H", body, 8, 2)
        struct.pack_into(">H", body, 10, 443)
        body[12:16] = bytes([192, 168, 0, 1])
    struct.pack_into("<HHH", body, 64, 443, 5555, 10 if v6 else 2)
    struct.pack_into("<IIII", body, 88, cwnd, 20, 65535, srtt)
    struct.pack_into("<Q", body, 128, sk)
    return bytes(body)


def _ev(delta: int, data: bytes, long: bool = False) -> bytes:
    """A data event: type_len = words of data (or 0 and the length in the next word)."""
    if not long and len(data) <= 28 * 4:
        return struct.pack("<I", (delta << 5) | (len(data) // 4)) + data
    return struct.pack("<II", delta << 5, len(data) + 4) + data


def _page(ts: int, events: bytes, flags: int = 0, missed: int | None = None) -> bytes:
    commit = len(events) | flags
    page = struct.pack("<QQ", ts, commit) + events
    if missed is not None:
        page += struct.pack("<Q", missed)
    return page.ljust(PAGE, b"\0")


def _decode(pages: list[bytes], off: int = 0) -> tuple[np.ndarray, np.ndarray]:
    kind_of, lay = _tables()
    buf = np.frombuffer(b"".join(pages), dtype=np.uint8).copy()
    out = decode.kevent_array(len(pages) * PAGE // 12)
    stats = np.zeros(3, dtype=np.int64)
    n = decode.decode_pages(buf, len(pages), PAGE, DATA, 1, kind_of, lay, off, out, 0, stats)
    return out[:n], stats


def test_every_kind_of_event_header_gives_its_time():
    v6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1])
    events = (
        _ev(5, _state(0xFFFF8881, 7, 2, 0, 80))  # small: type_len = 18
        + struct.pack("<II", (3 << 5) | 29, 12) + b"\0" * 8  # padding of 4 + 12 bytes: a discarded event, its delta kept
        + _ev(10, _state(0xFFFF8881, 2, 1, 40000, 80, v6), long=True)  # type_len 0
        + struct.pack("<II", (7 << 5) | 30, 2)  # time extend: + (2 << 27) + 7
        + _ev(1, _probe(0xFFFF8882, 10, 250, v6=False))  # 136 bytes: type_len 0 (> 112)
        + struct.pack("<II", (5 << 5) | 31, 3)  # absolute: (3 << 27) | 5, top bits from before
        + _ev(0, _probe(0xFFFF8882, 11, 300, v6=True))
    )
    t0 = 1_000_000_000
    ev, stats = _decode([_page(t0, events)], off=5_000_000_000)
    assert list(ev.kind) == [formats.K_STATE, formats.K_STATE, formats.K_PROBE, formats.K_PROBE]
    want = [t0 + 5, t0 + 5 + 3 + 10, t0 + 18 + (2 << 27) + 7 + 1, (3 << 27) | 5]
    assert list(ev.mono) == want
    assert np.allclose(ev.ts, (np.array(want) + 5_000_000_000) * 1e-9)
    assert (ev[0].old, ev[0].new, ev[0].fam, bytes(ev[0].saddr[:4])) == (7, 2, 4, bytes([127, 0, 0, 1]))
    assert (ev[1].fam, bytes(ev[1].saddr), ev[1].sport) == (6, v6, 40000)
    assert ev[0].pid == 4242 and ev[0].sk == 0xFFFF8881
    assert (ev[2].fam, bytes(ev[2].saddr[:4]), ev[2].sport, ev[2].dport) == (4, bytes([192, 168, 0, 1]), 443, 5555)
    assert (ev[2].cwnd, ev[2].ssthresh, ev[2].snd_wnd, ev[2].srtt) == (10, 20, 65535, 250)
    assert (ev[3].fam, bytes(ev[3].saddr), ev[3].cwnd, ev[3].sk) == (6, bytes(range(16)), 11, 0xFFFF8882)
    assert list(stats) == [0, 0, 0]


def test_a_v4_mapped_address_is_ipv4():
    mapped = bytes([0] * 10 + [0xFF, 0xFF, 10, 1, 2, 3])
    ev, _ = _decode([_page(0, _ev(0, _state(1, 7, 2, 0, 80, mapped)))])
    assert (ev[0].fam, bytes(ev[0].saddr[:4]), bytes(ev[0].saddr[4:])) == (4, bytes([10, 1, 2, 3]), bytes(12))


def test_an_older_kernels_offsets():
    body = bytearray(76)
    struct.pack_into("<HxxiQQiHHH", body, 0, 101, 1, 0, 0xABC, 7, 8080, 9090, 2)
    body[34:38] = bytes([1, 2, 3, 4])
    ev, _ = _decode([_page(0, _ev(0, bytes(body)))])
    assert (ev[0].kind, ev[0].sk, ev[0].old, ev[0].sport, ev[0].dport) == (formats.K_SEND_RST, 0xABC, 7, 8080, 9090)
    assert bytes(ev[0].saddr[:4]) == bytes([1, 2, 3, 4])


def test_missed_events_and_the_end_of_a_page():
    one = _ev(1, _state(1, 7, 10, 80, 0))
    stored = _page(0, one, flags=decode.MISSED_EVENTS | decode.MISSED_STORED, missed=37)
    flagged = _page(0, one, flags=decode.MISSED_EVENTS)
    # a null padding (no delta): what follows on the page is not read
    ended = _page(0, one + struct.pack("<I", 29) + one)
    ev, stats = _decode([stored, flagged, ended])
    assert len(ev) == 3
    assert stats[0] == 37 + 1


def test_damage_is_counted_and_not_read():
    short = _ev(1, _state(1, 7, 10, 80, 0)[:40])  # shorter than the event's format says
    too_long = struct.pack("<QQ", 0, PAGE) + b"\0" * (PAGE - 16)  # more bytes than a page holds
    unknown = _ev(1, struct.pack("<Hxxi", 999, 0) + bytes(24))
    ev, stats = _decode([_page(0, short + unknown), too_long])
    assert len(ev) == 0
    assert list(stats) == [0, 2, 1]


def test_layout_of_a_field_of_another_size_is_absent():
    text = OLD_RESET_FMT.replace("int state;\toffset:24;\tsize:4", "int state;\toffset:24;\tsize:2")
    _kind_of, lay = formats.layout({"tcp:tcp_send_reset": formats.parse_format(text)})
    assert lay[formats.K_SEND_RST, formats.F_STATE] == -1
    assert lay[formats.K_SEND_RST, formats.F_SKADDR] == 16
