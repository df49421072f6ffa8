"""Saving captured frames to a classic pcap file."""

from __future__ import annotations

from typing import BinaryIO

from ...errors import os_problem
from .ring import _PCAP_HDR, _PCAP_REC, LiveError


# -- saving ----------------------------------------------------------------------------------
class PcapSink:
    """Appends captured frames to a classic pcap file with nanosecond timestamps (the ring's
    own resolution, so a replay of the file gives exactly the times seen live).

    Args:
        path: where to write; ``-`` is not accepted (the terminal belongs to the UI).
        linktype: the capture's link type.
        snaplen: the capture's snap length (written in the file header).
        force: overwrite an existing file; without it an existing file is an error.
    """

    def __init__(self, path: str, linktype: int, snaplen: int, force: bool = False) -> None:
        self.path = path
        self.linktype = linktype
        self.snaplen = snaplen
        self.count = 0
        self.error: str | None = None
        if path == "-":
            raise LiveError("-w -: standard output is the viewer's terminal; give a file name")
        try:
            self._f: BinaryIO | None = open(path, "wb" if force else "xb")  # noqa: SIM115
        except OSError as e:
            raise LiveError(os_problem(path, e)) from None
        self._f.write(_PCAP_HDR.pack(0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        self._f.flush()

    def write_block(self, data: bytes, spans: list[tuple[int, int, int, int, int]]) -> None:
        """Write frames ``(sec, nsec, off, caplen, origlen)`` found in ``data``; then flush."""
        f = self._f
        if f is None:
            return
        parts = []
        pack = _PCAP_REC.pack
        for sec, nsec, off, caplen, origlen in spans:
            parts.append(pack(sec, nsec, caplen, origlen))
            parts.append(data[off : off + caplen])
        try:
            f.write(b"".join(parts))
            f.flush()  # readers (tcpview replay --follow) see whole blocks as they come
        except OSError as e:
            self.error = os_problem(self.path, e) + " (stopped saving)"
            self.close()
            return
        self.count += len(spans)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f is not None:
            try:
                self._f.close()
            except OSError as e:
                self.error = self.error or os_problem(self.path, e)
            self._f = None
