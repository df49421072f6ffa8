"""A capture that another program writes to its standard output: dumpcap here, tcpdump on a
remote host over ssh. What reading one takes, whichever program it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from ..batch import FrameBatch
    from ..pcap import CaptureReader


def stderr_lines(pipe: IO[bytes]) -> Iterator[str]:
    """The program's standard error a line at a time, stripped, blank lines left out (a
    carriage return ends a line too: progress lines rewrite themselves with one)."""
    for raw in pipe:
        for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
            line = line.strip()
            if line:
                yield line


def read_header(reader: CaptureReader) -> tuple[Iterator[FrameBatch | None], list[FrameBatch]]:
    """Read the stream until its header says the link type (``reader.linktypes``; empty when
    the stream ended, failed or ``reader.stop`` said so first). Returns the reader's batches,
    going on from there, and the batches read meanwhile."""
    from ..pcap import CaptureError

    early: list[FrameBatch] = []
    gen: Iterator[FrameBatch | None] = iter(())
    try:
        gen = reader.batches()  # reads the stream's first bytes
        while not reader.linktypes:
            batch = next(gen)
            if batch is not None:
                early.append(batch)
    except (CaptureError, StopIteration):
        pass
    return gen, early
