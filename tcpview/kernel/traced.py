"""This host's TCP sockets from the kernel's tracepoints alone (``--kernel`` without ``-i``).

No packet capture and no /proc: :func:`traced_snapshot` makes a
:class:`~tcpview.kernel.snapshot.KernelSnapshot` from the socket lives of a
:class:`~tcpview.engine.timeline.kernel_log.KernelLog` (each socket's state as the kernel
set it, a TIME_WAIT ending ``msl2`` after it began, retransmissions counted, the last cwnd
and ssthresh of tcp_probe), so the sockets view's table, counters and filters, and
``summary``'s output, work on it unchanged. :class:`TracedTable` is the sockets view's
table refreshed that way.

A socket that existed before the trace began shows once it does something (its first
event); a listener, when it is closed or accepts a connection.
"""

from __future__ import annotations

import time

from ..engine.core.tcp import TcpState
from ..engine.timeline.kernel_log import KernelLog
from .history import KernelTable
from .procnet import KernelSocket, ephemeral_range, local_addresses
from .snapshot import KernelSnapshot


def traced_snapshot(log: KernelLog, t: float | None = None, local: frozenset[str] | None = None) -> KernelSnapshot:
    """The sockets of ``log`` that are open at ``t`` (now when None), as a kernel snapshot."""
    t = time.time() if t is None else t
    sockets = []
    probes = log.probe_rows
    for life in log.snapshot():
        if life.key is None:
            continue
        st = life.state_at(t, log.msl2)
        if st is None or st == TcpState.CLOSED:
            continue
        lip, lport, rip, rport = life.key
        cwnd = ssthresh = None
        if life.probes:
            last = probes[life.probes[-1]]
            cwnd = int(last["cwnd"])
            ssthresh = int(last["ssthresh"]) if last["ssthresh"] < 0x7FFFFFFF else None
        sockets.append(KernelSocket(6 if ":" in lip else 4, (lip, lport), (rip, rport), int(st),
                                    retransmits=life.retrans, cwnd=cwnd, ssthresh=ssthresh))
    return KernelSnapshot(t, sockets, local if local is not None else local_addresses(), ephemeral_range())


class TracedTable(KernelTable):
    """The sockets view's table, read from the kernel's traced events instead of /proc.

    Args:
        log: the events (fed by a :class:`~tcpview.engine.timeline.kernel_feed.KernelFeed`).
        history: refreshes of counter history kept.
    """

    name = "kernel events"
    title = "kernel TCP events (tracepoints)"
    """What the sockets view's title bar says it shows."""

    def __init__(self, log: KernelLog, history: int = 3600) -> None:
        super().__init__(history=history, files=())
        self.log = log
        self._local = local_addresses()

    def read(self) -> KernelSnapshot:
        """The sockets open now, as the tracepoints said."""
        return traced_snapshot(self.log, local=self._local)
