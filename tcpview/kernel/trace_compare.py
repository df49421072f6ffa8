"""The kernel's traced states (``--kernel``) beside the states a live capture inferred.

The same :class:`~tcpview.kernel.compare.Comparison` as the socket table's comparison, from
the kernel's own state changes (:class:`~tcpview.engine.timeline.kernel_log.KernelLog`)
instead of a snapshot: so it holds at any cursor time, not only now. An endpoint with no
socket life in the log is not on this host (None).
"""

from __future__ import annotations

import time

from ..engine.core.tcp import TcpState
from ..engine.timeline.kernel_log import KernelLog
from .compare import Comparison


def compare_trace(tl, log: KernelLog, t: float | None = None) -> dict[int, Comparison]:
    """For each connection of ``tl`` at ``t`` (now when None), the kernel's traced states
    beside the sniffed ones."""
    out: dict[int, Comparison] = {}
    states = tl.states_at(t)
    for c in tl.conns[: tl.conn_count_at(t)]:
        client, server = (c.client_ip_text(), c.cport), (c.server_ip_text(), c.sport)
        sniffed = (int(states[c.row][0]), int(states[c.row][1]))
        lives = log.lives_for(client, server, c.first_ts)
        ks: list[int | None] = []
        for life in lives:
            if life is None:
                ks.append(None)
                continue
            st = life.state_at(t if t is not None else time.time(), log.msl2)
            ks.append(int(TcpState.CLOSED) if st is None else st)
        disagree = any(k is not None and k != s for k, s in zip(ks, sniffed, strict=True))
        out[c.id] = Comparison(c.id, sniffed, (ks[0], ks[1]), disagree)
    return out
