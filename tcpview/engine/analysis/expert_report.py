"""What ``tcpview expert`` reports: Wireshark's analysis flags counted per flag and per
connection, and the round-trip times (as ``tshark -q -z expert`` counts its expert items, with
the RTT figures tshark leaves to a graph).

Counts come from the segments' analysis bits in bulk; RTTs from each connection's ACKs
(:meth:`~tcpview.engine.timeline.conns.ConnView.numbers`), for the connections that have any.
"""

from __future__ import annotations

import numpy as np

from ..core import columns as col
from ..core.tcp import Analysis
from ..timeline.rowgroups import rows_by_conn
from ..timeline.timeline import Timeline
from .diagnosis import VERDICTS, verdicts_at

FLAG_NAMES = tuple(a.name.lower() for a in Analysis if a.name is not None)
FLAG_BITS = tuple(int(a) for a in Analysis)


def _rtt(samples: list[float]) -> dict | None:
    if not samples:
        return None
    a = np.asarray(samples)
    return {"samples": len(a), "min": float(a.min()), "avg": float(a.mean()), "max": float(a.max())}


def expert_report(tl: Timeline, rtt_samples: list | None = None) -> dict:
    """Counts per flag over the capture, each connection's that has a flag or an RTT: its
    flags, initial RTT, ACK RTTs, retransmissions and lost segments; the RTTs over all; and
    how many connections got each ``tcpview diagnose`` verdict.

    ``rtt_samples``: given a list, each connection with RTT samples appends ``(its id, its
    samples)`` to it (the figures over all, put together again from parts of the
    connections, need every sample in order: :mod:`tcpview.cluster`)."""
    keep = rtt_samples
    v = tl.view()
    n = v.n_seg
    bits = col.seg_analysis(v.segs.fl[:n].astype(np.int64))
    conn_of = v.segs.conn[:n].astype(np.int64)
    totals = {name: int(np.count_nonzero(bits & bit)) for name, bit in zip(FLAG_NAMES, FLAG_BITS, strict=True)}
    per_conn = np.zeros((v.n_conn, len(FLAG_BITS)), dtype=np.int64)
    for k, bit in enumerate(FLAG_BITS):
        hit = conn_of[(bits & bit) != 0]
        if len(hit):
            per_conn[:, k] = np.bincount(hit, minlength=v.n_conn)[: v.n_conn]
    everyone: list[float] = []
    conns = []
    irtts = v.initial_rtts(v.n_conn)
    real = v.seg_real_times()  # as each segment's ack_rtt takes them
    srows, sb = rows_by_conn(conn_of, v.n_conn)
    trows, tb = rows_by_conn(v.trans.conn[: v.n_trans], v.n_conn)
    for row in range(v.n_conn):
        c = tl.conns[int(v.conns.cid[row])]
        c.use_rows(srows[sb[row]:sb[row + 1]], trows[tb[row]:tb[row + 1]])
        acked, _bif = c.numbers()
        idx = np.flatnonzero(acked >= 0)
        ts = real[c.rows]
        rtts = ts[idx] - ts[acked[idx]]
        samples = rtts[rtts != 0].tolist()  # (a zero is no sample: ConnView.ack_rtt's None)
        everyone += samples
        if samples and keep is not None:
            keep.append((c.id, np.asarray(samples, dtype=np.float64)))
        irtt = float(irtts[row])
        flags = {name: int(k) for name, k in zip(FLAG_NAMES, per_conn[row].tolist(), strict=True) if k}
        if not flags and not samples:
            continue
        conns.append({
            "id": c.id, "client": c.client_text(), "server": c.server_text(), "flags": flags,
            "initial_rtt": irtt if irtt > 0 else None, "ack_rtt": _rtt(samples),
            "retransmissions": flags.get("retransmission", 0), "lost_segments": flags.get("lost_segment", 0),
        })
    codes = verdicts_at(tl)
    verdicts = dict(zip(VERDICTS, np.bincount(codes, minlength=len(VERDICTS)).tolist(), strict=True))
    return {"flags": totals, "ack_rtt": _rtt(everyone), "connections": conns, "verdicts": verdicts}
