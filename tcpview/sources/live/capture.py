"""Live capture from a network interface: a Linux packet socket with a memory-mapped ring.

Why not scapy's sniffer: dissecting every packet in Python loses packets from a few ten
thousand packets per second on. This source reads raw frames with no dissection:

- an ``AF_PACKET`` socket bound to one interface (``any``: every interface, cooked);
- the capture filter compiled to classic BPF by libpcap (``pcap_compile`` through ctypes,
  the same code tcpdump uses) and attached to the socket, so the kernel drops unwanted
  packets before they are copied;
- a ``TPACKET_V3`` receive ring: the kernel writes packets into shared blocks and hands over
  a whole block at a time, so there is one ``poll`` per block instead of one ``recv`` per
  packet, and tens of megabytes absorb bursts while the tracker is busy;
- each finished block is copied out in one piece and given back to the kernel at once; the
  records point into that copy exactly as :class:`~tcpview.sources.pcap.CaptureReader`'s
  records point into a file chunk, so the decoder works in place.

Loopback hands every packet to packet sockets twice (once leaving, once arriving). A short
BPF prefix drops the ``PACKET_OUTGOING`` copy on ``lo`` in the kernel, so each packet counts
once. Kernel drops come from ``PACKET_STATISTICS`` and are shown through :meth:`status`.

A VLAN tag that the network card strips (VLAN offload) is not in the frame; tcpdump puts it
back, this source does not. It does not change TCP states; frames saved with ``-w`` lack it.

Everything that can go wrong because of what the user asked for (no privileges, unknown
interface, bad filter, an existing output file) raises :class:`LiveError` with one line.
The socket needs root or ``CAP_NET_RAW``; without, :mod:`~tcpview.sources.live.choose`
captures through Wireshark's dumpcap instead (:mod:`~tcpview.sources.live.dumpcap`).
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

from ...errors import os_problem
from ..linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from .ifaces import (
    check_interface,
    interface_type,
)
from .ring import (
    _BLOCK,
    _REQ3,
    _STATS3,
    _STATUS,
    ARPHRD_ETHER,
    ARPHRD_LOOPBACK,
    BLOCK_SIZE,
    DEFAULT_BUFFER_MB,
    ETH_P_ALL,
    PACKET_RX_RING,
    PACKET_STATISTICS,
    PACKET_VERSION,
    RETIRE_MS,
    SOL_PACKET,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TPACKET_V3,
    CapturePrivilegeError,
    LiveError,
    _accept_all,
    _attach,
    compile_filter,
    drop_loopback_outgoing,
    no_capture_privileges,
)
from .settings import CaptureSettings

# -- the source ------------------------------------------------------------------------------
FINISH_WAIT = 1.0
"""The longest a finishing capture waits for the kernel to hand over the block being filled."""


class LiveSource(CaptureSettings):
    """Capture on an interface; a :class:`~tcpview.sources.base.Source`.

    The socket is opened in the constructor, so every user error surfaces before a UI starts.
    :meth:`frames` runs on one worker thread (the capture thread); :meth:`status` may be
    called from any thread.

    Args:
        interface: interface name, ``any``, or None for the one holding the default route.
        bpf: tcpdump filter expression applied in the kernel (None: everything).
        write: also save every captured frame to this pcap file.
        force: allow ``write`` to overwrite an existing file.
        snaplen: bytes kept per frame (default: headers only, whole frames with ``write``).
        buffer_mb: size of the kernel ring in MiB.

    Raises:
        CapturePrivilegeError: neither root nor CAP_NET_RAW (then
            :func:`~tcpview.sources.live.choose.open_capture` tries dumpcap).
        LiveError: no such interface, a bad filter, an existing output file.
    """

    live = True
    method = "packet ring"
    """How this source captures, for the status line and the summary."""

    def __init__(
        self,
        interface: str | None = None,
        bpf: str | None = None,
        write: str | None = None,
        force: bool = False,
        snaplen: int | None = None,
        buffer_mb: int = DEFAULT_BUFFER_MB,
        ring_size: int | None = None,
        ring_files: int | None = None,
    ) -> None:
        self.settle(interface, bpf, write, snaplen, buffer_mb)
        self.captured = 0
        self.kernel_seen = 0
        self.kernel_drops = 0
        self.blocks = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._finishing = threading.Event()
        self._reader: int | None = None  # thread running frames(), if any
        self._reader_done = threading.Event()
        self._reader_done.set()
        self._sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        self._open(buffer_mb)
        self.save_or_close(write, force, ring_size, ring_files)


    # -- setup -----------------------------------------------------------------------------
    def _open(self, buffer_mb: int) -> None:
        iface = self.interface
        any_iface = iface == "any"
        if any_iface:
            arphrd = None
        else:
            check_interface(iface)
            arphrd = interface_type(iface)
        # Ethernet-like interfaces give whole frames; anything else (tun, ppp, any) is read
        # "cooked": the kernel strips the link header and the frames are raw IP.
        raw = arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK)
        self.linktype = LINKTYPE_ETHERNET if raw else LINKTYPE_RAW
        # Compile first (no privileges needed): a typo is reported as a typo.
        prog = compile_filter(self.bpf, self.linktype, self.snaplen) if self.bpf else _accept_all(self.snaplen)
        if any_iface:
            try:
                lo = socket.if_nametoindex("lo")
            except OSError:
                lo = None
            if lo is not None:
                prog = drop_loopback_outgoing(prog, lo)
        elif arphrd == ARPHRD_LOOPBACK:
            prog = drop_loopback_outgoing(prog)
        if len(prog) > 4096:
            raise LiveError(f"capture filter {self.bpf!r} is too long for the kernel")
        stype = socket.SOCK_RAW if raw else socket.SOCK_DGRAM
        try:
            # protocol 0 receives nothing until bind(), so no packet slips past the filter
            sock = socket.socket(socket.AF_PACKET, stype, socket.htons(ETH_P_ALL) if any_iface else 0)
        except PermissionError:
            raise CapturePrivilegeError(no_capture_privileges()) from None
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                raise CapturePrivilegeError(no_capture_privileges()) from None
            raise LiveError(os_problem("cannot open a packet socket", e)) from None
        self._sock = sock
        try:
            _attach(sock, prog)
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            nblocks = max(2, (max(1, buffer_mb) << 20) // BLOCK_SIZE)
            frame_size = 2048
            req = _REQ3.pack(BLOCK_SIZE, nblocks, frame_size, (BLOCK_SIZE // frame_size) * nblocks,
                             RETIRE_MS, 0, 0)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._nblocks = nblocks
            self._mm = mmap.mmap(sock.fileno(), BLOCK_SIZE * nblocks, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            if not any_iface:
                sock.bind((iface, ETH_P_ALL))
        except OSError as e:
            self.close()
            if e.errno == errno.ENODEV:
                raise LiveError(f"no such interface: {iface!r}") from None
            if e.errno == errno.ENETDOWN:
                raise LiveError(f"interface {iface} is down") from None
            if e.errno == errno.ENOMEM:
                raise LiveError(f"the kernel refused a {buffer_mb} MiB capture ring (try a smaller --buffer)") from None
            raise LiveError(os_problem(f"cannot capture on {iface}", e)) from None
        self._block = 0
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    # -- Source protocol ---------------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[tuple | None]:
        """Yield records ``(frame, ts, linktype, buf, off, caplen, origlen)`` until ``stop``.

        Yields ``None`` whenever no packet arrived for a while (about 0.1 s), so the consumer
        can flush its batch and notice ``stop``. (The engine reads :meth:`batches`.)
        """
        for batch in self.batches(stop):
            if batch is None:
                yield None
            else:
                yield from batch.records()

    def batches(self, stop: threading.Event) -> Iterator:
        """The same packets as :meth:`frames`, a ring block at a time (what the engine reads):
        the block is copied out once and a compiled scanner finds the packets in it."""
        # here, not at the top: opening a capture (and saying what is missing) needs no numpy
        import numpy as np

        from ..batch import FrameBatch, frame_array
        from ..scan import scan_tpacket


        mm = self._mm
        if mm is None:
            return
        lt = self.linktype
        nblocks = self._nblocks
        unpack_block = _BLOCK.unpack_from
        status_of = _STATUS.unpack_from
        poll = self._poll.poll
        closing = self._closing
        finishing = self._finishing
        last: float | None = None  # when a finishing read gives up waiting for a block
        sink = self.sink
        self._reader = threading.get_ident()
        self._reader_done.clear()
        try:
            while not stop.is_set() and not closing.is_set():
                boff = self._block * BLOCK_SIZE
                if not status_of(mm, boff + 8)[0] & TP_STATUS_USER:
                    if finishing.is_set():
                        # the block being filled holds the last packets: the kernel hands it
                        # over at its next retire timer (RETIRE_MS, later on a busy machine);
                        # an empty one it keeps, and there is nothing to wait for
                        if not unpack_block(mm, boff)[3]:
                            break
                        last = last if last is not None else time.monotonic() + FINISH_WAIT
                        if time.monotonic() >= last:
                            break
                        poll(10)
                        continue
                    yield None
                    if stop.is_set() or closing.is_set():
                        break
                    for _fd, ev in poll(100):
                        if ev & select.POLLERR:
                            self._socket_error()
                    continue
                _v, _p, _st, npkts, first, blen = unpack_block(mm, boff)
                data = mm[boff : boff + blen]  # one copy; the frames point into it
                _STATUS.pack_into(mm, boff + 8, TP_STATUS_KERNEL)  # hand the block back now
                self._block = (self._block + 1) % nblocks
                self.blocks += 1
                buf = np.frombuffer(data, dtype=np.uint8)
                out = frame_array(npkts)
                stamp = np.zeros((npkts, 2), dtype=np.int64)
                n = scan_tpacket(buf, first, npkts, lt, self.captured, out, stamp)
                self.captured += n
                if sink is not None and n:
                    spans = [(sec, ns, off, cap, orig) for (sec, ns), off, cap, orig in
                             zip(stamp[:n].tolist(), out.off[:n].tolist(), out.caplen[:n].tolist(),
                                 out.origlen[:n].tolist(), strict=True)]
                    sink.write_block(data, spans)
                    if sink.error:
                        self.error = sink.error
                        sink = None
                yield FrameBatch(buf, out[:n])
        finally:
            self._read_stats()
            self._reader_done.set()

    def _socket_error(self) -> None:
        """Read (and so clear) a pending socket error, e.g. the interface went down.

        Capture goes on: a packet socket stays bound and sees packets again when the
        interface comes back up. The error is kept for the UI and the final message.
        """
        with self._lock:
            if self._sock is None:
                return
            try:
                err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError:
                return
        if err == errno.ENETDOWN:
            self.error = f"interface {self.interface} went down"
        elif err:
            self.error = os_problem(f"capture on {self.interface}", OSError(err, os.strerror(err)))

    def progress(self) -> float | None:
        """Always None: a live capture has no end."""
        return None

    def now(self) -> float:
        """Capture time now: packets carry wall-clock times, so the clock (idle, TIME_WAIT
        and FIN_WAIT_2 expiry) moves on while nothing arrives. Held back by twice the time
        the kernel may keep a partly filled ring block: a packet captured before this time has
        been handed over, so no timer fires ahead of a packet that came before its deadline."""
        return time.time() - 2 * RETIRE_MS / 1000

    @property
    def reading(self) -> bool:
        """Whether a :meth:`frames` (or :meth:`batches`) loop is running on some thread."""
        return not self._reader_done.is_set()

    def _read_stats(self) -> None:
        with self._lock:
            if self._sock is None:
                return
            try:
                raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
            except OSError:
                return
            # the kernel resets the counters on each read; tp_packets includes the drops
            packets, drops, _freeze = _STATS3.unpack(raw)
            self.kernel_seen += packets
            self.kernel_drops += drops

    def status(self) -> dict[str, int]:
        """``captured`` frames, ``dropped`` by the kernel (ring full), ``saved`` to ``-w``,
        and ``skipped`` (frames the decoder could not use) once :attr:`timeline` is set."""
        self._read_stats()
        out = {"captured": self.captured, "dropped": self.kernel_drops}
        return self.with_counts(out)

    def finish(self) -> None:
        """End the capture as tcpdump does at Ctrl-C: the reading loop reads what the ring
        holds, the block being filled included (the kernel hands it over within
        ``RETIRE_MS``: packets of the last milliseconds are in it), and then ends."""
        self._finishing.set()

    def close(self) -> None:
        """Release the ring, the socket and the output file (idempotent).

        A :meth:`frames` loop running on another thread is asked to stop first and given a
        moment to do so, so it never reads a ring that is gone.
        """
        self._closing.set()
        if self._reader is not None and self._reader != threading.get_ident():
            self._reader_done.wait(2.0)
        self._read_stats()
        with self._lock:
            if self._mm is not None:
                try:
                    self._mm.close()
                except BufferError:
                    pass  # a record still points into it; the GC will unmap it
                self._mm = None
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        if self.sink is not None:
            self.sink.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
