"""Joining two vantage points on built frames, where the timing is exact: what counts as lost
between the captures near a capture's end."""

from __future__ import annotations

import json

from helpers import cli, ether_ipv4_tcp, pcap_bytes

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)
C0, S0 = 1000, 5000  # the two ends' initial sequence numbers

OPENING = [
    ("c", "S", C0, 0, 0, 0.000, 0.001),
    ("s", "SA", S0, C0 + 1, 0, 0.002, 0.003),
    ("c", "A", C0 + 1, S0 + 1, 0, 0.004, 0.005),
    ("s", "A", S0 + 1, C0 + 1, 1000, 0.010, 0.011),
]
"""The handshake, each leg 1 ms on the wire, and the server's first 1000 bytes."""


def _write(tmp_path, wire: list[tuple[str, str, int, int, int, float, float | None]]):
    """The client's and the server's captures of ``wire``: each segment as (sender ``c`` or
    ``s``, flags, seq, ack, payload length, when it left, when it arrived or None: lost).
    Each tap sees what its end sent when it left, and what reached it when it arrived."""
    taps: dict[str, list[tuple[float, bytes]]] = {"c": [], "s": []}
    for who, flags, seq, ack, n, sent, arrived in wire:
        (src, sp), (dst, dp) = (CLIENT, SERVER) if who == "c" else (SERVER, CLIENT)
        frame = ether_ipv4_tcp(src, dst, sp, dp, flags, seq, ack, 8192, b"x" * n)
        taps[who].append((sent, frame))
        if arrived is not None:
            taps["s" if who == "c" else "c"].append((arrived, frame))
    paths = []
    for who in "cs":
        p = tmp_path / f"{who}.pcap"
        p.write_bytes(pcap_bytes(sorted(taps[who], key=lambda f: f[0])))
        paths.append(str(p))
    return paths


def _lost(paths: list[str]) -> dict[str, int]:
    rc, out, err = cli("summary", "--json", *paths)
    assert rc == 0, err
    (conn,) = json.loads(out)["connections"]
    return conn["lost_between_captures"]


def test_a_segment_lost_near_the_end_counts_when_a_later_one_arrived(tmp_path):
    """One of the server's segments sat 50 ms in a queue; another, lost 4 ms before the
    client's capture ended, was sent again and arrived. The resend says the first copy was
    lost (not still on its way), though the slowest delay is longer than the time left. The
    last segment, sent after the client's capture ended, is not counted lost."""
    wire = [
        *OPENING,
        ("s", "A", S0 + 1001, C0 + 1, 1000, 0.011, 0.061),  # queued 50 ms
        ("c", "A", C0 + 1, S0 + 2001, 0, 0.062, 0.063),
        ("s", "A", S0 + 2001, C0 + 1, 1000, 0.070, None),  # lost
        ("s", "A", S0 + 2001, C0 + 1, 1000, 0.072, 0.073),  # sent again, arrived
        ("c", "A", C0 + 1, S0 + 3001, 0, 0.074, 0.075),  # the client's capture's last frame
        ("s", "A", S0 + 3001, C0 + 1, 1000, 0.0745, None),  # on its way when it ended
    ]
    assert _lost(_write(tmp_path, wire)) == {"c2s": 0, "s2c": 1}


def test_a_segment_in_flight_at_the_end_is_not_lost(tmp_path):
    """The last segments the server sent, after the client's capture's last frame, with no
    later one seen arriving: they may have arrived after the capture stopped."""
    wire = [
        *OPENING,
        ("c", "A", C0 + 1, S0 + 1001, 0, 0.012, 0.013),  # the client's capture's last frame
        ("s", "A", S0 + 1001, C0 + 1, 1000, 0.0125, None),
        ("s", "A", S0 + 2001, C0 + 1, 1000, 0.0126, None),
    ]
    assert _lost(_write(tmp_path, wire)) == {"c2s": 0, "s2c": 0}
