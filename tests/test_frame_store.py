"""The bytes of a frame found again by its number for the detail pane: re-read from a capture
file, or kept from a stream's batches within a budget (tcpview.sources.frames)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_frame_store_rereads_file_frames_and_bounds_recent_bytes(tmp_path: Path) -> None:
    import threading

    from scapy.layers.l2 import Ether
    from uihelp import T0, frames, write_capture

    from tcpview.engine.pump import Pump
    from tcpview.sources.base import FileSource

    path = write_capture(tmp_path / "k.pcap")
    feed = Pump(FileSource(str(path)))
    feed.run(threading.Event(), lambda info: None)
    assert len(feed.times) == 19 and feed.times.ts[0] == pytest.approx(T0)
    for i, pkt in enumerate(frames()):
        lt, data = feed.frames.get(i + 1)  # type: ignore[misc]
        assert lt == 1 and data == bytes(pkt)
    assert feed.frames.get(999) is None

    from tcpview.sources.frames import FrameStore

    store = FrameStore(budget=200)
    for i in range(1, 11):
        store.note_bytes(i, 1, bytes(Ether() / (b"x" * 50)))
    assert store.get(1) is None and store.get(10) is not None  # oldest dropped past the budget


def test_frame_store_keeps_a_streams_batches_whole_and_drops_the_oldest() -> None:
    import numpy as np

    from tcpview.sources.frames import FrameStore

    def batch(first: int, n: int, fill: int):
        sizes = np.arange(n) % 7 + 60
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]) + 10  # frames not at the buffer's start
        buf = np.full(int(offs[-1] + sizes[-1] + 5), fill, dtype=np.uint8)
        for k, (o, s) in enumerate(zip(offs, sizes, strict=True)):
            buf[o] = k  # each frame's first byte says which it is
        buf.flags.writeable = False
        frames = np.arange(first, first + 2 * n, 2)  # every other frame number: the rest are not TCP
        return frames, np.full(n, 1), offs, sizes, buf

    store = FrameStore(budget=30_000)  # two of these batches
    for b, first in enumerate((1, 401, 801, 1201)):
        store.note_bytes_batch(*batch(first, 100, b))
    assert store.get(1) is None and store.get(401) is None  # past the budget: gone, oldest first
    lt, data = store.get(801 + 2 * 5)
    assert lt == 1 and data[0] == 5 and len(data) == 60 + 5 % 7 and set(data[1:]) == {2}
    lt, data = store.get(1201 + 2 * 99)
    assert data[0] == 99 and set(data[1:]) == {3}
    assert store.get(802) is None and store.get(1000) is None and store.get(5000) is None
