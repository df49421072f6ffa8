"""The sender's graphs from the kernel's own figures (``--kernel``): ``cwnd`` and ``srtt``.

``tcp:tcp_probe`` fires for each ACK a socket takes in, with the sender's congestion window,
slow-start threshold and smoothed RTT as the kernel holds them then. For each endpoint of a
connection that lives on this host (its socket life in the
:class:`~tcpview.engine.timeline.kernel_log.KernelLog`):

- ``cwnd``: the congestion window and ssthresh (segments) at each ACK, and the moments its
  congestion state changed (``tcp:tcp_cong_state_set``: Open, Disorder, CWR, Recovery, Loss)
  as marks at the window they happened at;
- ``srtt``: the kernel's smoothed RTT (ms) at each ACK.

x is seconds from the connection's first packet, as in the packet graphs
(:mod:`tcpview.engine.analysis.graphs`), so the two line up under the same cursor.
"""

from __future__ import annotations

import numpy as np

from ..timeline.kernel_log import CONG_NAMES, KernelLog, SockLife
from .graphs import Graph, Series

KERNEL_KINDS = ("cwnd", "srtt")
"""The graph kinds the kernel's events give."""

NO_SSTHRESH = 0x7FFFFFFF
"""ssthresh before the first loss (``TCP_INFINITE_SSTHRESH``): not drawn."""


def _probes(log: KernelLog, life: SockLife) -> np.ndarray:
    rows = np.asarray(life.probes, dtype=np.int64)
    rows = rows[rows < log.nprobes]
    return log.probe_rows[rows]


def build_kernel(tl, cid: int, kind: str, log: KernelLog) -> Graph | None:
    """Graph ``kind`` (``cwnd`` or ``srtt``) of connection ``cid`` from the kernel's events;
    None when neither of its endpoints is on this host (or the kernel said nothing of it).

    Raises:
        ValueError: ``kind`` is not one of :data:`KERNEL_KINDS`.
    """
    if kind not in KERNEL_KINDS:
        raise ValueError(f"unknown kernel graph kind {kind!r} ({', '.join(KERNEL_KINDS)})")
    c = tl.conns.get(cid)
    if c is None:
        return None
    lives = log.lives_for((c.client_ip_text(), c.cport), (c.server_ip_text(), c.sport), c.first_ts)
    t0 = c.first_ts
    name = f"#{c.id} {c.client_text()} → {c.server_text()}"
    if kind == "cwnd":
        g = Graph(kind, f"{name}  congestion window at each ACK (the kernel's)", "s", "segments")
    else:
        g = Graph(kind, f"{name}  smoothed RTT at each ACK (the kernel's)", "s", "ms")
    for side, life in zip(("client", "server"), lives, strict=True):
        if life is None or not life.probes:
            continue
        p = _probes(log, life)
        x = p["ts"].astype(np.float64) - t0
        if kind == "srtt":
            g.series.append(Series(f"{side} srtt", x, p["srtt"].astype(np.float64) / 1000.0))
            continue
        cwnd = p["cwnd"].astype(np.float64)
        g.series.append(Series(f"{side} cwnd", x, cwnd))
        ss = p["ssthresh"].astype(np.float64)
        known = p["ssthresh"] < NO_SSTHRESH
        if known.any():
            g.series.append(Series(f"{side} ssthresh", x[known], ss[known]))
        if life.cong:
            cx = np.array([ts for ts, _st in life.cong], dtype=np.float64) - t0
            at = np.clip(np.searchsorted(x, cx, side="right") - 1, 0, len(x) - 1)
            g.series.append(Series(f"{side} congestion state", cx, cwnd[at]))
    return g if g.series else None


def cong_changes(life: SockLife) -> list[tuple[float, str]]:
    """A socket's congestion state changes: (time, name)."""
    return [(ts, CONG_NAMES[st] if 0 <= st < len(CONG_NAMES) else str(st)) for ts, st in life.cong]
