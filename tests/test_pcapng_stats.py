"""The packets a capturing program lost, as a pcapng capture's Interface Statistics Blocks say
(dumpcap writes them): a reader of the file or stream is told its world has holes."""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading

import pytest
from helpers import ether_ipv4_tcp, ng_block, pcapng_bytes

from tcpview.sources.base import FileSource


def isb(endian: str, iface: int, ifdrop: int | None = None, osdrop: int | None = None) -> bytes:
    opts = b""
    for code, value in ((5, ifdrop), (7, osdrop)):
        if value is not None:
            opts += struct.pack(endian + "HHQ", code, 8, value)
    opts += struct.pack(endian + "HH", 4, 8) + struct.pack(endian + "Q", 1000)  # isb_ifrecv: not a drop
    body = struct.pack(endian + "III", iface, 0, 0) + opts + struct.pack(endian + "HH", 0, 0)
    return ng_block(endian, 5, body)


def _read(path) -> tuple[int, dict, str | None]:
    src = FileSource(str(path))
    n = sum(len(b) for b in src.batches(threading.Event()) if b is not None)
    return n, src.status(), src.error


@pytest.mark.parametrize("endian", ["<", ">"])
def test_statistics_blocks_give_the_drops_of_every_interface(tmp_path, endian):
    syn = ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, "S", 1, 0, 65535, b"")
    data = pcapng_bytes([(1, 6), (1, 6)], [(0, 1.0, syn), (1, 1.5, syn)], endian=endian)
    data += isb(endian, 0, ifdrop=4) + isb(endian, 1, ifdrop=7, osdrop=3) + isb(endian, 0, ifdrop=5)
    path = tmp_path / "s.pcapng"
    path.write_bytes(data)
    assert _read(path) == (2, {"dropped": 15}, None)  # the last count of each interface: 5 + 10


def test_a_capture_without_statistics_says_nothing_of_drops(tmp_path):
    path = tmp_path / "n.pcapng"
    path.write_bytes(pcapng_bytes([(1, 6)], [(0, 1.0, ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2, "S", 1, 0, 65535, b""))]))
    assert _read(path) == (1, {}, None)


def test_damaged_statistics_blocks_are_one_line(tmp_path):
    syn = ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, "S", 1, 0, 65535, b"")
    base = pcapng_bytes([(1, 6)], [(0, 1.0, syn)])
    for block, words in ((isb("<", 3, ifdrop=1), "unknown interface 3"),
                         (ng_block("<", 5, b"\0" * 4), "corrupt pcapng interface statistics block")):
        path = tmp_path / "d.pcapng"
        path.write_bytes(base + block)
        n, _st, error = _read(path)
        assert n == 1 and error is not None and words in error and "\n" not in error


def test_dumpcap_files_say_their_drops(tmp_path):
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed")
    path = tmp_path / "lo.pcapng"
    p = subprocess.run(["dumpcap", "-q", "-i", "lo", "-a", "duration:1", "-w", str(path)], capture_output=True,
                       text=True, timeout=30, check=False)
    if p.returncode != 0:
        pytest.skip(f"dumpcap cannot capture here: {p.stderr.strip()[-200:]}")
    n, status, error = _read(path)
    assert error is None and status == {"dropped": 0}  # lo at rest loses nothing, and dumpcap says so


def test_summary_tells_the_drops_on_stderr(tmp_path):
    from helpers import cli

    syn = ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, "S", 1, 0, 65535, b"")
    path = tmp_path / "s.pcapng"
    path.write_bytes(pcapng_bytes([(1, 6)], [(0, 1.0, syn)]) + isb("<", 0, ifdrop=12))
    code, out, err = cli("summary", str(path), "--json")
    assert code == 0 and '"packets": 1' in out
    assert "the capture dropped 12 packets" in err


async def test_the_viewer_of_a_stream_says_it_falls_behind_and_what_the_capture_dropped(tmp_path):
    import os

    from helpers import wait_until

    from tcpview.ui.app import TcpviewApp
    from tcpview.ui.widgets.player_bar import BEHIND_BYTES, PlayerBar

    syn = ether_ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, "S", 1, 0, 65535, b"")
    head = pcapng_bytes([(1, 6)], [(0, 1.0, syn)])
    r, w = os.pipe()
    app = TcpviewApp(FileSource("-", fd=r))
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            bar = app.query_one(PlayerBar)
            os.write(w, head + isb("<", 0, ifdrop=9))
            assert await wait_until(lambda: "9 dropped by the capture" in bar.build().plain, 20, 0.05, pilot.pause)
            bar.behind = BEHIND_BYTES * 2  # as the stream's status says when its producer is far ahead
            assert "8 MiB behind" in bar.build().plain
    finally:
        os.close(w)
        os.close(r)
