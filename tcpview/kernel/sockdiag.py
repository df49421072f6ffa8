"""The one thing ``/proc/net/tcp`` does not tell about a listening socket: its backlog (the most
connections that may wait to be accepted), which ``ss`` shows as a listener's Send-Q. It asks
the kernel as ``ss`` does, with a sock_diag netlink dump of the listening TCP sockets
(``include/uapi/linux/inet_diag.h``: an ``inet_diag_msg``'s ``idiag_wqueue`` is a listener's
``sk_max_ack_backlog``). No privileges are needed; where netlink is not at hand the answer is
empty and the table says it does not know.
"""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10  # include/net/tcp_states.h

_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQ = struct.Struct("=BBBxI48x")  # inet_diag_req_v2: family, protocol, ext, states, a zero socket id
_MSG = struct.Struct("=BBBB48xIIIII")  # inet_diag_msg: family, state, timer, retrans, id, expires, queues, uid, inode


def listen_backlogs() -> dict[int, int]:
    """Each listening TCP socket's backlog, by inode (IPv4 and IPv6; empty when netlink cannot
    be asked)."""
    out: dict[int, int] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            out.update(_dump(family))
        except OSError:
            continue
    return out


def _dump(family: int) -> dict[int, int]:
    req = _REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << TCP_LISTEN)
    head = _NLMSG.pack(_NLMSG.size + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    out: dict[int, int] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
        s.settimeout(2.0)
        s.sendto(head + req, (0, 0))
        while True:
            data = s.recv(65536)
            at = 0
            while at + _NLMSG.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, at)
                if length < _NLMSG.size or kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    raise OSError("sock_diag refused the request")
                if length >= _NLMSG.size + _MSG.size:
                    _fam, state, _timer, _retrans, _exp, _rq, wq, _uid, inode = _MSG.unpack_from(data, at + _NLMSG.size)
                    if state == TCP_LISTEN:
                        out[inode] = wq
                at += (length + 3) & ~3
            if not data:
                return out
