"""Saving captured frames to a classic pcap file, or to a ring of them (as ``dumpcap -b``)."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import BinaryIO

from ...errors import os_problem
from ...textutil import plural
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
            self._f: BinaryIO | None = open(path, "wb" if force else "xb")
        except OSError as e:
            raise LiveError(os_problem(path, e)) from None
        self._f.write(_PCAP_HDR.pack(0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        self._f.flush()
        self.size = _PCAP_HDR.size
        """Bytes written to the file so far."""

    def write_block(self, data: bytes | memoryview, spans: list[tuple[int, int, int, int, int]]) -> None:
        """Write frames ``(sec, nsec, off, caplen, origlen)`` found in ``data``; then flush."""
        f = self._f
        if f is None:
            return
        parts: list[bytes | memoryview] = []
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
        self.size += len(spans) * _PCAP_REC.size + sum(span[3] for span in spans)

    def saved(self) -> str:
        """What was saved, for the last words of a capture."""
        return f"saved {plural(self.count, 'packet')} to {self.path}"

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f is not None:
            try:
                self._f.close()
            except OSError as e:
                self.error = self.error or os_problem(self.path, e)
            self._f = None


# -- a ring of files --------------------------------------------------------------------------
class RingSink:
    """Saves to a series of pcap files, each up to ``size`` bytes, keeping the newest ``files``
    of them (all when None): what ``dumpcap -b filesize:... -b files:...`` does, so a long live
    session keeps its last hours on disk in bounded space.

    The files are named as dumpcap names them: ``-w cap.pcap`` makes ``cap_00001_20261202093000.pcap``,
    ``cap_00002_...``, the number counting up and the time the file's opening (local time).
    Only files this ring made are ever removed; a name that exists already is an error unless
    ``force``. A file is full when the next packet would take it past ``size`` (a file holds
    one packet at least, however big). ``path`` is the file being written; ``count`` the
    packets saved in all (removed files' included), ``removed`` how many files were removed.
    """

    def __init__(self, path: str, linktype: int, snaplen: int, force: bool, size: int,
                 files: int | None = None) -> None:
        if path == "-":
            raise LiveError("-w -: standard output is the viewer's terminal; give a file name")
        stem, ext = os.path.splitext(path)
        self._stem, self._ext = stem, ext or ".pcap"
        self.linktype, self.snaplen, self.force = linktype, snaplen, force
        self.limit = max(int(size), _PCAP_HDR.size + _PCAP_REC.size + 1)
        self.keep = files
        self.made: deque[str] = deque()  # the files of this ring still on disk, oldest first
        self.number = 0
        self.removed = 0
        self.error: str | None = None
        self._done = 0  # packets in the files already closed
        self._cur: PcapSink | None = None
        self._next_file()

    @property
    def path(self) -> str:
        """The file being written (the last one, once closed)."""
        return self.made[-1] if self.made else f"{self._stem}{self._ext}"

    @property
    def count(self) -> int:
        return self._done + (self._cur.count if self._cur is not None else 0)

    def _close_current(self) -> None:
        cur, self._cur = self._cur, None
        if cur is not None:
            cur.close()
            self._done += cur.count
            self.error = self.error or cur.error

    def _next_file(self) -> None:
        self._close_current()
        name = f"{self._stem}_{self.number + 1:05d}_{time.strftime('%Y%m%d%H%M%S')}{self._ext}"
        self._cur = PcapSink(name, self.linktype, self.snaplen, self.force)
        self.number += 1
        self.made.append(name)
        while self.keep is not None and len(self.made) > self.keep:
            old = self.made.popleft()
            try:
                os.unlink(old)
                self.removed += 1
            except FileNotFoundError:  # someone moved it away: nothing to do
                pass
            except OSError as e:
                self.error = os_problem(old, e) + " (could not remove it from the ring)"

    def write_block(self, data: bytes | memoryview, spans: list[tuple[int, int, int, int, int]]) -> None:
        """Write frames ``(sec, nsec, off, caplen, origlen)`` of ``data``, going on to the next
        file wherever the one being written is full."""
        start = 0
        while start < len(spans) and self._cur is not None:
            cur = self._cur
            room = self.limit - cur.size
            end = start
            while end < len(spans):
                need = _PCAP_REC.size + spans[end][3]
                if need > room and (end > start or cur.count):
                    break
                room -= need
                end += 1
            if end > start:
                cur.write_block(data, spans[start:end])
                if cur.error:  # it said why and stopped: so does the ring
                    self._close_current()
                    return
                start = end
            if start < len(spans):
                try:
                    self._next_file()
                except LiveError as e:
                    self.error = f"{e} (stopped saving)"
                    return

    def close(self) -> None:
        """Close the file being written (idempotent)."""
        self._close_current()

    def saved(self) -> str:
        """What was saved, for the last words of a capture."""
        kept = len(self.made)
        where = self.made[0] if kept == 1 else f"{self.made[0]} ... {self.made[-1]}" if kept else "no file"
        gone = f"; the {self.removed} oldest removed, as --ring asks" if self.removed else ""
        return f"saved {plural(self.count, 'packet')} to {plural(self.number, 'file')} ({kept} kept: {where}{gone})"


def open_sink(path: str, linktype: int, snaplen: int, force: bool = False, ring_size: int | None = None,
              ring_files: int | None = None) -> PcapSink | RingSink:
    """One file, or a ring of them when ``ring_size`` (bytes per file) is given."""
    if ring_size is None:
        return PcapSink(path, linktype, snaplen, force)
    return RingSink(path, linktype, snaplen, force, ring_size, ring_files)
