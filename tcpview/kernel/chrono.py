"""The kernel's own split of a sender's time, kept for a live capture's connections.

Linux times each socket's sending (``tcp_info``'s chrono counters, RFC 4898's idea): how long
it was busy (data outstanding), and of that how long it was held back by the peer's receive
window (``rwnd_limited``) or by its own send buffer (``sndbuf_limited``). The counters live
only as long as the socket, so :class:`ChronoWatch` samples the kernel's table during a
capture and keeps, for each captured connection with an end on this host, the last counters
read of each of its ends here. ``tcpview diagnose -i`` and the live viewer show them beside
the breakdown inferred from the packets (:func:`tcpview.engine.analysis.kernel_check.beside_kernel`,
which gets them as plain dictionaries).
"""

from __future__ import annotations

from .compare import local_ends
from .procnet import KernelSocket
from .snapshot import KernelSnapshot

Counters = dict[str, float]
"""``{"busy_us", "rwnd_limited_us", "sndbuf_limited_us", "read_at"}``: one end's counters in
microseconds, and when they were read (seconds since the epoch)."""


def counters_of(s: KernelSocket | None, at: float) -> Counters | None:
    """The chrono counters of socket ``s`` read at ``at`` (None: no socket, no tcp_info, or a
    kernel too old to give them)."""
    info = s.info if s is not None else None
    if info is None:
        return None
    busy = info.get("busy_time")
    if busy is None:
        return None
    return {"busy_us": busy, "rwnd_limited_us": info.get("rwnd_limited") or 0,
            "sndbuf_limited_us": info.get("sndbuf_limited") or 0, "read_at": at}


class ChronoWatch:
    """The last chrono counters read of each end on this host of a live capture's connections.

    Each :meth:`update` looks up the newest ``window`` connections in a kernel table read;
    a connection whose sockets have gone keeps the counters last read. A connection with
    neither end on this host is looked up once.

    Args:
        window: how many of the newest connections each update looks up.
    """

    def __init__(self, window: int = 5000) -> None:
        self.window = window
        self.known: dict[int, tuple[Counters | None, Counters | None]] = {}
        """Connection id -> the (client, server) counters last read (None: that end is not
        here, or had no socket when read)."""
        self.live: set[int] = set()
        """Connections that had a socket with counters in the last table read."""
        self._remote: set[int] = set()

    def update(self, tl, snap: KernelSnapshot) -> None:
        """Read the counters of timeline ``tl``'s newest connections in ``snap``."""
        top = tl.view().next_id
        want = [cid for cid in range(max(0, top - self.window), top) if cid not in self._remote]
        live: set[int] = set()
        for cid, ends in local_ends(tl, snap, want, self._remote).items():
            old = self.known.get(cid, (None, None))
            new = tuple(counters_of(s, snap.ts) for s in ends)
            if any(n is not None for n in new):
                live.add(cid)
            self.known[cid] = (new[0] or old[0], new[1] or old[1])
        self.live = live

    def ends(self, cid: int) -> dict[str, Counters]:
        """Connection ``cid``'s counters by end (``"client"``, ``"server"``), only the ends
        read (empty: neither end is on this host, or none was read while it existed)."""
        got = self.known.get(cid, (None, None))
        return {name: c for name, c in zip(("client", "server"), got, strict=True) if c is not None}
