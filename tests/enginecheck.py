"""Helpers for the engine's consistency tests (test_engine_concurrency, test_engine_batches).

- traffic: :func:`varied_frames` (every kind of conversation the tracker knows, over many link
  types) and :func:`busy_frames` (a few hundred thousand frames, built fast by copying one
  scapy-built template with other client addresses);
- splitting frames into batches and feeding them by each of the tracker's entry points;
- answers recomputed from scratch over one published :class:`~tcpview.engine.timeline.view.View`
  with plain numpy (no engine kernel), to compare the engine's readers against;
- :func:`assert_same_timeline`, two timelines with identical tables and answers.

Frames are ``(ts, linktype, bytes)`` as :class:`helpers.Flow` keeps them, or
``(ts, linktype, bytes, origlen)`` for a frame cut short by the capture's snap length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from helpers import DLT_EN10MB, Flow, wrap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from tcpview.engine.core import columns as col
from tcpview.engine.core.tcp import NSTATES, STATE_NAMES, WHY_FW2_EXPIRED, WHY_TW_EXPIRED
from tcpview.engine.output.ladder import LadderRow, ladder_rows
from tcpview.engine.timeline.conns import ConnView
from tcpview.engine.timeline.timeline import Timeline
from tcpview.engine.timeline.tracker import Tracker
from tcpview.engine.timeline.view import View
from tcpview.sources.batch import FrameBatch

TABLES = ("conns", "segs", "trans", "addrs6", "seg_back", "trans_back", "base_hist", "long", "anom",
          "trans_ts")
"""The tables a View publishes (all of ``columns.Tables.LAYOUT`` but the timer heap)."""

CONN_FIXED = ("fam", "caddr", "saddr", "port", "first_ts")
"""Fields of a connection row that never change once the row is published (the rest are
the state machine's working fields)."""

MSL2 = 1.0  # TIME_WAIT and orphaned FIN_WAIT_2 last this long in varied_frames' timelines
SYN_OPTS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]


# -- traffic -------------------------------------------------------------------------------------
def varied_frames() -> list[tuple]:
    """About 220 frames of 25 conversations (and some frames that are not TCP) on eight link
    types (Ethernet, also with VLAN and QinQ tags, Linux SLL and SLL2, BSD and OpenBSD
    loopback, raw IP, raw IPv4, raw IPv6), IPv4 and IPv6, merged in capture order; timers of
    :data:`MSL2` seconds fire.

    Handshakes (with options, crossing SYNs, a retransmitted SYN), every way to close
    (client first, server first, crossing FINs, half-closed, orphaned FIN_WAIT_2), resets and
    refusals, retransmissions, duplicate ACKs, zero windows and probes, keep-alives, a
    mid-stream pickup, a segment without flags, 4-tuple reuse (after TIME_WAIT expired,
    during TIME_WAIT, after a reset), a TSO segment longer than 65535 bytes, a clock that
    steps back, and frames the decoder skips (UDP, a truncated header, an unsupported link
    type).
    """
    frames: list[tuple] = []
    rng = random.Random(11)
    links = ["ether", "vlan", "qinq", "sll", "sll2", "null", "loop", "raw"]

    def flow(i: int, v6: bool = False, link: str | None = None, **kw) -> Flow:
        link = link or links[i % len(links)]
        ips = (f"2001:db8::{i + 1:x}", f"2001:db8::ff{i:02x}") if v6 else (f"10.0.{i}.1", f"10.0.{i}.2")
        return Flow(cip=ips[0], sip=ips[1], cport=40000 + i, sport=rng.choice([80, 443, 22]),
                    cisn=rng.getrandbits(32), sisn=rng.getrandbits(32), t0=rng.uniform(0, 3),
                    dt=rng.uniform(0.01, 0.15), link=link, frames=frames, **kw)

    for i in range(16):
        v6 = i % 3 == 1
        f = flow(i, v6)
        kind = i % 8
        if kind == 7:  # picked up mid-stream: no handshake
            f.c("PA", b"mid" * 3)
            f.s("A")
        else:
            f.c("S", options=SYN_OPTS)
            if i == 9:
                f.c("S", seq=f.nxt[0] - 1, options=SYN_OPTS)  # the SYN again
            f.s("SA", options=SYN_OPTS)
            f.c("A")
        for _ in range(rng.randrange(1, 4)):
            f.c("PA", b"q" * rng.randrange(1, 80))
            f.s("PA", b"r" * rng.randrange(1, 300))
        if kind == 0:  # client closes; TIME_WAIT expires
            f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
        elif kind == 1:  # server closes first
            f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
        elif kind == 2:  # FINs cross: both CLOSING, then TIME_WAIT
            cfin = f.nxt[0]
            f.c("FA")
            f.s("FA", ack=cfin)
            f.c("A"), f.s("A")
        elif kind == 3:  # reset
            f.s("RA")
        elif kind == 4:  # half-closed, the FIN_WAIT_2 side orphaned until its timer
            f.c("FA"), f.s("A")
        elif kind == 5:  # a lost segment: retransmitted, duplicate ACKs
            seq = f.nxt[0]
            f.c("PA", b"x" * 40)
            f.c("PA", b"y" * 40)
            f.s("A", ack=seq)
            f.s("A", ack=seq)
            f.c("PA", b"x" * 40, seq=seq)
            f.s("A")
            f.c("")  # no flags at all: an anomaly, which moves nothing
        elif kind == 6:  # zero window, a probe, a window update, keep-alives
            f.s("A", win=0)
            f.c("A", b"p", seq=f.nxt[0])
            f.s("A", win=0, ack=f.nxt[0] - 1)
            f.s("A", win=4096, ack=f.nxt[0] - 1)
            f.c("A", seq=f.nxt[0] - 1)
            f.s("A")
            f.c("FA"), f.s("FA"), f.c("A")
    # a refusal
    f = flow(20, link="null")
    f.c("S")
    f.s("RA", seq=0)
    # the same 4-tuple: refused again with a new ISN, a new connection
    g = Flow(cip="10.0.20.1", sip="10.0.20.2", cport=40020, sport=f.port[1], cisn=77, t0=f.t + 0.2, dt=0.05,
             link="null", frames=frames)
    g.c("S")
    g.s("RA", seq=0)
    # TIME_WAIT expires, then the 4-tuple is used again (a new connection)
    f = flow(21, link="ether")
    f.handshake()
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    g = Flow(cip="10.0.21.1", sip="10.0.21.2", cport=40021, sport=f.port[1],
             cisn=(f.nxt[0] + 10_000) & 0xFFFFFFFF, t0=f.t + 2 * MSL2, dt=0.03, link="ether", frames=frames)
    g.handshake()
    g.c("RA")
    # a new SYN during TIME_WAIT (higher ISN: the socket is reused), and after a reset
    f = flow(22, True, link="sll2")
    f.handshake()
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    g = Flow(cip=f.ip[0], sip=f.ip[1], cport=f.port[0], sport=f.port[1],
             cisn=(f.nxt[0] + 50_000) & 0xFFFFFFFF, t0=f.t + MSL2 / 4, dt=0.02, link="sll2", frames=frames)
    g.handshake()
    g.s("RA")
    h = Flow(cip=f.ip[0], sip=f.ip[1], cport=f.port[0], sport=f.port[1], cisn=123, t0=g.t + 0.1, dt=0.02,
             link="sll2", frames=frames)
    h.handshake()
    # crossing SYNs (simultaneous open), IPv6 on raw link types 228/229
    f = flow(23, True, link="ipv6")
    f.c("S")
    f.s("S")
    f.c("SA", ack=f.nxt[1])
    f.s("SA", seq=f.nxt[1] - 1, ack=f.nxt[0])
    f.c("A")
    f = flow(24, link="ipv4")
    f.handshake()
    # TSO: the IP total length left 0, a 70000-byte segment captured with a short snap length
    seq = f.nxt[0]
    pkt = f.packet(0, "PA", b"z" * 100)
    pkt[IP].len = 0
    lt, raw = wrap(pkt, "ipv4")
    f.nxt[0] = (seq + 70_000 - 40) & 0xFFFFFFFF
    f.t += f.dt
    frames.append((f.t, lt, raw, 70_000))
    f.s("A")
    f.c("FA"), f.s("FA"), f.c("A")
    # frames the decoder skips
    udp = IP(src="10.9.9.1", dst="10.9.9.2") / UDP(sport=53, dport=53) / b"dns"
    frames.append((1.5, *wrap(udp, "ether")))
    frames.append((1.6, DLT_EN10MB, wrap(IP(src="10.9.9.1", dst="10.9.9.2") / TCP(), "ether")[1][:40]))
    frames.append((1.7, 147, b"\x00" * 60))  # LINKTYPE_USER0: not decoded
    frames.append((1.8, *wrap(IPv6(src="::1", dst="::2") / UDP(), "sll")))
    frames.sort(key=lambda x: x[0])
    # the clock steps back once, by a little, on one frame of a busy connection
    k = len(frames) // 2
    fr = frames[k]
    frames[k] = (frames[k - 1][0] - 0.05, *fr[1:])
    return frames


def busy_template(n: int = 100, seed: int = 5) -> list[tuple[float, int, bytes]]:
    """n overlapping Ethernet/IPv4 conversations between 10.0.0.1 (client) and 10.0.0.2, each
    with a handshake, 3 to 30 data segments (some retransmitted, some zero windows) and one
    of several endings; about 30 frames each, in capture order."""
    rng = random.Random(seed)
    frames: list = []
    for i in range(n):
        f = Flow(cport=20000 + i, sport=rng.choice([80, 443, 8080]), t0=rng.uniform(0, 20),
                 dt=rng.uniform(0.001, 0.2), cisn=rng.getrandbits(32), sisn=rng.getrandbits(32),
                 frames=frames)
        f.c("S", options=SYN_OPTS)
        f.s("SA", options=SYN_OPTS)
        f.c("A")
        for _ in range(rng.randrange(3, 30)):
            r = rng.random()
            if r < 0.1:
                seq = f.nxt[0]
                f.c("PA", b"a" * rng.randrange(1, 100))
                f.c("PA", b"a" * 20, seq=seq)  # retransmitted
            elif r < 0.15:
                f.s("A", win=0)
                f.s("A")
            elif r < 0.6:
                f.c("PA", b"q" * rng.randrange(1, 100))
            else:
                f.s("PA", b"r" * rng.randrange(1, 600))
        end = rng.choice(["client", "server", "rst", "half", "open"])
        if end == "client":
            f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
        elif end == "server":
            f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
        elif end == "rst":
            f.c("RA")
        elif end == "half":
            f.c("FA"), f.s("A")
    frames.sort(key=lambda x: x[0])
    return frames


def busy_frames(copies: int = 100, shift: float = 0.25,
                template: Sequence[tuple] | None = None) -> list[tuple]:
    """``copies`` copies of :func:`busy_template`, copy j from client 10.1.j/256.j%256 and
    ``j * shift`` seconds later, merged in capture order (Ethernet, IPv4)."""
    template = busy_template() if template is None else template
    client = bytes([10, 0, 0, 1])
    out = []
    for j in range(copies):
        ip = bytes([10, 1, j >> 8, j & 0xFF])
        dt = j * shift
        for ts, lt, raw in template:
            if raw[26:30] == client:  # client to server: the source address is the client's
                raw = raw[:26] + ip + raw[30:]
            else:
                raw = raw[:30] + ip + raw[34:]
            out.append((ts + dt, lt, raw))
    out.sort(key=lambda x: x[0])
    return out


# -- feeding -------------------------------------------------------------------------------------
def records(frames: Sequence[tuple], first: int = 1) -> list[tuple]:
    """``(frame, ts, linktype, buf, off, caplen, origlen)`` records of frames numbered from first."""
    out = []
    for i, fr in enumerate(frames, first):
        ts, lt, raw = fr[:3]
        out.append((i, ts, lt, raw, 0, len(raw), fr[3] if len(fr) > 3 else len(raw)))
    return out


def random_splits(n: int, rng: random.Random, largest: int) -> list[int]:
    """Sizes of batches (each 1 .. largest) that add up to n."""
    sizes = []
    while n > 0:
        k = min(n, rng.randint(1, largest))
        sizes.append(k)
        n -= k
    return sizes


def feed_part(tr: Tracker, recs: Sequence[tuple], how: str) -> None:
    """Feed records as one batch (``batch``), as records (``records``) or frame by frame
    (``frame``: ``feed_frame`` for whole frames, ``feed`` for ones cut short)."""
    if how == "batch":
        tr.feed_batch(FrameBatch.of_records(recs))
    elif how == "records":
        tr.feed_records(recs)
    else:
        for frame, ts, lt, buf, off, caplen, origlen in recs:
            if origlen == caplen:
                tr.feed_frame(frame, ts, lt, buf[off:off + caplen])
            else:
                tr.feed(frame, ts, lt, buf, off, caplen, origlen)


# -- answers from scratch, over one view --------------------------------------------------------------
def trans_keys(v: View) -> np.ndarray:
    """The log time of each published transition: its segment's, or its own (``trans_ts``)."""
    n = v.n_trans
    keys = v.segs.ts[v.trans.seg[:n].astype(np.int64)] if n else np.zeros(0)
    keys = np.array(keys, dtype=np.float64)
    tt = v.trans_ts[: v.n["trans_ts"]]
    if len(tt):
        keys[tt[:, 0].astype(np.int64)] = tt[:, 1]
    return keys


def _codes(v: View, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    code = v.trans.code[:k].astype(np.int64)
    return (v.trans.conn[:k].astype(np.int64), code & 1, (code >> col.TR_OLD_SHIFT) & 15,
            (code >> col.TR_NEW_SHIFT) & 15)


def scratch_states(v: View, t: float | None) -> np.ndarray:
    """Both endpoints' states of every connection of v as of t: each endpoint's newest
    transition at or before t, found by sorting (no replay)."""
    k = v.n_trans if t is None else int(np.searchsorted(trans_keys(v), t, side="right"))
    conn, side, _old, new = _codes(v, k)
    out = np.zeros((v.n_conn, 2), dtype=np.uint8)
    if k:
        ep = conn * 2 + side
        order = np.lexsort((np.arange(k), ep))  # by endpoint, then log order
        last = np.r_[ep[order][1:] != ep[order][:-1], True]
        rows = order[last]
        out[conn[rows], side[rows]] = new[rows]
    return out


def scratch_counters(v: View, t: float | None) -> dict[str, int]:
    """Endpoints per state as of t (CLOSED not counted), from :func:`scratch_states`."""
    counts = np.bincount(scratch_states(v, t).ravel(), minlength=NSTATES)
    return {STATE_NAMES[i]: int(counts[i]) for i in range(1, NSTATES)}


def seg_count(v: View, t: float | None) -> int:
    """Segments of v at or before t."""
    return v.n_seg if t is None else int(np.searchsorted(v.segs.ts[: v.n_seg], t, side="right"))


def scratch_conn_stats(v: View, t: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per connection as of t: segments, payload bytes (long ones in full), latest row or -1."""
    m = seg_count(v, t)
    conn = v.segs.conn[:m].astype(np.int64)
    ln = v.segs.len[:m].astype(np.int64)
    for row, full in v.long[: v.n["long"]].tolist():
        if row < m:
            ln[int(row)] = full
    pk = np.bincount(conn, minlength=v.n_conn)
    nb = np.bincount(conn, weights=ln, minlength=v.n_conn).astype(np.int64)
    last = np.full(v.n_conn, -1, dtype=np.int64)
    last[conn] = np.arange(m)  # rows ascend, so the largest row of a connection is written last
    return pk, nb, last


def scratch_trans_of(v: View, cid: int) -> list[tuple[int, int, int, int]]:
    """Connection cid's transitions in v as ``(frame or 0 for a timer, side, old, new)``."""
    out = []
    for r in np.flatnonzero(v.trans.conn[: v.n_trans] == cid).tolist():
        code = int(v.trans.code[r])
        timer = (code >> col.TR_WHY_SHIFT) & 15 in (WHY_TW_EXPIRED, WHY_FW2_EXPIRED)
        frame = 0 if timer else int(v.segs.frame[int(v.trans.seg[r])])
        out.append((frame, code & 1, (code >> col.TR_OLD_SHIFT) & 15, (code >> col.TR_NEW_SHIFT) & 15))
    return out


def scratch_seg_states(v: View, cid: int) -> list[tuple[int, int]]:
    """(client, server) state after each of connection cid's segments in v: the transitions
    of cid whose ``seg`` is at most the segment's row, replayed in log order."""
    srows = np.flatnonzero(v.segs.conn[: v.n_seg] == cid).tolist()
    trows = np.flatnonzero(v.trans.conn[: v.n_trans] == cid).tolist()
    st = [0, 0]
    out = []
    j = 0
    for r in srows:
        while j < len(trows) and int(v.trans.seg[trows[j]]) <= r:
            code = int(v.trans.code[trows[j]])
            st[code & 1] = (code >> col.TR_NEW_SHIFT) & 15
            j += 1
        out.append((st[0], st[1]))
    return out


def assert_conn_consistent(tl: Timeline, v: View, cid: int, t: float | None) -> ConnView:
    """A ConnView of v answers from v's rows of cid and nothing else."""
    c = ConnView(tl, v, cid)
    rows = np.flatnonzero(v.segs.conn[: v.n_seg] == cid)
    assert c.n == len(rows), (cid, c.n, len(rows))
    assert np.array_equal(c.rows, rows), cid
    recs = c.records(0, c.n)
    assert [r[1] for r in recs] == v.segs.frame[rows].tolist(), cid
    assert [(r[8], r[9]) for r in recs] == scratch_seg_states(v, cid), cid
    trans = c.trans
    assert [(x[1], x[2], x[3], x[4]) for x in trans] == scratch_trans_of(v, cid), cid
    st = scratch_states(v, t)
    assert c.states_at(t) == (int(st[cid, 0]), int(st[cid, 1])), (cid, t)
    k = len(rows) if t is None else int(np.count_nonzero(v.segs.ts[rows] <= t))
    assert c.count_at(t) == k, (cid, t)
    return c


def ladder_states(rows: Sequence[LadderRow]) -> list[tuple[str, str]]:
    """(client, server) state after each segment row of a ladder, carrying forward the states
    written where they changed (timer rows change them too)."""
    cs, ss = "CLOSED", "CLOSED"
    out = []
    for r in rows:
        cs = r.client_state or cs
        ss = r.server_state or ss
        if r.seg >= 0:
            out.append((cs, ss))
    return out


def assert_ladder_is_segments(rows: Sequence[LadderRow], c: ConnView, k: int | None = None) -> None:
    """Ladder rows show exactly c's first k segments (all by default): frames in order and the
    states recorded after each."""
    recs = c.records(0, c.n if k is None else k)
    seg_rows = [r for r in rows if r.seg >= 0]
    assert [r.seg for r in seg_rows] == list(range(len(recs))), c.id
    assert [r.frame for r in seg_rows] == [x[1] for x in recs], c.id
    assert ladder_states(rows) == [(STATE_NAMES[x[8]], STATE_NAMES[x[9]]) for x in recs], c.id


# -- whole timelines ---------------------------------------------------------------------------------
def table_bytes(v: View) -> dict[str, bytes]:
    """Every table's published rows, as bytes."""
    return {name: np.ascontiguousarray(getattr(v, name)[: v.n[name]]).tobytes() for name in TABLES}


def assert_same_timeline(a: Timeline, b: Timeline, every: int = 1) -> None:
    """Identical tables (every published row, byte for byte), counts and answers (asked of
    every ``every``-th connection, and of the last)."""
    va, vb = a.view(), b.view()
    assert va.n == vb.n
    ta, tb = table_bytes(va), table_bytes(vb)
    for name in TABLES:
        assert ta[name] == tb[name], f"table {name} differs"
    assert (va.packets, va.tcp_packets, va.first_ts, va.last_ts, va.skipped) == \
        (vb.packets, vb.tcp_packets, vb.first_ts, vb.last_ts, vb.skipped)
    assert a.counters_at(None) == b.counters_at(None)
    assert a.connection_dicts(None) == b.connection_dicts(None)
    for cid in sorted({*range(0, va.n_conn, every), va.n_conn - 1} - {-1}):
        assert list(a.segments(cid)) == list(b.segments(cid)), cid
        assert a.transitions(cid) == b.transitions(cid), cid
        assert ladder_rows(a, cid) == ladder_rows(b, cid), cid
    times = np.unique(va.segs.ts[: va.n_seg])
    for t in times[:: max(1, len(times) // 50)].tolist():
        assert a.counters_at(t) == b.counters_at(t), t
