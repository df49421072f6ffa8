"""Packet socket internals for live capture: TPACKET_V3 ring constants, errors and BPF filters."""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading
from collections.abc import Callable

from ...errors import PrivilegeError, UserError, needs_root
from ..linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW

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

WIRESHARK_GROUP = "wireshark"
"""The group Debian's wireshark-common lets run dumpcap with its capture capabilities."""

INSTEAD = "`tcpview sockets` (this host's TCP sockets) or `tcpview demo`"
"""What shows TCP without any privileges."""


def join_group(group: str = WIRESHARK_GROUP) -> str:
    """How to become one of those who may run dumpcap, Debian's way (the postinst sets dumpcap's
    group, mode 0750 and capabilities when the question is answered yes)."""
    return (f"sudo dpkg-reconfigure wireshark-common (answer yes), then sudo usermod -aG {group} $USER "
            "and log in again")


def no_capture_privileges(why: str = "", grant: str = "") -> str:
    """The one line for a capture that this process may not make, neither itself nor through
    dumpcap: sudo, the ``wireshark`` group (by default), or the views that need nothing."""
    grant = grant or f"join the {WIRESHARK_GROUP} group, whose dumpcap captures for tcpview: {join_group()}"
    return needs_root("live capture", grant=grant, instead=INSTEAD, why=why)


class LiveError(UserError):
    """Live capture cannot start; the message is one line for the user."""


class CapturePrivilegeError(LiveError, PrivilegeError):
    """Neither this process (root or CAP_NET_RAW) nor dumpcap may capture; the line says how
    to get the privilege (:func:`no_capture_privileges`)."""


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
        lib.bpf_filter.restype = ctypes.c_uint
        lib.bpf_filter.argtypes = [ctypes.POINTER(_Insn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
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


def offline_filter(insns: list[tuple[int, int, int, int]]) -> Callable[[bytes], bool]:
    """``insns`` (:func:`compile_filter`'s) run on frames in this process, by libpcap's own
    interpreter (the code the kernel runs on a packet): whether the filter keeps a frame."""
    lib = _pcap_lib()
    prog = (_Insn * len(insns))(*[_Insn(*i) for i in insns])
    run = lib.bpf_filter

    def keeps(frame: bytes) -> bool:
        return bool(run(prog, frame, len(frame), len(frame)))

    return keeps


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
