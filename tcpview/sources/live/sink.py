"""Saving captured frames to a file, or to a ring of them (as ``dumpcap -b``).

A classic pcap file with nanosecond time stamps; with ``--kernel`` a pcapng file instead
(nanosecond time stamps too), which also keeps the kernel's events in tcpview's custom blocks
(:mod:`tcpview.sources.kblocks`) as they come, among the packets.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque
from typing import BinaryIO

import numpy as np

from ...errors import os_problem
from ...textutil import plural
from .. import kblocks
from ..tracefs.decode import kevent_array
from .ring import _PCAP_HDR, _PCAP_REC, LiveError

_EPB = struct.Struct("<IIIIIII")  # enhanced packet block: type, length, interface, time high/low, lengths
_APP = b"tcpview"


def _pcapng_head(linktype: int, snaplen: int) -> bytes:
    """A section header (shb_userappl: tcpview) and one interface with nanosecond times."""
    app = _APP + b"\0" * (-len(_APP) % 4)
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + struct.pack("<HH", 4, len(_APP)) + app + b"\0" * 4
    shb = struct.pack("<II", 0x0A0D0D0A, len(shb_body) + 12) + shb_body + struct.pack("<I", len(shb_body) + 12)
    idb_body = struct.pack("<HHI", linktype, 0, snaplen) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4
    idb = struct.pack("<II", 1, len(idb_body) + 12) + idb_body + struct.pack("<I", len(idb_body) + 12)
    return shb + idb


def record_size(caplen: int, pcapng: bool) -> int:
    """Bytes one frame of ``caplen`` bytes takes in the file."""
    return _EPB.size + 4 + (caplen + 3) // 4 * 4 if pcapng else _PCAP_REC.size + caplen


# -- saving ----------------------------------------------------------------------------------
class PcapSink:
    """Appends captured frames to a classic pcap file with nanosecond timestamps (the ring's
    own resolution, so a replay of the file gives exactly the times seen live); with
    ``kernel``, to a pcapng file that keeps the kernel's events too (:meth:`write_kernel`).

    Args:
        path: where to write; ``-`` is not accepted (the terminal belongs to the UI).
        linktype: the capture's link type.
        snaplen: the capture's snap length (written in the file header).
        force: overwrite an existing file; without it an existing file is an error.
        kernel: write pcapng, starting with an empty block of kernel events (so a file of a
            ``--kernel`` run says so even when the kernel had nothing to say).
    """

    def __init__(self, path: str, linktype: int, snaplen: int, force: bool = False, kernel: bool = False) -> None:
        self.path = path
        self.linktype = linktype
        self.snaplen = snaplen
        self.pcapng = kernel
        self.count = 0
        self.events = 0
        self.error: str | None = None
        self._lock = threading.Lock()  # frames come on the capture's thread, events on the kernel feed's
        if path == "-":
            raise LiveError("-w -: standard output is the viewer's terminal; give a file name")
        try:
            self._f: BinaryIO | None = open(path, "wb" if force else "xb")
        except OSError as e:
            raise LiveError(os_problem(path, e)) from None
        self.size = 0
        """Bytes written to the file so far."""
        if kernel:
            self._write(_pcapng_head(linktype, snaplen) + kblocks.encode(kevent_array(0), 0))
        else:
            self._write(_PCAP_HDR.pack(0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))

    def _write(self, data: bytes) -> bool:
        """Write and flush (readers, ``tcpview replay --follow``, see whole blocks as they
        come); False (and :attr:`error` says why) when it failed: saving stops."""
        with self._lock:
            f = self._f
            if f is None:
                return False
            try:
                f.write(data)
                f.flush()
            except OSError as e:
                self.error = os_problem(self.path, e) + " (stopped saving)"
                self._close()
                return False
            self.size += len(data)
            return True

    def write_block(self, data: bytes | memoryview, spans: list[tuple[int, int, int, int, int]]) -> None:
        """Write frames ``(sec, nsec, off, caplen, origlen)`` found in ``data``; then flush."""
        if self._f is None:
            return
        parts: list[bytes | memoryview] = []
        if self.pcapng:
            pack = _EPB.pack
            for sec, nsec, off, caplen, origlen in spans:
                ns = sec * 1_000_000_000 + nsec
                pad = -caplen % 4
                blen = _EPB.size + caplen + pad + 4
                parts += (pack(6, blen, 0, ns >> 32, ns & 0xFFFFFFFF, caplen, origlen), data[off: off + caplen],
                          b"\0" * pad + blen.to_bytes(4, "little"))
        else:
            pack = _PCAP_REC.pack
            for sec, nsec, off, caplen, origlen in spans:
                parts.append(pack(sec, nsec, caplen, origlen))
                parts.append(data[off : off + caplen])
        if self._write(b"".join(parts)):
            self.count += len(spans)

    def write_kernel(self, events: np.ndarray, lost: int) -> None:
        """Write a batch of the kernel's events (:data:`~tcpview.sources.tracefs.decode.KEVENT`
        rows) and how many the kernel had lost by then, as one custom block (a pcapng file
        only); the events of each call are the ones the live view took at once."""
        if self.pcapng and self._write(kblocks.encode(events, lost)):
            self.events += len(events)

    def saved(self) -> str:
        """What was saved, for the last words of a capture."""
        events = f" and {plural(self.events, 'kernel event')}" if self.pcapng else ""
        return f"saved {plural(self.count, 'packet')}{events} to {self.path}"

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
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
                 files: int | None = None, kernel: bool = False) -> None:
        if path == "-":
            raise LiveError("-w -: standard output is the viewer's terminal; give a file name")
        stem, ext = os.path.splitext(path)
        self._stem, self._ext = stem, ext or (".pcapng" if kernel else ".pcap")
        self.linktype, self.snaplen, self.force, self.kernel = linktype, snaplen, force, kernel
        self._lock = threading.RLock()  # frames come on the capture's thread, events on the kernel feed's
        self._events_done = 0
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

    @property
    def events(self) -> int:
        """The kernel's events saved in all (with ``kernel``)."""
        return self._events_done + (self._cur.events if self._cur is not None else 0)

    def _close_current(self) -> None:
        cur, self._cur = self._cur, None
        if cur is not None:
            cur.close()
            self._done += cur.count
            self._events_done += cur.events
            self.error = self.error or cur.error

    def _next_file(self) -> None:
        self._close_current()
        name = f"{self._stem}_{self.number + 1:05d}_{time.strftime('%Y%m%d%H%M%S')}{self._ext}"
        self._cur = PcapSink(name, self.linktype, self.snaplen, self.force, self.kernel)
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

    def write_kernel(self, events: np.ndarray, lost: int) -> None:
        """Write a batch of the kernel's events into the file being written (see
        :meth:`PcapSink.write_kernel`)."""
        with self._lock:
            if self._cur is not None:
                self._cur.write_kernel(events, lost)

    def write_block(self, data: bytes | memoryview, spans: list[tuple[int, int, int, int, int]]) -> None:
        """Write frames ``(sec, nsec, off, caplen, origlen)`` of ``data``, going on to the next
        file wherever the one being written is full."""
        with self._lock:
            self._write_block(data, spans)

    def _write_block(self, data: bytes | memoryview, spans: list[tuple[int, int, int, int, int]]) -> None:
        start = 0
        while start < len(spans) and self._cur is not None:
            cur = self._cur
            room = self.limit - cur.size
            end = start
            while end < len(spans):
                need = record_size(spans[end][3], self.kernel)
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
        with self._lock:
            self._close_current()

    def saved(self) -> str:
        """What was saved, for the last words of a capture."""
        kept = len(self.made)
        where = self.made[0] if kept == 1 else f"{self.made[0]} ... {self.made[-1]}" if kept else "no file"
        gone = f"; the {self.removed} oldest removed, as --ring asks" if self.removed else ""
        events = f" and {plural(self.events, 'kernel event')}" if self.kernel else ""
        return (f"saved {plural(self.count, 'packet')}{events} to {plural(self.number, 'file')} "
                f"({kept} kept: {where}{gone})")


def open_sink(path: str, linktype: int, snaplen: int, force: bool = False, ring_size: int | None = None,
              ring_files: int | None = None, kernel: bool = False) -> PcapSink | RingSink:
    """One file, or a ring of them when ``ring_size`` (bytes per file) is given; ``kernel``:
    pcapng, keeping the kernel's events too (see :class:`PcapSink`)."""
    if ring_size is None:
        return PcapSink(path, linktype, snaplen, force, kernel)
    return RingSink(path, linktype, snaplen, force, ring_size, ring_files, kernel)
