"""The kernel table refreshed over time: stable connection ids and the counters' history.

What ``tcpview sockets`` shows: :class:`KernelTable` re-reads the table on each refresh
(:func:`~tcpview.kernel.snapshot.snapshot`), keeps each connection's id while it stays in
the table, and keeps the counters of every refresh so the counters bar can
draw sparklines over the session.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

from ..engine.core.tcp import STATE_NAMES, TcpState
from .procnet import PROC_FILES, Addr
from .snapshot import KernelConn, KernelSnapshot, snapshot


class KernelTable:
    """The kernel table refreshed on demand, with the counters' history for sparklines.

    Connection ids stay the same for as long as a connection is in the table, so a view can
    keep its selection across refreshes.

    For the counters bar it answers the same questions as a Timeline (``first_ts``,
    ``last_ts``, ``version``, :meth:`counters_at`), from the history of refreshes.

    Threads: :meth:`refresh` may run on a worker thread while the UI thread reads; it builds
    new lists and swaps them in, and the history is guarded by a lock.

    Args:
        history: how many refreshes of counter history to keep (an hour at one a second).
        files: the /proc files to read where netlink cannot be asked (other files: those
            are read instead of netlink; tests may point elsewhere).
    """

    name = "sockets"
    live = True

    def __init__(self, history: int = 3600, files: Iterable[str] = PROC_FILES) -> None:
        self.files = tuple(files)
        self.max_history = history
        self._lock = threading.Lock()
        self._hist_ts: list[float] = []
        self._hist: list[dict[str, int]] = []
        self.ids: dict[tuple[Addr, Addr], int] = {}
        self._next_id = 0
        self.snap: KernelSnapshot | None = None
        self.conns: list[tuple[int, KernelConn]] = []
        self.version = 0
        self.interval = 1.0

    def read(self) -> KernelSnapshot:
        """The table now (from /proc; a subclass may read it elsewhere)."""
        return snapshot(self.files)

    def refresh(self) -> KernelSnapshot:
        """Read the table now; update the connections (with stable ids) and the history."""
        snap = self.read()
        rows = []
        ids = self.ids
        for c in snap.connections():
            cid = ids.get(c.key)
            if cid is None:
                cid = ids[c.key] = self._next_id
                self._next_id += 1
            rows.append((cid, c))
        if len(ids) > 2 * len(rows) + 1024:
            # forget connections that have gone (a key coming back later gets a new id)
            live = {c.key for _i, c in rows}
            self.ids = {k: v for k, v in ids.items() if k in live}
        counts = snap.counters()
        with self._lock:
            self._hist_ts.append(snap.ts)
            self._hist.append(counts)
            if len(self._hist) > self.max_history:
                del self._hist_ts[0], self._hist[0]
        self.snap = snap
        self.conns = rows
        self.version += 1
        return snap

    # -- the Timeline-like questions the counters bar asks -----------------------------------
    @property
    def first_ts(self) -> float | None:
        with self._lock:
            return self._hist_ts[0] if self._hist_ts else None

    @property
    def last_ts(self) -> float | None:
        with self._lock:
            return self._hist_ts[-1] if self._hist_ts else None

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Sockets per state at the last refresh at or before ``t`` (now when None)."""
        with self._lock:
            if not self._hist:
                return {STATE_NAMES[i]: 0 for i in range(1, len(TcpState))}
            if t is None:
                return dict(self._hist[-1])
            k = bisect.bisect_right(self._hist_ts, t) - 1
            return dict(self._hist[max(k, 0)])

    def counter_series(self, state: int, buckets: int, t_end: float | None = None) -> list[int]:
        """Sockets in ``state`` (a state's number) at ``buckets`` even times up to ``t_end``
        (the last refresh when None), as :meth:`Timeline.counter_series` samples them."""
        t0, t1 = self.first_ts, self.last_ts if t_end is None else t_end
        if t0 is None or t1 is None or buckets <= 0:
            return []
        name = STATE_NAMES[state]
        times = [t1] * buckets if t1 <= t0 else [t0 + (t1 - t0) * (b + 1) / buckets for b in range(buckets)]
        with self._lock:
            hist_ts, hist = self._hist_ts, self._hist
            return [hist[max(bisect.bisect_right(hist_ts, t) - 1, 0)].get(name, 0) for t in times]

    def series(self, state: str, n: int | None = None) -> list[int]:
        """The count of ``state`` at each refresh (the last ``n``)."""
        with self._lock:
            vals = [counts.get(state, 0) for counts in self._hist]
        return vals[-n:] if n else vals

    def status(self) -> dict[str, int]:
        """Figures for a status line: sockets and connections in the table."""
        if self.snap is None:
            return {}
        return {"sockets": len(self.snap.sockets), "connections": len(self.conns)}
