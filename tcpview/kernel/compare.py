"""The kernel's states beside the states a live capture inferred.

For each captured connection whose endpoints are on this host, :func:`compare` looks up the
kernel's sockets in a :class:`~tcpview.kernel.snapshot.KernelSnapshot` taken at about the
same time and flags the connections where the two disagree (packets were missed, or the
capture filter hid some).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.core.tcp import TcpState
from ..textutil import ip_text
from .procnet import Addr, is_local, norm_addr
from .snapshot import KernelSnapshot


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
        out[c.id] = Comparison(c.id, sniffed, ks, disagree)
    return out
