"""Several captures read as one timeline, merged by time as mergecap merges them: a real
loopback capture cut into a ring's files reads as the whole, frame for frame; two captures
merge in mergecap's order (equal time stamps keep the files' order); each frame keeps its
capture (JSON ``capture``) and its bytes are read back from its own file; bad input is one
line and exit status 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import cli

from tcpview.engine.pump import Pump, load
from tcpview.sources.merge import MergedSource
from tcpview.sources.pcap import CaptureReader

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None or shutil.which("mergecap") is None,
                                reason="needs editcap and mergecap (wireshark-common)")


def _ring(src: Path, folder: Path, per_file: int) -> list[Path]:
    """``src`` cut into files of ``per_file`` packets, named as a ring's files are."""
    folder.mkdir()
    subprocess.run(["editcap", "-F", "pcap", "-c", str(per_file), str(src), str(folder / "ring.pcap")], check=True,
                   capture_output=True)
    return sorted(folder.iterdir())


def _tshark(path: Path, *fields: str) -> list[tuple[str, ...]]:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", *[a for f in fields for a in ("-e", f)]],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


def _jsonl(*args: str) -> list[dict]:
    rc, out, err = cli("export", "--format", "jsonl", *args)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_a_rings_files_read_as_the_whole_capture(loopback_capture, tmp_path):
    whole = loopback_capture.pcap
    files = _ring(whole, tmp_path / "ring", 20)
    assert len(files) >= 3
    rc, one, err = cli("summary", "--json", str(whole))
    assert rc == 0, err
    # the pattern quoted (the shell did not expand it): tcpview expands it, in sorted order
    rc, many, err = cli("summary", "--json", str(tmp_path / "ring" / "ring_*.pcap"))
    assert rc == 0, err
    a, b = json.loads(one), json.loads(many)
    assert a["connections"] == b["connections"]  # none cut in two at a file's end
    assert a["counters"] == b["counters"]
    segs_one, segs_many = _jsonl(str(whole)), _jsonl(*map(str, files))
    assert [{k: v for k, v in s.items() if k != "capture"} for s in segs_many] == segs_one
    # each frame's capture: the file that holds it (20 frames a file, the TCP ones exported)
    per_file = {str(f): int(x[0]) for f in files for x in [_count(f)]}
    seen: dict[str, int] = {}
    for s in segs_many:
        seen[s["capture"]] = seen.get(s["capture"], 0) + 1
    assert seen == {k: v for k, v in per_file.items() if v}
    firsts = [s["frame"] for s in segs_many if s["capture"] == str(files[1])]
    assert min(firsts) == 21


def _count(path: Path) -> tuple[int]:
    return (len(_tshark(path, "frame.number")),)


def test_two_captures_merge_in_mergecaps_order(loopback_capture, tmp_path):
    """Odd and even frames in two files, and a copy of one (every time stamp a tie): the merged
    stream is mergecap's, frame for frame, and the ties keep the order the files were given."""
    whole = loopback_capture.pcap
    odd, even = tmp_path / "odd.pcap", tmp_path / "even.pcap"
    n = len(_tshark(whole, "frame.number"))
    subprocess.run(["editcap", "-F", "pcap", "-r", str(whole), str(odd), *[str(i) for i in range(1, n + 1, 2)]], check=True)
    subprocess.run(["editcap", "-F", "pcap", "-r", str(whole), str(even), *[str(i) for i in range(2, n + 1, 2)]], check=True)
    twin = tmp_path / "twin.pcap"
    shutil.copy(odd, twin)
    for files in ([even, odd], [odd, twin]):
        merged = tmp_path / "merged.pcapng"
        subprocess.run(["mergecap", "-w", str(merged), *map(str, files)], check=True)
        want = _tshark(merged, "frame.time_epoch", "tcp.seq_raw", "tcp.ack_raw", "tcp.srcport")
        segs = _jsonl("--no-join", *map(str, files))  # (the twin would be joined: the same segments)
        got = [(s["ts"], s["seq_raw"], s["ack_raw"]) for s in segs]
        assert len(got) == len(want)
        for (ts, seq, ack), w in zip(got, want, strict=True):
            assert abs(ts - float(w[0])) < 1e-6 and (seq, ack) == (int(w[1]), int(w[2]))
        if files[1] == twin:  # a tie: the first file's frame first, then the second's
            assert [s["capture"] for s in segs[:6]] == [str(odd), str(twin)] * 3
    # the frames exported from the merge are mergecap's, byte for byte
    out = tmp_path / "out.pcapng"
    rc, _o, err = cli("export", "--format", "pcap", "-o", str(out), str(even), str(odd))
    assert rc == 0, err
    merged = tmp_path / "merged2.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(even), str(odd)], check=True)
    assert _tshark(out, "frame.time_epoch", "frame.len", "tcp.seq_raw", "tcp.checksum") == \
        _tshark(merged, "frame.time_epoch", "frame.len", "tcp.seq_raw", "tcp.checksum")


def test_the_frame_store_reads_each_frame_from_its_own_file(loopback_capture, tmp_path):
    whole = loopback_capture.pcap
    files = _ring(whole, tmp_path / "ring", 15)
    pump = Pump(MergedSource([str(f) for f in files]), pause_seconds=0.0)
    pump.run(threading.Event())
    assert pump.error is None and pump.tl.captures is not None
    with CaptureReader(str(whole)) as reader:
        frames = [r for r in reader.records() if r is not None]
    assert pump.frames_read == len(frames)
    tcp_frames = {int(f) for f in pump.tl.view().segs.frame[: pump.tl.view().n_seg]}
    for frame, _ts, lt, buf, off, caplen, _orig in frames:
        if frame in tcp_frames:
            assert pump.frames.get(frame) == (lt, bytes(buf[off:off + caplen])), frame
            assert pump.tl.captures.name(frame) == str(files[(frame - 1) // 15])


def test_a_ring_as_a_list_loads_as_one(loopback_capture, tmp_path):
    files = [str(f) for f in _ring(loopback_capture.pcap, tmp_path / "ring", 10)]
    one, many = load(str(loopback_capture.pcap)), load(files)
    assert many.error is None
    assert many.timeline.packets == one.timeline.packets
    assert many.timeline.view().next_id == one.timeline.view().next_id


@pytest.mark.parametrize("case", ["missing", "not a capture", "stdin among files", "offset of no file"])
def test_bad_input_is_one_line_and_status_2(loopback_capture, tmp_path, case):
    good = str(loopback_capture.pcap)
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture at all\n")
    args = {"missing": [good, str(tmp_path / "nope.pcap")],
            "not a capture": [good, str(bad)],
            "stdin among files": [good, "-"],
            "offset of no file": [good, good, "--offset", "other.pcap=1"]}[case]
    for command in (["summary"], ["ladder", "--conn", "0"], ["expert"], ["export"], ["diagnose"]):
        rc, out, err = cli(*command, *args)
        assert rc == 2 and out == "", (command, err)
        assert err.startswith("tcpview: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_sources_already_open_merge_the_same(loopback_capture, tmp_path):
    """The merge over sources made elsewhere (what a merge of remote captures builds on):
    each frame's capture index, in the same order as from the files."""
    from tcpview.sources.base import FileSource

    files = [str(f) for f in _ring(loopback_capture.pcap, tmp_path / "ring", 10)]
    by_path = MergedSource(files)
    given = MergedSource([f"host{i}" for i in range(len(files))], sources=[FileSource(f) for f in files])
    stop = threading.Event()
    a = [(b.frames.frame.tolist(), b.frames.ts.tolist(), b.capture.tolist()) for b in by_path.batches(stop)]
    b = [(x.frames.frame.tolist(), x.frames.ts.tolist(), x.capture.tolist()) for x in given.batches(stop)]
    assert a == b and len(a) >= 3
    assert given.captures.name(1) == "host0" and given.captures.name(11) == "host1"
