"""Saving a capture to a ring of files (``-w FILE --ring-size MB [--ring N]``, as dumpcap -b):
file sizes, which files stay, that only the ring's own files are removed, and the one-line
errors. The live capture into a ring is in test_live.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpview.engine.pump import load
from tcpview.sources.live.ring import LiveError
from tcpview.sources.live.sink import PcapSink, RingSink

LINKTYPE_ETHERNET = 1


def _frames(n: int, payload: int) -> tuple[bytes, list[tuple[int, int, int, int, int]]]:
    """``n`` Ethernet frames of one connection's data, laid out in one block as a capture ring
    holds them, and their spans (sec, nsec, offset, caplen, origlen)."""
    data, spans = b"", []
    for i in range(n):
        f = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") /
                  TCP(sport=40000, dport=80, flags="A", seq=1000 + i * payload, ack=1) / (b"x" * payload))
        spans.append((1_700_000_000 + i, 1000 * i, len(data), len(f), len(f)))
        data += f
    return data, spans


def test_files_are_full_before_the_next_and_the_newest_are_kept(tmp_path):
    keep_mine = tmp_path / "cap.pcap"
    keep_mine.write_bytes(b"the user's own file of that name")
    other = tmp_path / "cap_notes.txt"
    other.write_bytes(b"notes")
    data, spans = _frames(40, 400)  # 454-byte frames, 470 bytes each in a file
    limit = 2000  # 24-byte header + 4 packets of 470 bytes
    ring = RingSink(str(keep_mine), LINKTYPE_ETHERNET, 65535, False, limit, files=3)
    ring.write_block(data, spans[:7])  # blocks split anywhere across files
    ring.write_block(data, spans[7:8])
    ring.write_block(data, spans[8:])
    ring.close()
    assert ring.count == 40
    assert ring.number == 10  # 4 packets a file
    assert ring.removed == 7
    kept = sorted(tmp_path.glob("cap_0*.pcap"))
    assert [str(p) for p in kept] == list(ring.made)
    assert [int(p.name.split("_")[1]) for p in kept] == [8, 9, 10]
    assert all(p.stat().st_size <= limit for p in kept)
    # the kept files hold the newest packets (29 to 40), in order and whole, as tshark reads them
    rows = []
    for p in kept:
        r = subprocess.run(["tshark", "-r", str(p), "-T", "fields", "-e", "tcp.seq_raw", "-e", "frame.time_epoch",
                            "-e", "tcp.len"], capture_output=True, text=True, timeout=60, check=True)
        rows += [line.split("\t") for line in r.stdout.splitlines()]
    assert [int(seq) for seq, _, _ in rows] == [1000 + i * 400 for i in range(28, 40)]
    assert {int(n) for _, _, n in rows} == {400}
    assert rows[0][1].startswith(f"{1_700_000_000 + 28}.0000280")  # nanosecond stamps kept
    assert sum(load(str(p)).timeline.packets for p in kept) == 12
    # nothing else of the user's was touched
    assert keep_mine.read_bytes() == b"the user's own file of that name"
    assert other.read_bytes() == b"notes"
    assert "3 kept" in ring.saved() and "7 oldest removed" in ring.saved()


def test_without_a_ring_every_file_stays_and_a_big_packet_has_a_file_of_its_own(tmp_path):
    data, spans = _frames(6, 1400)
    ring = RingSink(str(tmp_path / "c"), LINKTYPE_ETHERNET, 65535, False, 1000)  # smaller than one packet
    ring.write_block(data, spans)
    ring.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) == 6 and ring.removed == 0 and ring.count == 6
    assert all(f.suffix == ".pcap" for f in files)  # a name without a suffix gets .pcap
    assert [load(str(f)).timeline.packets for f in files] == [1] * 6


def test_a_single_file_says_where_it_saved(tmp_path):
    data, spans = _frames(3, 10)
    sink = PcapSink(str(tmp_path / "one.pcap"), LINKTYPE_ETHERNET, 65535)
    sink.write_block(data, spans)
    sink.close()
    assert sink.saved() == f"saved 3 packets to {tmp_path / 'one.pcap'}"
    assert sink.size == os.path.getsize(tmp_path / "one.pcap")


def test_a_ring_in_a_missing_directory_is_one_error(tmp_path):
    with pytest.raises(LiveError, match="no such file or directory"):
        RingSink(str(tmp_path / "no" / "cap.pcap"), LINKTYPE_ETHERNET, 65535, False, 10_000, 2)
    with pytest.raises(LiveError, match="standard output"):
        RingSink("-", LINKTYPE_ETHERNET, 65535, False, 10_000, 2)


def test_a_next_file_that_cannot_be_made_stops_saving_with_one_error(tmp_path):
    """The directory went away mid-capture: the packets already written stay, the ring says
    why it stopped, once, and the capture is not disturbed (no exception)."""
    data, spans = _frames(8, 400)
    (tmp_path / "d").mkdir()
    ring = RingSink(str(tmp_path / "d" / "cap.pcap"), LINKTYPE_ETHERNET, 65535, False, 2000)
    ring.write_block(data, spans[:2])
    os.rename(tmp_path / "d", tmp_path / "moved")
    ring.write_block(data, spans[2:])  # fills the open file, then cannot start the next one
    assert ring.error and "no such file or directory" in ring.error and "stopped saving" in ring.error
    ring.write_block(data, spans)  # stopped: nothing more happens
    ring.close()
    assert ring.count == 4
    assert ring.number == 1 and ring.saved().startswith("saved 4 packets to 1 file (1 kept: ")  # none was made
    (moved,) = (tmp_path / "moved").iterdir()
    assert load(str(moved)).timeline.packets == 4


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("summary", "-i", "lo", "--duration", "1", "--ring", "3"), "need -w FILE"),
        (("summary", "-i", "lo", "--duration", "1", "-w", "x.pcap", "--ring", "3"), "--ring N needs --ring-size"),
        (("live", "-i", "lo", "--ring-size", "5"), "need -w FILE"),
        (("summary", "some.pcap", "-w", "x.pcap"), "go with -i IFACE"),
        (("live", "-i", "lo", "-w", "x.pcap", "--ring-size", "0"), "must be a positive number"),
        (("live", "-i", "lo", "-w", "x.pcap", "--ring-size", "1", "--ring", "-2"), "must be positive"),
    ],
)
def test_ring_options_that_do_not_go_together_are_one_line(tmp_path, args, fragment):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "tcpview", *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert p.returncode == 2, p.stderr
    assert fragment in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not any(tmp_path.iterdir())  # no file made
