"""Captures that are still being written: a pcap stream on stdin from a real ``tcpdump -U -w -``
and a file another program keeps appending to (``--follow``), read as the data arrives."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import REPO, Flow, many_connections, pcap_bytes, wait_until
from livehelp import env_with_repo, need_root, read_until, tcpview_cmd, wait_settled, wait_tcpdump_wrote

from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources.base import FileSource
from tcpview.sources.pcap import CaptureReader


def _tcpdump(bpf: str, *out: str) -> subprocess.Popen:
    # immediate mode hands each packet over at once; a small snap length keeps its small
    # ring from overflowing on a burst (with whole 256 KiB frames it holds only a few)
    return subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "256", "-n", "-w", *out, bpf],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# -- tcpdump -U -w - | tcpview summary - ----------------------------------------------------------
def test_tcpdump_pipe_into_summary(lo_traffic):
    need_root()
    t = lo_traffic
    t.listener("time_wait")
    t.listener("close_wait")
    t.reserve("refused")
    # the command as a user types it (packets reach the pipe within tcpdump's 1 s timeout)
    dump = subprocess.Popen(["tcpdump", "-U", "-i", "lo", "-w", "-", t.bpf()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    view = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=dump.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_with_repo(), text=True)
    dump.stdout.close()  # the viewer holds the only read end: tcpdump's EOF reaches it
    try:
        read_until(dump.stderr, "listening on", 20)
        tw = t.time_wait()
        cw = t.close_wait()
        rf = t.refused()
        wait_settled(t.ports.values())  # the last ACKs are sent
        wait_tcpdump_wrote(dump)  # without immediate mode it hands packets over once a second
        _stop(dump)
        out, err = view.communicate(timeout=30)
    finally:
        _stop(dump)
        if view.poll() is None:
            view.kill()
            view.wait()
    assert view.returncode == 0, err
    s = json.loads(out)
    assert s["source"] == "-"
    got = {(c["client"]["port"], c["server"]["port"]): (c["client"]["state"], c["server"]["state"])
           for c in s["connections"]}
    assert got == {
        (tw[0][1], tw[1][1]): ("TIME_WAIT", "CLOSED"),
        (cw[0][1], cw[1][1]): ("FIN_WAIT_2", "CLOSE_WAIT"),
        (rf[0][1], rf[1][1]): ("CLOSED", "CLOSED"),
    }
    assert s["counters"]["TIME_WAIT"] == 1 and s["counters"]["CLOSE_WAIT"] == 1


_STREAM_CONSUMER = r"""
import sys, threading, time
from tcpview.sources.base import FileSource
src = FileSource(sys.argv[1], follow=sys.argv[1] != "-")
stop = threading.Event()
def on_signal(*_):
    stop.set()
import signal
signal.signal(signal.SIGUSR1, on_signal)
for rec in src.frames(stop):
    if rec is None:
        print("idle", flush=True)
    else:
        print("rec", rec[0], rec[5], flush=True)
print("end", src.error, flush=True)
"""


def _consumer(arg: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _STREAM_CONSUMER, arg], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_with_repo(), text=True, cwd=REPO)


def _lines_until(p: subprocess.Popen, pred, timeout: float = 10.0) -> list[str]:
    """The consumer's output lines, read until ``pred(lines)`` holds."""
    import select

    lines: list[str] = []

    def enough() -> bool:
        if pred(lines):
            return True
        if select.select([p.stdout], [], [], 0.05)[0]:
            line = p.stdout.readline()
            assert line, f"consumer ended: {lines[-5:]} {p.stderr.read()}"
            lines.append(line.strip())
        return pred(lines)

    assert wait_until(enough, timeout, 0), \
        f"waited for output; got {lines[-5:]} stderr={p.stderr.read() if p.poll() is not None else ''}"
    return lines


def test_stdin_stream_from_tcpdump_is_read_before_tcpdump_ends(lo_traffic):
    """Packets show up while tcpdump is still running; an idle pipe yields None (the UI flushes
    its batch and can stop) instead of blocking until the next packet."""
    need_root()
    t = lo_traffic
    t.listener("established")
    dump = _tcpdump(t.bpf(), "-")
    view = _consumer("-", stdin=dump.stdout)
    dump.stdout.close()
    try:
        read_until(dump.stderr, "listening on", 20)
        t.established()
        lines = _lines_until(view, lambda ls: sum(1 for x in ls if x.startswith("rec")) >= 4)
        assert dump.poll() is None  # still capturing
        # nothing more arrives: the reader says it is idle
        lines = _lines_until(view, lambda ls: "idle" in ls, timeout=5)
        # the consumer can stop a stream that has no data coming
        view.send_signal(signal.SIGUSR1)
        lines = _lines_until(view, lambda ls: any(x.startswith("end") for x in ls), timeout=5)
        assert lines[-1] == "end None"
        assert dump.poll() is None
    finally:
        _stop(dump)
        if view.poll() is None:
            view.kill()
        view.wait()


# -- a file another program is still writing ---------------------------------------------------------
def _records(n: int) -> tuple[bytes, list[bytes]]:
    f = Flow(cip="10.1.0.1", sip="10.1.0.2", cport=41000, sport=8080)
    f.handshake()
    for i in range(n - 3):
        f.c("PA", bytes([97 + i % 26]) * (i + 1))
    whole = pcap_bytes([(ts, b) for ts, _lt, b in f.frames])
    recs, pos = [], 24
    for _ts, _lt, b in f.frames:
        recs.append(whole[pos:pos + 16 + len(b)])
        pos += 16 + len(b)
    return whole[:24], recs


def test_follow_file_appended_in_pieces(tmp_path):
    """CaptureReader(follow=True) in a thread while this test appends: header in two pieces,
    records cut inside their header and inside their data; each record comes out once
    complete, in order, and stop ends the reader promptly."""
    hdr, recs = _records(12)
    path = tmp_path / "growing.pcap"
    path.write_bytes(b"")
    stop = threading.Event()
    got: list = []
    nones = [0]
    errors: list = []
    reader = CaptureReader(str(path), follow=True, stop=stop.is_set)

    def read() -> None:
        try:
            with reader as r:
                for rec in r.records():
                    if rec is None:
                        nones[0] += 1
                        continue
                    frame, ts, lt, buf, off, caplen, orig = rec
                    got.append((frame, bytes(buf[off:off + caplen])))
        except Exception as e:
            errors.append(e)

    def looked_again() -> bool:
        """Wait until the reader has looked at the file twice since now (the second look
        began after anything written before this call)."""
        seen = nones[0]
        return wait_until(lambda: nones[0] >= seen + 2, 5)

    th = threading.Thread(target=read)
    th.start()
    try:
        with open(path, "ab", buffering=0) as w:
            w.write(hdr[:10])
            assert wait_until(lambda: reader.bytes_read == 10, 5)  # the first piece is read alone
            w.write(hdr[10:])
            for i, rec in enumerate(recs):
                cut = 7 if i % 2 else 16 + 3  # inside the record header / inside the data
                w.write(rec[:cut])
                assert looked_again()
                assert len(got) == i, "a record came out before it was complete"
                w.write(rec[cut:])
                assert wait_until(lambda i=i: len(got) == i + 1, 5), f"record {i + 1} did not come out"
        assert nones[0] > 0  # the reader told its consumer it was waiting
    finally:
        stop.set()
        th.join(5)
    assert not th.is_alive()
    assert not errors, errors
    assert [f for f, _ in got] == list(range(1, len(recs) + 1))
    assert [d for _, d in got] == [r[16:] for r in recs]


def test_follow_stops_cleanly_before_any_data(tmp_path):
    """Stopping a follower of a file that is still empty is not an error."""
    path = tmp_path / "empty-yet.pcap"
    path.write_bytes(b"")
    src = FileSource(str(path), follow=True)

    class Asked(threading.Event):
        """A stop event that counts how often it is asked (a follower asks while it waits)."""

        asked = 0

        def is_set(self) -> bool:
            self.asked += 1
            return super().is_set()

    stop = Asked()
    out: list = []
    th = threading.Thread(target=lambda: out.extend(src.frames(stop)))
    th.start()
    assert wait_until(lambda: stop.asked >= 6, 5)  # a few rounds of waiting for data (two asks each)
    stop.set()
    th.join(5)
    assert not th.is_alive()
    assert src.error is None
    assert all(r is None for r in out)
    assert src.progress() is None  # a followed file has no "fraction done"


def test_follow_a_capture_tcpdump_is_writing(tmp_path, lo_traffic):
    """tcpview follows tcpdump's output file: states are right while tcpdump still runs."""
    need_root()
    t = lo_traffic
    t.listener("close_wait")
    t.listener("time_wait")
    path = tmp_path / "live.pcap"
    dump = _tcpdump(t.bpf(), str(path))
    try:
        read_until(dump.stderr, "listening on", 20)
        assert wait_until(lambda: path.exists() and path.stat().st_size >= 24, 5)
        src = FileSource(str(path), follow=True)
        tr = Tracker()
        from tcpview.engine.pump import PumpThread

        cap = PumpThread(src, tr).start()
        try:
            cw = t.close_wait()
            assert wait_until(lambda: len(tr.tl.conns) == 1 and tr.tl.conns[0].state == [6, 7], 5), \
                "FIN_WAIT_2 / CLOSE_WAIT not seen while tcpdump runs"
            tw = t.time_wait()
            assert wait_until(lambda: len(tr.tl.conns) == 2 and tr.tl.conns[1].state == [10, 0], 5)
            assert dump.poll() is None
        finally:
            cap.stop()
        c0, c1 = tr.tl.connection(0), tr.tl.connection(1)
        assert (c0.client.port, c0.server.port) == (cw[0][1], cw[1][1])
        assert (c1.client.port, c1.server.port) == (tw[0][1], tw[1][1])
        assert src.error is None
    finally:
        _stop(dump)


def test_follow_a_pcapng_dumpcap_is_writing(tmp_path, lo_traffic):
    """The same with pcapng blocks, from Wireshark's capture engine writing a file."""
    need_root()
    import shutil

    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed")
    t = lo_traffic
    t.listener("time_wait")
    path = tmp_path / "live.pcapng"
    dump = subprocess.Popen(["dumpcap", "-i", "lo", "-s", "256", "-w", str(path), "-f", t.bpf()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        read_until(dump.stderr, "Capturing on", 20)
        assert wait_until(lambda: path.exists() and path.stat().st_size > 0, 20), "dumpcap wrote no header"
        src = FileSource(str(path), follow=True)
        tr = Tracker()
        from tcpview.engine.pump import PumpThread

        cap = PumpThread(src, tr).start()
        try:
            tw = t.time_wait()
            assert wait_until(lambda: len(tr.tl.conns) == 1 and tr.tl.conns[0].state == [10, 0], 10), \
                "TIME_WAIT / CLOSED not seen while dumpcap runs"
            assert dump.poll() is None
        finally:
            cap.stop()
        c = tr.tl.connection(0)
        assert (c.client.port, c.server.port) == (tw[0][1], tw[1][1])
        assert src.error is None
    finally:
        _stop(dump)


def test_summary_follow_is_not_needed_for_a_finished_pipe(tmp_path):
    """``summary -`` reads a pcap written to its stdin in slow pieces (a pipe, not a file)."""
    hdr, recs = _records(6)
    p = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_with_repo())
    try:
        for chunk in [hdr[:5], hdr[5:] + recs[0][:9]] + [recs[0][9:]] + recs[1:]:
            p.stdin.write(chunk)
            p.stdin.flush()
            time.sleep(0.03)  # pacing: pieces that arrive apart, as from a slow writer
        p.stdin.close()
        out = p.stdout.read()
        assert p.wait(20) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    s = json.loads(out)
    assert s["packets"] == 6
    assert (s["connections"][0]["client"]["state"], s["connections"][0]["server"]["state"]) == \
        ("ESTABLISHED", "ESTABLISHED")



_RESTS = r"""
import sys, time
import tcpview.engine.pump as pump
rests = []
sleep = time.sleep
class Clock:  # the pump's clock, with its rests counted
    def __getattr__(self, name):
        return getattr(time, name)
    def sleep(self, s):
        rests.append(s)
        sleep(s)
pump.time = Clock()
if len(sys.argv) > 2:
    pump.STREAM_TURN = float(sys.argv[2])
cpu = time.thread_time()
res = pump.load(sys.argv[1])
cpu = time.thread_time() - cpu
print(len(res.timeline.conns), sum(r == pump.STREAM_REST for r in rests), cpu)
"""


def _read_in_pieces(data: bytes, pieces: int, *args: str) -> tuple[int, int, float]:
    """``load("-")`` of ``data`` written into a pipe in ``pieces`` 0.3 s apart (each its own
    take: one lingers 50 ms at most), in a Python of its own: the connections, the rests of
    STREAM_REST, and the reading thread's CPU."""
    p = subprocess.Popen([sys.executable, "-c", _RESTS, "-", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_with_repo(), cwd=REPO)
    step = len(data) // pieces + 1
    try:
        for at in range(0, len(data), step):
            p.stdin.write(data[at:at + step])
            p.stdin.flush()
            time.sleep(0.3)
        p.stdin.close()
        p.wait(60)
        out, err = p.stdout.read(), p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    conns, rests, cpu = out.split()
    return int(conns), int(rests), float(cpu)


def test_a_stream_read_by_a_command_rests_after_each_turn_of_cpu(tmp_path):
    """`tcpdump -U -w - | tcpview summary -`: the command's own thread reads and analyses the
    stream, and rests a little once it has worked a turn (STREAM_REST after STREAM_TURN of
    CPU), so that a CPU it keeps busy falls idle now and then for the producer; a capture file
    read the same way takes no rest."""
    from tcpview.engine.pump import STREAM_TURN

    data = pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(6))
    conns, rests, _cpu = _read_in_pieces(data, 6, "0")  # a turn of no CPU: a rest after each batch
    assert conns == 6 and rests >= 5, (conns, rests)
    conns, rests, cpu = _read_in_pieces(data, 6)
    assert conns == 6 and rests <= cpu / STREAM_TURN + 1, (rests, cpu)
    capture = tmp_path / "six.pcap"
    capture.write_bytes(data)
    got = subprocess.run([sys.executable, "-c", _RESTS, str(capture), "0"], capture_output=True, text=True,
                         env=env_with_repo(), cwd=REPO, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split()[:2] == ["6", "0"], got.stdout
