"""Several hosts' live captures over ssh, merged by time into one source (``live --remote``).

Files are merged by their time stamps alone (:class:`~tcpview.sources.merge.MergedSource`):
each file's next frames are at hand. A live host that is quiet sends nothing, so a merge that
waited for every host's next frame would stall behind it. A **watermark** says how far each
host is known to be: its latest time stamp, or, when it has nothing pending and nothing came
from it for :data:`GRACE` seconds, the local clock minus :data:`GRACE`; a host that ended does
not count. Every frame up to the earliest watermark goes out, in time order (ties in the order
the hosts were given), by the step files are merged with
(:class:`~tcpview.sources.merge.MergedSource`'s). So a quiet host holds the others back by
:data:`GRACE` at most, and the hosts' clocks are taken to agree to better than that (NTP).

Each frame keeps its host as its capture (:class:`~tcpview.sources.merge.CaptureMap`, with
``streams``: its bytes are kept in memory, not read again), so the detail pane and JSON say
which host. Each host is read by a thread of its own (:meth:`RemoteHost.read`); one that
drops out is told (:attr:`RemoteCapture.error`, :meth:`RemoteCapture.hosts`) and the others
go on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from ..batch import FrameBatch
from ..frames import FrameStore
from ..merge import CaptureMap, MergedSource
from .remote import BUFFER_MB, RemoteHost, RemoteSpec, open_hosts

GRACE = 0.25
"""Seconds a quiet host may hold the others back; its watermark is the local clock minus this."""
POLL = 0.1
"""The longest the merge waits for a host's batch before it looks at the clock again."""


class _Feed:
    """One host's batches waiting to be merged (guarded by the merge's lock)."""

    def __init__(self) -> None:
        self.inbox: list[FrameBatch] = []  # filled by the host's thread
        self.heads: deque[list] = deque()  # [batch, ts, keys, position], the merge's own
        self.latest = -math.inf  # the latest time stamp seen (the keys never go below it)
        self.heard = time.monotonic()  # when it last delivered (or started)
        self.ended = False


class RemoteCapture(MergedSource):
    """Capture on several hosts over ssh at once, merged by time (see the module's docstring);
    a :class:`~tcpview.sources.base.Source` with the members the live viewer and
    ``summary --remote`` read (``interface``, ``method``, ``bpf``, ``sink``, :meth:`status`,
    :meth:`close`).

    Args:
        specs: the hosts (:func:`~tcpview.sources.live.remote.parse_remote`).
        iface: the interface on a host whose spec names none (None: tcpdump's default).
        bpf: the capture filter, the same on every host.
        snaplen: bytes kept per packet.
        options: ssh ``-o`` options, for every host.
        tcpdump: the command that runs tcpdump on the hosts.
        buffer_mb: tcpdump's kernel buffer on each host (``-B``), MiB.

    Raises:
        LiveError: a host did not start capturing (see :func:`~tcpview.sources.live.remote.open_hosts`).
    """

    live = True
    method = "ssh"
    """How this source captures, for the status line and the summary."""

    def __init__(self, specs: Sequence[RemoteSpec], iface: str | None = None, bpf: str | None = None,
                 snaplen: int = 512, options: Sequence[str] = (), tcpdump: Sequence[str] = ("tcpdump",),
                 buffer_mb: int = BUFFER_MB) -> None:
        self.bpf = bpf or None
        self.snaplen = snaplen
        self.sink = None
        self.timeline = None
        self.error: str | None = None
        self._hosts: list[RemoteHost] = open_hosts(specs, iface, self.bpf, snaplen, options, tcpdump,
                                                          buffer_mb=buffer_mb)
        labels = [h.label for h in self._hosts]
        super().__init__(labels, sources=self._hosts)  # its merging step, the hosts' streams as sources
        self.captures = CaptureMap(labels, self.offsets, streams=True)
        self.linktype = self._hosts[0].linktype
        self.interface = labels[0] if len(labels) == 1 else f"{len(labels)} hosts"
        """What is captured, for the status line: the host, or how many."""
        self.name = "live " + labels[0] + (f" +{len(labels) - 1}" if len(labels) > 1 else "") + \
            (f" ({self.bpf})" if self.bpf else "")
        self.horizon = -math.inf
        """The latest time stamp every frame up to which has gone out."""
        self._feeds = [_Feed() for _ in self._hosts]
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the hosts' threads ------------------------------------------------------------------
    def _follow(self, i: int, stop: threading.Event) -> None:
        """Host i's thread: its batches into its feed's inbox."""
        host, feed = self._hosts[i], self._feeds[i]

        def take(batch: FrameBatch | None) -> None:
            if batch is None or not len(batch):
                return
            with self._cond:
                feed.inbox.append(batch)
                feed.heard = time.monotonic()
                self._cond.notify_all()

        try:
            host.read(lambda: stop.is_set() or self._closing.is_set(), take)
        finally:
            with self._cond:
                feed.ended = True
                if host.problem:
                    self._tell(host.problem)
                self._cond.notify_all()

    def _tell(self, problem: str) -> None:
        """Keep a host's end as the source's error: the others go on, and it says so."""
        going = sum(1 for h in self._hosts if h.state == "capturing")
        if len(self._hosts) > 1 and going:
            problem = f"{problem} (dropped out; {going} of {len(self._hosts)} hosts capturing)"
        self.error = problem

    # -- the merge ---------------------------------------------------------------------------
    # (None while idle, as every live source yields, where a merge of files never waits)
    def batches(self, stop: threading.Event) -> Iterator[FrameBatch | None]:  # type: ignore[override]
        """The hosts' frames merged, a batch at a time as they may go out; ``None`` while
        nothing may. Ends when ``stop`` is set, the source is closed, or every host ended."""
        if self._threads:
            raise RuntimeError("a remote capture is read once")
        self._threads = [threading.Thread(target=self._follow, args=(i, stop), name=f"tcpview-remote-{i}",
                                          daemon=True) for i in range(len(self._hosts))]
        for t in self._threads:
            t.start()
        while not (stop.is_set() or self._closing.is_set()):
            with self._cond:
                if not any(f.inbox for f in self._feeds) and not all(f.ended for f in self._feeds):
                    self._cond.wait(POLL)
                for i, f in enumerate(self._feeds):
                    for b in f.inbox:
                        self._queue(i, f, b)
                    f.inbox = []
                done = all(f.ended and not f.heads for f in self._feeds)
                horizon = self._watermark()
            out = self._release(horizon)
            for batch in out:
                yield batch
            if not out:
                yield None
            if done:
                return

    def _queue(self, i: int, feed: _Feed, batch: FrameBatch) -> None:
        """A host's batch as a head to merge: its keys never go below its latest time stamp."""
        ts = batch.frames.ts.astype(np.float64) + self.offsets[i]
        keys = np.maximum.accumulate(np.maximum(ts, feed.latest))
        feed.latest = float(keys[-1])
        feed.heads.append([batch, ts, keys, 0])

    def _watermark(self) -> float:
        """How far every host still counting is known to be (see the module's docstring);
        +inf when none counts (every frame may go out)."""
        now, wall = time.monotonic(), time.time()
        marks = []
        for f in self._feeds:
            if f.ended:
                continue
            mark = f.latest
            if not f.heads and now - f.heard >= GRACE:
                mark = max(mark, wall - GRACE)
            marks.append(mark)
        return min(marks) if marks else math.inf

    def _release(self, horizon: float) -> list[FrameBatch]:
        """Every held frame up to ``horizon``, in order."""
        self.horizon = max(self.horizon, horizon)
        out: list[FrameBatch] = []
        while True:
            heads = [f.heads[0] if f.heads else None for f in self._feeds]
            live = [i for i, h in enumerate(heads) if h is not None]
            if not live:
                break
            out.extend(b for b in self._step(heads, live, self.horizon) if len(b))
            used = [i for i in live if heads[i] is None]
            for i in used:
                self._feeds[i].heads.popleft()
            if not used:
                break
        return out

    def frames(self, stop: threading.Event) -> Iterator[tuple | None]:
        """Records ``(frame, ts, linktype, buf, off, caplen, origlen)``; ``None`` while idle."""
        for batch in self.batches(stop):
            if batch is None:
                yield None
            else:
                yield from batch.records()

    # -- what the viewer and the summary read ------------------------------------------------
    def frame_store(self) -> FrameStore:
        """The store of the frames' bytes for the detail pane: recent frames kept in memory
        (a stream cannot be read again)."""
        return FrameStore()

    def now(self) -> float:
        """Capture time now, for idle timers: the merge's horizon (no frame to come is older),
        or the local clock minus twice :data:`GRACE` before any went out."""
        return self.horizon if math.isfinite(self.horizon) else time.time() - 2 * GRACE

    def progress(self) -> float | None:
        """Always None: a live capture has no end."""
        return None

    def hosts(self) -> list[dict]:
        """Each host as ``{"host", "state", "captured", "dropped", "problem"}`` (``dropped``
        None until its tcpdump said)."""
        return [{"host": h.label, "state": h.state, "captured": h.captured, "dropped": h.drops,
                 "problem": h.problem} for h in self._hosts]

    def status(self) -> dict[str, int]:
        """``captured`` frames (all hosts), ``dropped`` (the sum the hosts' tcpdumps last said;
        absent until one said), ``skipped`` by the decoder once :attr:`timeline` is set."""
        out = {"captured": sum(h.captured for h in self._hosts)}
        said = [h.drops for h in self._hosts if h.drops is not None]
        if said:
            out["dropped"] = sum(said)
        tl = self.timeline
        if tl is not None:
            out["skipped"] = sum(tl.skipped.values())
        return out

    def close(self) -> None:
        """End every host's ssh (idempotent)."""
        self._closing.set()
        for h in self._hosts:
            h.terminate()
        for t in self._threads:  # off the pipes before they are closed
            t.join(2.0)
        for h in self._hosts:
            h.close()

    def __enter__(self) -> RemoteCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
