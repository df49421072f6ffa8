"""What every live capture is set up with, whichever way it captures (the packet ring or
dumpcap): the interface, the filter, the snap length, the name it is shown by, and saving
what it captures to a file or a ring of files."""

from __future__ import annotations

import sys
from typing import Any

from .ifaces import default_interface
from .ring import DEFAULT_SNAPLEN, SAVE_SNAPLEN, LiveError
from .sink import PcapSink, RingSink, open_sink


class CaptureSettings:
    """The part of a live capture's set-up both ways share (a base class)."""

    linktype: int
    sink: PcapSink | RingSink | None
    timeline: Any
    """The Timeline this capture feeds, if whoever feeds it says so (for ``skipped``)."""

    def close(self) -> None:
        """Release what the capture holds (each way has its own)."""
        raise NotImplementedError

    def save_or_close(self, write: str | None, force: bool, ring_size: int | None, ring_files: int | None) -> None:
        """At the end of a constructor: save to ``write`` when given (:meth:`save_to`); if that
        fails, close what was opened before the error goes up."""
        if not write:
            return
        try:
            self.save_to(write, force, ring_size, ring_files)
        except LiveError:
            self.close()
            raise

    def with_counts(self, status: dict[str, int]) -> dict[str, int]:
        """``status`` with what every way of capture counts alike: frames ``saved`` to ``-w``,
        and ``skipped`` (frames the decoder could not use) once :attr:`timeline` is set."""
        if self.sink is not None:
            status["saved"] = self.sink.count
        tl = self.timeline
        if tl is not None:
            status["skipped"] = sum(tl.skipped.values())
        return status

    def settle(self, interface: str | None, bpf: str | None, write: str | None, snaplen: int | None,
               buffer_mb: int) -> None:
        """Check and keep the settings; the default interface when none is named, whole frames
        when they are saved.

        Raises:
            LiveError: not Linux, or a snap length out of range.
        """
        if not sys.platform.startswith("linux"):
            raise LiveError("live capture is only supported on Linux; use `tcpview replay FILE`")
        self.interface = interface or default_interface()
        self.bpf = bpf or None
        self.snaplen = snaplen or (SAVE_SNAPLEN if write else DEFAULT_SNAPLEN)
        if not 64 <= self.snaplen <= SAVE_SNAPLEN:
            raise LiveError(f"snap length must be between 64 and {SAVE_SNAPLEN}")
        self.name = f"live {self.interface}" + (f" ({self.bpf})" if self.bpf else "")
        self.buffer_mb = buffer_mb
        self.sink = None
        self.timeline = None

    def save_to(self, path: str, force: bool = False, ring_size: int | None = None,
                ring_files: int | None = None, kernel: bool = False) -> None:
        """Also save every frame captured from now on to the pcap file ``path`` (or to a ring
        of files named after it, ``ring_size`` bytes each, the newest ``ring_files`` kept:
        :class:`~tcpview.sources.live.sink.RingSink`); ``kernel``: a pcapng file, which keeps
        the kernel's events too (whoever reads them hands them to the sink's ``write_kernel``).

        Call before the capture is read. Frames are cut at this capture's snap length (pass
        ``snaplen`` or ``write`` to the constructor for whole frames).
        """
        if self.sink is not None:
            raise LiveError("already saving to " + self.sink.path)
        self.sink = open_sink(path, self.linktype, self.snaplen, force, ring_size, ring_files, kernel)
