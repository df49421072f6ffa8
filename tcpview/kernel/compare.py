"""The kernel's states beside the states a live capture inferred.

For each captured connection whose endpoints are on this host, :func:`compare` looks up the
kernel's sockets in a :class:`~tcpview.kernel.snapshot.KernelSnapshot` taken at about the
same time and flags the connections where the two disagree (packets were missed, or the
capture filter hid some). The sockets found are kept, so the views can also say which process
holds each end and what its tcp_info says (:func:`conn_sockets` for any few connections).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..engine.core.tcp import TcpState
from ..textutil import ip_text
from .owners import Process
from .procnet import Addr, KernelSocket, is_local, norm_addr
from .snapshot import KernelSnapshot

Ends = tuple[KernelSocket | None, KernelSocket | None]
"""The kernel's socket of a connection's client and server end (None: not on this host, or no
socket there now)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The kernel's view of one captured connection."""

    conn: int
    sniffed: tuple[int, int]
    """(client, server) TcpState values the tracker inferred."""
    kernel: tuple[int | None, int | None]
    """(client, server) kernel states; None for an endpoint that is not on this host."""
    disagree: bool
    """True if an endpoint on this host has a kernel state different from the inferred one."""
    sockets: Ends = (None, None)
    """The kernel's socket of each end (its process, tcp_info)."""


def kernel_state(snap: KernelSnapshot, local: Addr, remote: Addr, sniffed: int | None = None) -> int | None:
    """The kernel's state of the endpoint ``local`` talking to ``remote``.

    None if ``local`` is not an address of this host. A local endpoint without a socket is
    CLOSED, except that a server the capture shows in LISTEN (a SYN seen, no SYN+ACK yet) is
    LISTEN if the kernel has a listening socket on that port.
    """
    if not is_local(local[0], snap.local):
        return None
    by_pair, listen, listen_any = snap.index
    s = by_pair.get((norm_addr(local), norm_addr(remote)))
    if s is not None:
        return s.state
    if sniffed == TcpState.LISTEN and (norm_addr(local) in listen or local[1] in listen_any):
        return int(TcpState.LISTEN)
    return int(TcpState.CLOSED)


def endpoint_socket(snap: KernelSnapshot, local: Addr, remote: Addr) -> KernelSocket | None:
    """The socket of the endpoint ``local`` talking to ``remote`` (None: none on this host)."""
    return snap.index[0].get((norm_addr(local), norm_addr(remote)))


def conn_sockets(tl, snap: KernelSnapshot, cids: Iterable[int]) -> dict[int, Ends]:
    """The kernel's sockets of a few connections of a timeline (see :data:`Ends`), by id; a
    connection neither of whose ends is on this host, or that has left the timeline, is left
    out."""
    out: dict[int, Ends] = {}
    for cid in cids:
        c = tl.conns.get(cid)
        if c is None:
            continue
        ca = (ip_text(c.family, c.cip), c.cport)
        sa = (ip_text(c.family, c.sip), c.sport)
        if not (is_local(ca[0], snap.local) or is_local(sa[0], snap.local)):
            continue
        out[cid] = (endpoint_socket(snap, ca, sa), endpoint_socket(snap, sa, ca))
    return out


def compare(tl, snap: KernelSnapshot, t: float | None = None) -> dict[int, Comparison]:
    """For each connection of a timeline, the kernel's states beside the sniffed ones.

    Args:
        tl: a :class:`tcpview.engine.timeline.timeline.Timeline` (normally from a live capture on this host).
        snap: a kernel snapshot taken at about the same time.
        t: the cursor time of the sniffed states (None: now).

    Returns:
        conn id -> :class:`Comparison`, for every connection that exists at ``t``.
    """
    out: dict[int, Comparison] = {}
    states = tl.states_at(t)  # every connection's, in one pass
    for c in tl.conns[: tl.conn_count_at(t)]:
        ca = (ip_text(c.family, c.cip), c.cport)
        sa = (ip_text(c.family, c.sip), c.sport)
        sniffed = (int(states[c.row][0]), int(states[c.row][1]))
        ks = (kernel_state(snap, ca, sa, sniffed[0]), kernel_state(snap, sa, ca, sniffed[1]))
        disagree = any(k is not None and k != s for k, s in zip(ks, sniffed, strict=True))
        socks = (endpoint_socket(snap, ca, sa), endpoint_socket(snap, sa, ca)) if any(
            k is not None for k in ks) else (None, None)
        out[c.id] = Comparison(c.id, sniffed, ks, disagree, socks)
    return out


def local_ends(tl, snap: KernelSnapshot, want: Iterable[int], remote: set[int]) -> dict[int, Ends]:
    """The kernel's sockets of connections ``want`` that have an end on this host (see
    :func:`conn_sockets`), by id; the others still in the timeline join ``remote``, never to be
    looked up again (their ends are elsewhere for good)."""
    want = list(want)
    found = conn_sockets(tl, snap, want)
    remote.update(cid for cid in want if cid not in found and tl.conns.get(cid) is not None)
    return found


class ProcessWatch:
    """The processes holding a live capture's connections on this host, looked up in each
    kernel table read and remembered: a connection keeps the process found while its socket
    was there after the socket has gone (TIME_WAIT, closed).

    Only the newest ``window`` connections are looked up on each read (a long capture's old
    connections keep what was found), and connections with no end on this host once.

    Args:
        window: how many of the newest connections each :meth:`update` looks up.
    """

    def __init__(self, window: int = 5000) -> None:
        self.window = window
        self.known: dict[int, tuple[Process | None, Process | None]] = {}
        """Connection id -> the process of its client and server end (None: not known)."""
        self._remote: set[int] = set()

    def update(self, tl, snap: KernelSnapshot) -> bool:
        """Look up the newest connections of timeline ``tl`` in ``snap``; True when a process
        was found that was not known."""
        done = self.known
        want = self.pending(tl)
        changed = False
        for cid, ends in local_ends(tl, snap, want, self._remote).items():
            old = done.get(cid, (None, None))
            new = tuple(o if o is not None else (s.process if s is not None else None)
                        for o, s in zip(old, ends, strict=True))
            if new != old:
                done[cid] = new  # type: ignore[assignment]
                changed = True
        return changed

    def pending(self, tl) -> list[int]:
        """The newest connections whose processes are still to be found (none: no need to
        read the table for them)."""
        top = tl.view().next_id
        done, remote = self.known, self._remote
        return [cid for cid in range(max(0, top - self.window), top)
                if cid not in remote and None in done.get(cid, (None, None))]

    def infos(self) -> dict[int, list[tuple[int | None, str | None, str]]]:
        """Connection id -> its processes as the filter's process terms match them."""
        return {cid: [p.as_tuple() for p in ends if p is not None] for cid, ends in self.known.items()}

    def texts(self) -> dict[int, str]:
        """Connection id -> the ``proc`` column's text (``curl 55/nginx 12``)."""
        return {cid: "/".join(dict.fromkeys(p.text() for p in ends if p is not None))
                for cid, ends in self.known.items()}

    def as_json(self, cid: int) -> tuple[dict | None, dict | None]:
        """The client's and server's ``"process"`` for the summary JSON (None: not known)."""
        ends = self.known.get(cid, (None, None))
        return tuple(p.as_json() if p is not None else None for p in ends)  # type: ignore[return-value]
