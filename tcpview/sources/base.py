"""The one small interface every frame source implements, and the factory for capture files.

A source yields records ``(frame, ts, linktype, buf, off, caplen, origlen)`` exactly as
:class:`tcpview.sources.pcap.CaptureReader` does (for a frame held in its own ``bytes``:
``(frame, ts, linktype, data, 0, len(data), len(data))``), or ``None`` when it is idle
(waiting for packets), so the consumer can flush a batch. Frames go through the same
decoder and tracker whatever their source; there is no side door into the store.

Sources:

- a capture file, a file still being written, or a stream on standard input:
  :class:`FileSource`, made by :func:`open_source` (which also checks the file first);
- live capture: :class:`tcpview.sources.live.capture.LiveSource`, built directly. It is not
  in the factory: it takes an interface, a filter, a snap length, a ring size and a file to
  save to, needs privileges, and the viewer replaces it when the user switches interface;
  a one-string spec would hide all of that.
- the simulator: :class:`tcpview.sim.SimSource`, built directly from a scenario. It is not
  in the factory either: ``tcpview.sim`` is a layer above this one, which never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .batch import FrameBatch

Record = tuple


class Source(Protocol):
    """A producer of raw frames for the tracker; :meth:`frames` runs on a worker thread.

    These are what :class:`tcpview.engine.pump.Pump` and the UI use on every source. The pump
    also looks for a few members only some sources have:

    - ``now() -> float``: the capture clock now, for a source whose time moves while nothing
      arrives (live capture), so idle timers such as TIME_WAIT expiry advance;
    - ``path: str`` and ``reader``: a capture file the frame store may read a frame's bytes
      back from (the detail pane), for :class:`FileSource`;
    - ``timeline``: set by the pump when it is None, for a source whose :meth:`status`
      counts the decoder's skips (live capture);
    - ``batches(stop)``: the frames a batch at a time, read instead of :meth:`frames`
      (:class:`FileSource`: the reader's chunks, each frame's place in the file known);
    - ``expected_frames() -> int | None``: about how many frames the source holds, None when
      unknown (:class:`FileSource`); a source without it goes on (live capture, the
      simulator). The pump chooses plain Python or compiled kernels by it.

    Whoever opens a live capture closes it (``LiveSource.close``); a :class:`FileSource`
    closes its file when :meth:`frames` ends.
    """

    name: str
    """Shown in the title bar, e.g. ``replay kernel.pcap`` or ``live eth0``."""
    live: bool
    """True when the cursor should follow the newest packet (live capture, streams, demo)."""
    error: str | None
    """Why reading stopped early (one line), once :meth:`frames` has ended; None if it did not."""

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
    """A pcap/pcapng file (or ``-`` for stdin); ``follow`` tails a growing file.

    Args:
        path: the capture's path, or ``-`` for standard input.
        follow: keep reading at the end of the file, for one still being written.
        fd: with ``-``, the file descriptor to read instead of standard input's.

    Raises:
        CaptureError: the file cannot be opened.
    """

    def __init__(self, path: str, follow: bool = False, fd: int | None = None) -> None:
        from .pcap import CaptureReader

        self.path = path
        self.follow = follow or path == "-"
        self.live = self.follow
        self.name = ("follow " if follow else "replay ") + ("stdin" if path == "-" else path)
        self._stop = threading.Event()
        self._fd = fd
        self.reader = CaptureReader(path, follow=follow, stop=self._stop.is_set, fd=fd)
        self.error: str | None = None

    def frames(self, stop: threading.Event) -> Iterator[Record | None]:
        """Yield the capture's records; damage part-way ends them and is kept in :attr:`error`."""
        batches = self.batches(stop)
        try:
            for batch in batches:
                if batch is None:
                    yield None
                    continue
                for rec in batch.records():
                    yield rec
                    if stop.is_set():
                        return
        finally:
            batches.close()

    def batches(self, stop: threading.Event) -> Generator[FrameBatch | None, None, None]:
        """Yield the capture's frames a chunk at a time, as the reader finds them (what the pump
        reads: the batches say where in the file each frame is); ``None`` while waiting for more.
        Damage part-way ends them and is kept in :attr:`error`."""
        from .pcap import CaptureError, check_linktypes

        self.reader.stop = stop.is_set
        try:
            for batch in self.reader.batches():
                yield batch
                if stop.is_set():
                    return
            check_linktypes(self.reader)
        except CaptureError as e:
            if not stop.is_set():  # stopped while waiting: a cut-off record is not damage
                self.error = str(e)
        finally:
            self.reader.close()

    def expected_frames(self) -> int | None:
        """About how many frames the capture holds (None: a pipe, or a file still being
        written): see :func:`tcpview.sources.pcap.estimate_frames`."""
        from .pcap import estimate_frames

        if self.follow and self.path != "-":
            return None
        return estimate_frames(self.path, self._fd)

    def progress(self) -> float | None:
        """Fraction of the file read (None for a stream or a followed file)."""
        return self.reader.progress()

    def status(self) -> dict[str, int]:
        """For a stream: ``waiting``, the bytes its producer wrote that are not read yet (in the
        pipe and read ahead): a reader that falls behind says so. For a pcapng capture whose
        capturing program wrote its statistics (dumpcap does): ``dropped``, the packets it
        lost, on every interface, as last counted."""
        out: dict[str, int] = {}
        waiting = self.reader.waiting()
        if waiting is not None:
            out["waiting"] = waiting
        if self.reader.iface_drops:
            out["dropped"] = sum(self.reader.iface_drops.values())
        return out


def open_source(spec: str, *, follow: bool = False, fd: int | None = None) -> FileSource:
    """The source for a capture file's path, or ``-`` for a stream on standard input.

    A path is checked before it is handed over (its header and first record, or for a
    followed file its first bytes), so a missing file or one that is not a capture fails
    here, in one line, and not once a viewer is drawn. A stream is not checked: what is read
    from it cannot be read again.

    Args:
        spec: a pcap/pcapng path, or ``-``.
        follow: keep reading a file that is still being written (a stream always does).
        fd: with ``-``, read this file descriptor instead of standard input's (replay moves
            the pipe off descriptor 0 so the UI can read keys from the terminal there).

    Raises:
        CaptureError: no such file, unreadable, or not a pcap/pcapng capture.
    """
    if spec != "-":
        from .pcap import check_capture

        check_capture(spec, follow=follow)
    return FileSource(spec, follow=follow, fd=fd)
