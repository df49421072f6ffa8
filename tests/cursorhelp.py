"""A capture whose notes, flags and initial RTT begin part-way, and the engine's own answer as
of a cursor: a fresh read of only the frames up to it (shared by the tests of the table's
columns as of the cursor, engine and Pilot)."""

from __future__ import annotations

import numpy as np
from helpers import Flow, track

from tcpview.engine.core import columns as col
from tcpview.engine.core.tcp import Analysis
from tcpview.engine.timeline.timeline import Timeline


def mixed() -> list:
    """Connections whose notes, flags and initial RTT begin part-way, interleaved in time."""
    frames: list = []
    at = iter(np.arange(1, 400) * 0.01 + 100.0)

    def flow(cport: int, **kw) -> Flow:  # type: ignore[no-untyped-def]
        return Flow(cport=cport, frames=frames, **kw)

    a, b, c, d, e = flow(40001), flow(40002, sport=81), flow(40003), flow(40004), flow(40005)
    f, g, h = flow(40006), flow(40007), flow(40008)
    a.c("S", at=next(at))
    b.c("S", at=next(at))
    a.s("SA", at=next(at))
    b.s("RA", at=next(at))  # refused
    a.c("A", at=next(at))  # the handshake's third segment: the initial RTT from here on
    c.c("S", at=next(at))
    c.s("SA", at=next(at))
    first = a.c("PA", b"hello", at=next(at))
    d.c("PA", b"mid-stream", at=next(at))  # partial: no SYN
    c.c("A", at=next(at))
    a.c("PA", b"hello", seq=1001, at=next(at))  # a retransmission
    e.s("SA", at=next(at))  # partial: a SYN+ACK whose SYN was not captured
    d.s("A", at=next(at))
    f.c("SF", at=next(at))  # an anomaly (SYN+FIN), then a normal handshake
    c.c("PA", b"x" * 20, at=next(at))
    e.c("A", at=next(at))
    f.c("S", at=next(at))
    a.s("A", at=next(at))
    g.c("R", at=next(at))  # a RST first: partial and reset
    f.s("SA", at=next(at))
    c.c("R", at=next(at))  # reset in the middle
    h.c("S", at=next(at))
    f.c("A", at=next(at))
    h.c("S", seq=1000, at=next(at))  # the SYN again: the initial RTT counts from this one
    a.c("PA", b"hello", seq=1001, at=next(at))  # retransmitted again
    h.s("SA", at=next(at))
    h.c("A", at=next(at))
    a.c("FA", at=next(at))
    a.s("FA", at=next(at))
    a.c("A", at=next(at))
    # the 4-tuple reused with another ISN once a is over: a new connection
    a2 = flow(40001, cisn=77000, sisn=88000)
    a2.c("S", at=next(at))
    a2.s("SA", at=next(at))
    a2.c("A", at=next(at))
    assert first and sorted(frames, key=lambda x: x[0]) == frames
    return frames


def fresh(frames: list) -> Timeline:
    """A timeline that read only ``frames``."""
    return track(frames).tl


def as_then(tl: Timeline) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray]:
    """Each connection's notes, initial RTT, retransmissions and analysis bits, read as the
    engine holds them after the last frame it read (its working fields: the flag word and the
    analysis rows) and counted over every segment it has."""
    v = tl.view()
    n = v.n_conn
    C = v.conns[:n]
    notes = []
    for fl, anom in zip(C.fl.tolist(), C.anom.tolist(), strict=True):
        said = ["partial"] if fl & col.F_PARTIAL else []
        said += ["refused"] if fl & col.F_REFUSED else ["reset"] if fl & col.F_RESET else []
        notes.append(said + (["anomaly"] if anom else []))
    segs = v.segs[: v.n_seg]
    conn = segs.conn.astype(np.int64)
    bits = (segs.fl.astype(np.int64) >> col.SEG_ANA_SHIFT) & 0xFFFF
    retr = np.bincount(conn, weights=(bits & Analysis.RETRANSMISSION) != 0, minlength=n).astype(np.int64)
    ana = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(ana, conn, bits)
    return notes, v.initial_rtts(n), retr, ana
