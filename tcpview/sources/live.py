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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..decode import LINKTYPE_ETHERNET, LINKTYPE_RAW

# <linux/if_packet.h>, <linux/filter.h>, <asm-generic/socket.h>
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
SKF_AD_OFF = 0xFFFFF000  # -0x1000 as an unsigned 32-bit BPF constant
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
DLT_RAW_LINUX = 12  # libpcap's DLT value for LINKTYPE_RAW (101) on Linux

DEFAULT_SNAPLEN = 512
"""Bytes kept per packet when only viewing: link, IP (with extension headers) and TCP headers
with every option fit easily; the wire length is kept beside, so lengths stay right."""
SAVE_SNAPLEN = 262144
"""Bytes kept per packet when saving with ``-w`` (tcpdump's default: whole packets)."""
BLOCK_SIZE = 1 << 20
DEFAULT_BUFFER_MB = 32
RETIRE_MS = 50  # a partly filled block is handed over after this long, for a lively view

# tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts,
# offset_to_first_pkt, blk_len (bytes used from the block's start)
_BLOCK = struct.Struct("<IIIIII")
_STATUS = struct.Struct("<I")
# tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac, tp_net
_PKT = struct.Struct("<IIIIIIHH")
_REQ3 = struct.Struct("7I")
_STATS3 = struct.Struct("III")
_PCAP_HDR = struct.Struct("<IHHiIII")
_PCAP_REC = struct.Struct("<IIII")

NEED_PRIVILEGES = (
    "live capture needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities "
    "(sudo tcpview live ..., or once: sudo setcap cap_net_raw,cap_net_admin+eip "
    "$(readlink -f $(which python3))); without them try `tcpview sockets` (this host's "
    "TCP sockets) or `tcpview demo`"
)


class LiveError(Exception):
    """Live capture cannot start; the message is one line for the user."""


# -- choosing and describing interfaces ------------------------------------------------------
def default_interface(route_file: str = "/proc/net/route") -> str:
    """The interface holding the IPv4 default route (``lo`` when there is none)."""
    try:
        with open(route_file) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return "lo"
    best: tuple[int, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 8:
            continue
        iface, dest, flags, metric, mask = parts[0], parts[1], parts[3], parts[6], parts[7]
        try:
            up = int(flags, 16) & 0x1  # RTF_UP
            if dest == "00000000" and mask == "00000000" and up:
                m = int(metric)
                if best is None or m < best[0]:
                    best = (m, iface)
        except ValueError:
            continue
    return best[1] if best else "lo"


def interface_type(name: str) -> int | None:
    """The ARPHRD type of interface ``name`` (None if it does not exist or is unreadable)."""
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class InterfaceInfo:
    """One network interface as a capture chooser lists it.

    Attributes:
        name: the interface name (what ``-i`` takes).
        index: the kernel's interface index.
        state: ``up``, ``down`` (administratively) or ``no carrier`` (up, link down).
        addresses: IPv4 then IPv6 addresses with their prefix length (``127.0.0.1/8``).
    """

    name: str
    index: int
    state: str
    addresses: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        """The interface is up with a link (packets can flow)."""
        return self.state == "up"


def _state_of(flags: set[str] | frozenset[str]) -> str:
    if "UP" not in flags:
        return "down"
    return "up" if "LOWER_UP" in flags else "no carrier"


def parse_ip_addr_json(text: str) -> list[InterfaceInfo]:
    """Interfaces from the output of ``ip -j addr`` (iproute2's JSON)."""
    import json

    out = []
    for item in json.loads(text):
        if not isinstance(item, dict) or "ifname" not in item:
            continue
        v4, v6 = [], []
        for a in item.get("addr_info") or ():
            local, family = a.get("local"), a.get("family")
            if not local or family not in ("inet", "inet6"):
                continue
            (v4 if family == "inet" else v6).append(f"{local}/{a.get('prefixlen', 0)}")
        out.append(InterfaceInfo(str(item["ifname"]), int(item.get("ifindex", 0)),
                                 _state_of(set(item.get("flags") or ())), tuple(v4 + v6)))
    return sorted(out, key=lambda i: i.index)


SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
IFF_UP = 0x1


def interfaces_from_kernel(proc_inet6: str = "/proc/net/if_inet6") -> list[InterfaceInfo]:
    """Interfaces without ``ip``: names from ``if_nameindex``, state from /sys/class/net,
    the IPv4 address from the ``SIOCGIFADDR`` ioctl (the primary one only) and IPv6
    addresses from /proc/net/if_inet6. Needs no privileges."""
    import fcntl
    import ipaddress

    v6: dict[str, list[str]] = {}
    try:
        with open(proc_inet6) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 6:
                    addr = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
                    v6.setdefault(parts[5], []).append(f"{addr}/{int(parts[2], 16)}")
    except (OSError, ValueError):
        pass
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for index, name in socket.if_nameindex():
            addrs = []
            req = struct.pack("16s16x", name.encode()[:15])
            try:
                ip = socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
                mask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, req)[20:24]
                addrs.append(f"{ip}/{int.from_bytes(mask, 'big').bit_count()}")
            except OSError:
                pass  # no IPv4 address
            flags = set()
            try:
                with open(f"/sys/class/net/{name}/flags") as f:
                    if int(f.read().strip(), 16) & IFF_UP:
                        flags.add("UP")
                with open(f"/sys/class/net/{name}/carrier") as f:
                    if f.read().strip() == "1":
                        flags.add("LOWER_UP")
            except (OSError, ValueError):
                pass  # carrier is unreadable while the interface is down
            out.append(InterfaceInfo(name, index, _state_of(flags), tuple(addrs + sorted(v6.get(name, ())))))
    return out


def list_interfaces() -> list[InterfaceInfo]:
    """This host's interfaces with their addresses and state, in index order.

    Reads ``ip -j addr`` when iproute2 is installed (every address), else asks the kernel
    directly (:func:`interfaces_from_kernel`). Neither needs privileges.
    """
    import shutil
    import subprocess

    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if ip:
        try:
            done = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=3, check=False)
            if done.returncode == 0 and done.stdout.strip():
                return parse_ip_addr_json(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError, TypeError):
            pass  # an old ip without -j, or odd output: ask the kernel instead
    try:
        return interfaces_from_kernel()
    except OSError:
        return []


def _check_interface(name: str) -> int:
    """Return the ifindex of ``name`` or raise LiveError naming the interfaces there are."""
    if not name or "/" in name or name in (".", ".."):
        raise LiveError(f"no such interface: {name!r}")
    try:
        return socket.if_nametoindex(name)
    except OSError:
        try:
            names = sorted(n for _i, n in socket.if_nameindex())
        except OSError:
            names = []
        hint = f" (interfaces: {', '.join(names + ['any'])})" if names else ""
        raise LiveError(f"no such interface: {name!r}{hint}") from None


# -- capture filters -------------------------------------------------------------------------
class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


_libpcap: ctypes.CDLL | None = None
_libpcap_lock = threading.Lock()  # pcap_compile is not thread-safe in older libpcap


def _pcap_lib() -> ctypes.CDLL:
    global _libpcap
    if _libpcap is None:
        path = ctypes.util.find_library("pcap")
        if not path:
            raise LiveError("capture filters need libpcap (install the libpcap package)")
        lib = ctypes.CDLL(path)
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Prog), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Prog)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _libpcap = lib
    return _libpcap


def compile_filter(expr: str, linktype: int = LINKTYPE_ETHERNET, snaplen: int = SAVE_SNAPLEN) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression to classic BPF ``(code, jt, jf, k)`` instructions.

    Uses libpcap on a "dead" handle, so no privileges are needed.

    Raises:
        LiveError: the expression is not valid (libpcap's message, one line).
    """
    lib = _pcap_lib()
    dlt = DLT_RAW_LINUX if linktype == LINKTYPE_RAW else linktype
    with _libpcap_lock:
        handle = lib.pcap_open_dead(dlt, snaplen)
        if not handle:
            raise LiveError("libpcap could not compile the filter (out of memory?)")
        prog = _Prog()
        try:
            if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode("utf-8", "replace"), 1, 0xFFFFFFFF) != 0:
                msg = (lib.pcap_geterr(handle) or b"invalid filter").decode("utf-8", "replace")
                raise LiveError(f"bad capture filter {expr!r}: {' '.join(msg.split())}")
            insns = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                     for i in range(prog.bf_len)]
            lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)
    return insns


def _accept_all(snaplen: int) -> list[tuple[int, int, int, int]]:
    return [(BPF_RET_K, 0, 0, snaplen)]


def drop_loopback_outgoing(prog: list[tuple[int, int, int, int]], lo_ifindex: int | None = None) -> list[tuple[int, int, int, int]]:
    """Prefix ``prog`` with instructions that drop the outgoing copy of loopback packets.

    With ``lo_ifindex`` (capturing on ``any``) only packets of that interface are checked;
    without it (capturing on ``lo`` itself) every outgoing packet is dropped. The kernel runs
    the filter before copying, so the duplicate costs nothing. Jumps in ``prog`` are relative,
    so prefixing keeps them valid.
    """
    pkttype = [
        (BPF_LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        (BPF_JEQ_K, 0, 1, PACKET_OUTGOING),
        (BPF_RET_K, 0, 0, 0),
    ]
    if lo_ifindex is None:
        return pkttype + prog
    return [
        (BPF_LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_IFINDEX),
        (BPF_JEQ_K, 0, 3, lo_ifindex),  # not loopback: straight to prog
        *pkttype,
        *prog,
    ]


def _attach(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    arr = (_Insn * len(prog))(*[_Insn(*i) for i in prog])
    fprog = struct.pack("HL", len(prog), ctypes.addressof(arr))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


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
        except FileExistsError:
            raise LiveError(f"{path}: file exists (use --force to overwrite it)") from None
        except IsADirectoryError:
            raise LiveError(f"{path}: is a directory") from None
        except OSError as e:
            raise LiveError(f"{path}: {e.strerror}") from None
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
            self.error = f"{self.path}: {e.strerror} (stopped saving)"
            self.close()
            return
        self.count += len(spans)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f is not None:
            try:
                self._f.close()
            except OSError as e:
                self.error = self.error or f"{self.path}: {e.strerror}"
            self._f = None


# -- the source ------------------------------------------------------------------------------
class LiveSource:
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
    """

    live = True

    def __init__(
        self,
        interface: str | None = None,
        bpf: str | None = None,
        write: str | None = None,
        force: bool = False,
        snaplen: int | None = None,
        buffer_mb: int = DEFAULT_BUFFER_MB,
    ) -> None:
        if not sys.platform.startswith("linux"):
            raise LiveError("live capture is only supported on Linux; use `tcpview replay FILE`")
        self.interface = interface or default_interface()
        self.bpf = bpf or None
        self.snaplen = snaplen or (SAVE_SNAPLEN if write else DEFAULT_SNAPLEN)
        if not 64 <= self.snaplen <= SAVE_SNAPLEN:
            raise LiveError(f"snap length must be between 64 and {SAVE_SNAPLEN}")
        self.name = f"live {self.interface}" + (f" ({self.bpf})" if self.bpf else "")
        self.buffer_mb = buffer_mb
        self.captured = 0
        self.kernel_seen = 0
        self.kernel_drops = 0
        self.blocks = 0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reader: int | None = None  # thread running frames(), if any
        self._reader_done = threading.Event()
        self._reader_done.set()
        self._sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        self.sink: PcapSink | None = None
        self.timeline = None
        """The Timeline this capture feeds, if whoever feeds it says so (for ``skipped``)."""
        self._open(buffer_mb)
        if write:
            try:
                self.save_to(write, force)
            except LiveError:
                self.close()
                raise

    def save_to(self, path: str, force: bool = False) -> None:
        """Also save every frame captured from now on to the pcap file ``path``.

        Call before :meth:`frames` starts. Frames are cut at this source's snap length,
        fixed when the socket opened (pass ``snaplen`` or ``write`` to the constructor for
        whole frames).
        """
        if self.sink is not None:
            raise LiveError("already saving to " + self.sink.path)
        self.sink = PcapSink(path, self.linktype, self.snaplen, force)

    # -- setup -----------------------------------------------------------------------------
    def _open(self, buffer_mb: int) -> None:
        iface = self.interface
        any_iface = iface == "any"
        if any_iface:
            arphrd = None
        else:
            _check_interface(iface)
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
            raise LiveError(NEED_PRIVILEGES) from None
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                raise LiveError(NEED_PRIVILEGES) from None
            raise LiveError(f"cannot open a packet socket: {e.strerror}") from None
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
            raise LiveError(f"cannot capture on {iface}: {e.strerror}") from None
        self._block = 0
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    # -- Source protocol ---------------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[tuple | None]:
        """Yield records ``(frame, ts, linktype, buf, off, caplen, origlen)`` until ``stop``.

        Yields ``None`` whenever no packet arrived for a while (about 0.1 s), so the consumer
        can flush its batch and notice ``stop``.
        """
        mm = self._mm
        if mm is None:
            return
        lt = self.linktype
        nblocks = self._nblocks
        unpack_block = _BLOCK.unpack_from
        unpack_pkt = _PKT.unpack_from
        status_of = _STATUS.unpack_from
        sink = self.sink
        poll = self._poll.poll
        frame = self.captured
        closing = self._closing
        self._reader = threading.get_ident()
        self._reader_done.clear()
        try:
            while not stop.is_set() and not closing.is_set():
                boff = self._block * BLOCK_SIZE
                if not status_of(mm, boff + 8)[0] & TP_STATUS_USER:
                    yield None
                    if stop.is_set() or closing.is_set():
                        break
                    for _fd, ev in poll(100):
                        if ev & select.POLLERR:
                            self._socket_error()
                    continue
                _v, _p, _st, npkts, first, blen = unpack_block(mm, boff)
                data = mm[boff : boff + blen]  # one copy; the records point into it
                _STATUS.pack_into(mm, boff + 8, TP_STATUS_KERNEL)  # hand the block back now
                self._block = (self._block + 1) % nblocks
                self.blocks += 1
                spans = [] if sink is not None else None
                p = first
                for _ in range(npkts):
                    nxt, sec, nsec, snap, wlen, _s, mac, _net = unpack_pkt(data, p)
                    frame += 1
                    ts = sec + nsec * 1e-9
                    if spans is not None:
                        spans.append((sec, nsec, p + mac, snap, wlen))
                    yield (frame, ts, lt, data, p + mac, snap, wlen)
                    p += nxt
                self.captured = frame
                if spans:
                    sink.write_block(data, spans)  # type: ignore[union-attr]
                    if sink.error:  # type: ignore[union-attr]
                        self.error = sink.error  # type: ignore[union-attr]
                        sink = None
        finally:
            self.captured = frame
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
            self.error = f"capture on {self.interface}: {os.strerror(err)}"

    def progress(self) -> float | None:
        """Always None: a live capture has no end."""
        return None

    def now(self) -> float:
        """Capture time now: packets carry wall-clock times, so idle timers (TIME_WAIT
        expiry) can advance with the clock while nothing arrives."""
        return time.time()

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
        if self.sink is not None:
            out["saved"] = self.sink.count
        tl = self.timeline
        if tl is not None:
            out["skipped"] = sum(tl.skipped.values())
        return out

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


class CaptureThread:
    """Runs a source's :meth:`frames` on a background thread, feeding a Tracker in batches.

    The headless form of what the UI's worker does (``tcpview summary -i``, tests). Only this
    thread touches the tracker while it runs; read the timeline after :meth:`stop`.

    Args:
        source: any Source (normally a LiveSource).
        tracker: the tracker to feed.
        batch: records per ``feed_records`` call at most.
    """

    def __init__(self, source, tracker, batch: int = 4096) -> None:  # type: ignore[no-untyped-def]
        self.source = source
        self.tracker = tracker
        self.batch = batch
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.records = 0
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcpview-capture", daemon=True)

    def start(self) -> CaptureThread:
        """Start capturing; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        if hasattr(self.source, "timeline") and self.source.timeline is None:
            self.source.timeline = self.tracker.tl
        feed = self.tracker.feed_records
        pending: list = []
        try:
            for rec in self.source.frames(self.stop_event):
                if rec is None:
                    if pending:
                        feed(pending)
                        self.records += len(pending)
                        pending = []
                    self.tracker.advance(time.time())
                    self._idle.set()
                    continue
                self._idle.clear()
                pending.append(rec)
                if len(pending) >= self.batch:
                    feed(pending)
                    self.records += len(pending)
                    pending = []
            if pending:
                feed(pending)
                self.records += len(pending)
        except BaseException as e:  # reported by stop(); never lost silently
            self.error = e

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the source has been idle (everything delivered so far is fed)."""
        self._idle.clear()
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop capturing and wait for the thread; re-raises an error it hit."""
        self.stop_event.set()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
