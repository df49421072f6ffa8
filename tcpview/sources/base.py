"""The one small interface every frame source implements, and the factory.

A source yields records ``(frame, ts, linktype, buf, off, caplen, origlen)`` exactly as
:class:`tcpview.sources.pcap.CaptureReader` does (for a frame held in its own ``bytes``:
``(frame, ts, linktype, data, 0, len(data), len(data))``), or ``None`` when it is idle
(waiting for packets), so the consumer can flush a batch. Frames go through the same
decoder and tracker whatever their source; there is no side door into the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

Record = tuple


class Source(Protocol):
    """A producer of raw frames for the tracker (runs on a worker thread)."""

    name: str
    """Shown in the title bar, e.g. ``replay kernel.pcap`` or ``live eth0``."""
    live: bool
    """True when the cursor should follow the newest packet (live capture, streams, demo)."""

    def frames(self, stop: threading.Event) -> Iterator[Record | None]:
        """Yield records until exhausted or ``stop`` is set; ``None`` while idle."""
        ...

    def progress(self) -> float | None:
        """Fraction done for a file being opened (None when unknown / live)."""
        ...

    def status(self) -> dict[str, int]:
        """Extra figures to show (e.g. kernel drops); empty when none."""
        ...


class FileSource:
    """A pcap/pcapng file (or ``-`` for stdin); ``follow`` tails a growing file."""

    def __init__(self, path: str, follow: bool = False) -> None:
        from .pcap import CaptureReader

        self.path = path
        self.follow = follow or path == "-"
        self.live = self.follow
        self.name = ("follow " if follow else "replay ") + ("stdin" if path == "-" else path)
        self._stop = threading.Event()
        self.reader = CaptureReader(path, follow=follow, stop=self._stop.is_set)
        self.error: str | None = None

    def frames(self, stop: threading.Event) -> Iterator[Record | None]:
        from .pcap import CaptureError, check_linktypes

        self.reader.stop = stop.is_set
        try:
            for rec in self.reader.records():
                yield rec
                if stop.is_set():
                    return
            check_linktypes(self.reader)
        except CaptureError as e:
            if not stop.is_set():  # stopped while waiting: a cut-off record is not damage
                self.error = str(e)
        finally:
            self.reader.close()

    def progress(self) -> float | None:
        return self.reader.progress()

    def status(self) -> dict[str, int]:
        return {}
