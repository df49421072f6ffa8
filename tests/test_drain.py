"""A stream's pipe is emptied as fast as its producer writes (tcpview.sources.drain): a
producer never has to wait on a consumer that is busy elsewhere, nothing is lost or reordered,
and what waits is told."""

from __future__ import annotations

import os
import threading
import time

from helpers import many_connections, pcap_bytes, wait_until

from tcpview.sources.base import FileSource
from tcpview.sources.drain import Drain, in_pipe


def _producer(w: int, records: list[bytes], blocked: list[int]) -> None:
    """Writes each record as tcpdump -U does (one write each), never waiting: a full pipe
    is counted, then retried. About 8 MB/s, a loopback's churn as tcpdump writes it."""
    os.set_blocking(w, False)
    for i, rec in enumerate(records):
        if i % 80 == 79:
            time.sleep(0.001)
        view = memoryview(rec)
        while view:
            try:
                view = view[os.write(w, view):]
            except BlockingIOError:
                blocked[0] += 1
                time.sleep(0.001)
    os.close(w)


def test_a_busy_consumer_never_holds_the_producer_back():
    r, w = os.pipe()
    drain = Drain(r)
    records = [bytes([i % 251]) * 100 for i in range(60_000)]  # 6 MB in 100-byte writes
    blocked = [0]
    t = threading.Thread(target=_producer, args=(w, records, blocked))
    try:
        t.start()
        t.join(30)  # the consumer takes nothing meanwhile, as if drawing a screen
        assert not t.is_alive()
        assert blocked[0] == 0  # the 64 KiB a pipe holds was full in under a millisecond without the drain
        assert wait_until(lambda: drain.waiting() == 6_000_000, 5)  # in memory, or in a pipe for the next read
        assert wait_until(lambda: in_pipe(r) == 0, 5)  # the drain empties the pipe without the consumer
        got = b""
        while (chunk := drain.take(1.0)) != b"":
            assert chunk is not None
            got += chunk
        assert got == b"".join(records)  # all of it, in order, then the end
        assert drain.waiting() == 0
    finally:
        drain.close()
        os.close(r)


def test_a_quiet_stream_times_out_and_a_held_back_one_waits():
    r, w = os.pipe()
    drain = Drain(r, hold=1 << 16)
    try:
        assert drain.take(0.05) is None  # nothing came
        os.set_blocking(w, False)
        sent = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # past the hold, the drain stops reading: the pipe fills
            try:
                sent += os.write(w, b"x" * 4096)
            except BlockingIOError:
                break
        assert sent > (1 << 16)
        assert wait_until(lambda: drain.waiting() == sent, 5)
        assert len(drain.take(1.0) or b"") >= (1 << 16)
    finally:
        drain.close()
        os.close(w)
        os.close(r)


def test_a_stream_source_reads_every_frame_and_tells_what_waits():
    frames = many_connections(40)
    data = pcap_bytes((ts, raw) for ts, _lt, raw in frames)
    r, w = os.pipe()
    src = FileSource("-", fd=r)
    try:
        os.set_blocking(w, False)
        os.write(w, data[:60_000])
        assert wait_until(lambda: src.status().get("waiting") == min(60_000, len(data)), 5)
        rest = data[60_000:]
        while rest:
            try:
                rest = rest[os.write(w, rest):]
            except BlockingIOError:
                time.sleep(0.01)
        os.close(w)
        w = -1
        stop = threading.Event()
        n = sum(len(b) for b in src.batches(stop) if b is not None)
        assert n == len(frames) and src.error is None
        assert src.status() == {"waiting": 0}
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
