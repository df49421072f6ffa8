"""Fuzzing the reader and the engine: seed captures, cases, and one case's checks (the
mutations themselves are in ``fuzzmutate.py``).

Used by ``tests/test_fuzz.py`` (fixed seeds, a few thousand cases) and by
``benchmarks/fuzz.py`` (as many as you like). A case is a seed capture with one to three
mutations: bit flips, byte overwrites, truncation, bad record or block lengths, records or
blocks too short for their own fields, a spliced file (the head of one and the tail of
another), a random link type, bytes inserted, removed or doubled, and damaged file headers. Each case is reproducible from ``(seed, case number)``
alone: :func:`make_case` derives everything from them.

Every case goes through the real reader and engine twice: :func:`tcpview.engine.pump.load`
on a file, and :meth:`CaptureReader.batches` fed batch by batch to a :class:`Tracker` with
tiny tables (so they grow while it reads) and, for some cases, a reader reading a few bytes
at a time (so records straddle its chunks). It must end with no exception but the one-line
:class:`CaptureError` (``load()`` returns it in ``error``), in time, with batches that only
point inside their buffer, with the same result both ways, and with a published view that is
consistent (:func:`check_timeline`). A third kind of case feeds mutated frames with random
link types and times straight to :meth:`Tracker.feed_batch`.
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fuzzmutate import LINKTYPES, MUTATIONS, structure
from helpers import (
    DLT_EN10MB,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    DLT_RAW,
    Flow,
    corpus_dir,
    many_connections,
    ng_block,
    pcap_bytes,
    pcapng_bytes,
)

from tcpview.engine.core.tcp import NSTATES
from tcpview.engine.pump import load
from tcpview.engine.timeline.timeline import Timeline
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources import pcap as pcap_module
from tcpview.sources.batch import FrameBatch
from tcpview.sources.pcap import CaptureError, CaptureReader

DEADLINE = 20.0  # seconds one case may take before it counts as a hang (a busy machine is slow)


# -- seeds ---------------------------------------------------------------------------------------
def _lifecycle(link: str = "ether", v6: bool = False, cport: int = 40000, t0: float = 100.0) -> Flow:
    """Handshake with options, data both ways, a retransmission, a zero window, FIN close."""
    f = Flow(cip="fd00::1" if v6 else "10.0.0.1", sip="fd00::2" if v6 else "10.0.0.2", cport=cport, t0=t0,
             link=link)
    f.c("S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7), ("Timestamp", (1, 0))])
    f.s("SA", options=[("MSS", 1400), ("WScale", 3), ("SAckOK", b"")])
    f.c("A")
    f.c("PA", b"GET / HTTP/1.1\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 300)
    f.s("PA", b"x" * 300, seq=f.nxt[1] - 300)  # a retransmission
    f.c("A", win=0)
    f.c("A", win=8192)
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    return f


def _extra_blocks(endian: str) -> bytes:
    """pcapng blocks the reader must read or skip: a simple packet block, an obsolete packet
    block, name resolution, interface statistics and a custom block."""
    f = Flow(cport=41000, t0=200.0)
    f.handshake()
    raw = [b for _t, _lt, b in f.frames]
    out = [ng_block(endian, 3, struct.pack(endian + "I", len(raw[0])) + raw[0])]
    out.append(ng_block(endian, 2, struct.pack(endian + "HHIIII", 0, 0, 0, 200_000_000, len(raw[1]), len(raw[1]))
                         + raw[1]))
    out.append(ng_block(endian, 4, struct.pack(endian + "HH", 1, 8) + bytes([10, 0, 0, 1]) + b"h1\0\0"
                         + struct.pack(endian + "HH", 0, 0)))
    out.append(ng_block(endian, 5, struct.pack(endian + "III", 0, 0, 0)))
    out.append(ng_block(endian, 0x40000BAD, struct.pack(endian + "I", 32473) + b"custom"))
    return b"".join(out)


def built_seeds() -> list[tuple[str, bytes]]:
    """Small captures built with scapy and the test writers: every link type the decoder
    reads, IPv4 and IPv6, both byte orders and time resolutions, pcapng with several
    interfaces and the less common blocks, many overlapping connections."""
    seeds = []
    f = _lifecycle()
    seeds.append(("ether-lifecycle.pcap", pcap_bytes([(t, b) for t, _lt, b in f.frames])))
    f6 = _lifecycle("sll", v6=True)
    seeds.append(("sll-ipv6-nano-be.pcap", pcap_bytes([(t, b) for t, _lt, b in f6.frames], linktype=DLT_LINUX_SLL,
                                                      nano=True, endian=">")))
    for link in ("vlan", "qinq", "null", "loop", "raw", "sll2"):
        g = _lifecycle(link, v6=link in ("loop", "sll2"))
        lt = g.frames[0][1]
        seeds.append((f"{link}.pcap", pcap_bytes([(t, b) for t, _lt, b in g.frames], linktype=lt)))
    many = many_connections(12, seed=3)
    seeds.append(("many.pcap", pcap_bytes([(t, b) for t, _lt, b in many], snaplen=96)))
    a = _lifecycle("ether", cport=40001)
    b = _lifecycle("sll2", cport=40002, t0=100.0005)
    c = _lifecycle("raw", v6=True, cport=40003, t0=100.0007)
    pk = sorted([(0, t, x) for t, _lt, x in a.frames] + [(1, t, x) for t, _lt, x in b.frames]
                + [(2, t, x) for t, _lt, x in c.frames], key=lambda p: p[1])
    for endian in ("<", ">"):
        ng = pcapng_bytes([(DLT_EN10MB, 6), (DLT_LINUX_SLL2, 9), (DLT_RAW, 6)], pk, endian=endian)
        seeds.append((f"three-ifaces-{'le' if endian == '<' else 'be'}.pcapng", ng + _extra_blocks(endian)))
    # two sections, the second in the other byte order
    s1 = pcapng_bytes([(DLT_EN10MB, 6)], [(0, t, x) for t, _lt, x in a.frames[:5]])
    s2 = pcapng_bytes([(DLT_EN10MB, 9)], [(0, t, x) for t, _lt, x in a.frames[5:]], endian=">")
    seeds.append(("two-sections.pcapng", s1 + s2))
    return seeds


def corpus_seeds(max_bytes: int = 48_000) -> list[tuple[str, bytes]]:
    """The corpus captures no larger than ``max_bytes`` (none when the corpus is absent)."""
    d = corpus_dir()
    if d is None:
        return []
    files = sorted(p for p in d.iterdir() if p.suffix in (".pcap", ".pcapng") and p.stat().st_size <= max_bytes)
    return [(p.name, p.read_bytes()) for p in files]


@dataclass
class Case:
    """One fuzz case: its bytes, what was done to which seed, and how to read it."""

    number: int
    seed_name: str
    data: bytes
    steps: list[str]
    chunk: int | None  # read this many bytes at a time (None: the reader's own chunk size)

    def describe(self) -> str:
        chunk = f"; read {self.chunk} bytes at a time" if self.chunk else ""
        return f"{self.seed_name}: {'; '.join(self.steps)}{chunk}"


def make_case(seeds: list[tuple[str, bytes]], seed: int, number: int) -> Case:
    """Case ``number`` of run ``seed``: a seed capture with one to three mutations."""
    rng = random.Random(seed * 1_000_003 + number)
    name, data = seeds[rng.randrange(len(seeds))]
    buf = bytearray(data)
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        if not buf:
            break
        other = seeds[rng.randrange(len(seeds))]
        buf, what = rng.choice(MUTATIONS)(rng, buf, structure(bytes(buf))[1], other)
        buf = bytearray(buf)
        steps.append(what)
    chunk = rng.choice((3, 7, 16, 17, 64, 100, 1000)) if rng.random() < 0.1 else None
    return Case(number, name, bytes(buf), steps, chunk)


# -- checks ---------------------------------------------------------------------------------------
class Problem(Exception):
    """What a case got wrong."""


def check_timeline(tl: Timeline, deep: bool = True) -> dict:
    """Raise :class:`Problem` unless the published view is consistent; returns a digest of it
    (lengths, counters and every connection as a dict) to compare two reads with. ``deep``
    also asks for connections at a past time and a few connections' segments as models."""
    v = tl.view()
    for name, n in v.n.items():
        if not 0 <= n <= len(getattr(v, name) if hasattr(v, name) else getattr(tl.tables, name)):
            raise Problem(f"table {name}: {n} rows published, capacity {len(getattr(tl.tables, name))}")
    nc, ns, nt = v.n_conn, v.n_seg, v.n_trans
    if not 0 <= v.tcp_packets <= v.packets or v.tcp_packets != ns:
        raise Problem(f"packets {v.packets}, tcp {v.tcp_packets}, segments {ns}")
    if ns and int(v.segs.conn[:ns].max()) >= nc:
        raise Problem(f"a segment's connection {int(v.segs.conn[:ns].max())} >= {nc} connections")
    if nt and int(v.trans.conn[:nt].max()) >= nc:
        raise Problem(f"a transition's connection {int(v.trans.conn[:nt].max())} >= {nc} connections")
    if nt and int(v.trans.seg[:nt].max()) > ns:
        raise Problem("a transition after more segments than there are")
    if ns > 1 and bool(np.any(np.diff(v.segs.ts[:ns]) < 0)):
        raise Problem("segment times go back in the table")
    if ns > 1 and bool(np.any(np.diff(v.segs.frame[:ns].astype(np.int64)) <= 0)):
        raise Problem("segment frame numbers do not increase")
    if nc and (v.first_ts is None or bool(np.any(np.isnan(v.conns.first_ts[:nc])))):
        raise Problem("connections without a first time")
    counters = tl.counters_at()
    if any(c < 0 for c in counters.values()) or sum(counters.values()) > 2 * nc:
        raise Problem(f"counters {counters} for {nc} connections")
    states = tl.states_at(None)
    if states.shape != (nc, 2) or (nc and int(states.max()) >= NSTATES):
        raise Problem(f"states of shape {states.shape}")
    if any(k < 0 for k in tl.skipped.values()):
        raise Problem(f"skipped {tl.skipped}")
    dicts = tl.connection_dicts()
    if len(dicts) != nc or sum(d["packets"] for d in dicts) != ns or any(d["bytes"] < 0 for d in dicts):
        raise Problem(f"{len(dicts)} connection dicts for {nc} connections, {ns} segments")
    if deep and nc and v.first_ts is not None and v.last_ts is not None:
        mid = v.first_ts + (v.last_ts - v.first_ts) / 2
        if len(tl.connection_dicts(mid)) != tl.conn_count_at(mid):
            raise Problem("connection_dicts(t) and conn_count_at(t) disagree")
        tl.counters_at(mid)
    for c in list(tl.conns)[:2] if deep else ():
        c.records(0, c.n)
        c.trans
        for i in range(min(c.n, 3)):
            tl.segment(c.id, i)
    return {"n": dict(v.n), "packets": v.packets, "skipped": tl.skipped, "counters": counters, "conns": dicts}


def check_batch(batch: FrameBatch, frame_before: int) -> int:
    """Raise :class:`Problem` unless every frame of a reader's batch lies inside its buffer;
    returns the number of the last frame."""
    f = batch.frames
    n = len(f)
    if n == 0:
        raise Problem("an empty batch")
    off, cap, orig = f.off.astype(np.int64), f.caplen.astype(np.int64), f.origlen.astype(np.int64)
    if bool(np.any(off < 0)) or bool(np.any(cap < 0)) or bool(np.any(off + cap > len(batch.buf))):
        k = int(np.flatnonzero((off < 0) | (cap < 0) | (off + cap > len(batch.buf)))[0])
        raise Problem(f"frame {int(f.frame[k])} at {int(off[k])}+{int(cap[k])} outside its {len(batch.buf)}-byte buffer")
    if bool(np.any(orig < cap)):
        raise Problem("a frame's original length below its captured length")
    # consecutive within a batch; between batches a pcapng custom block may take a number (as
    # Wireshark numbers them), and the scanner stops at each, so a batch may start past the next
    first = int(f.frame[0])
    if first <= frame_before or not np.array_equal(f.frame.astype(np.int64), np.arange(first, first + n)):
        raise Problem(f"frames numbered {f.frame[:3].tolist()}..., expected from {frame_before + 1}")
    return first + n - 1


def read_direct(path: str, chunk: int | None) -> tuple[dict, str | None]:
    """CaptureReader.batches() fed to a Tracker with tiny tables, every batch checked;
    ``chunk`` reads that many bytes at a time."""
    tr = Tracker(timeline=Timeline(rows=4))
    error = None
    frame = read = 0
    saved = pcap_module.CHUNK
    if chunk:
        pcap_module.CHUNK = chunk
    try:
        with CaptureReader(path) as reader:
            try:
                for batch in reader.batches():
                    if batch is None:
                        continue
                    frame = check_batch(batch, frame)
                    read += len(batch)
                    tr.feed_batch(batch)
                pcap_module.check_linktypes(reader)
            except CaptureError as e:
                error = str(e)
    finally:
        pcap_module.CHUNK = saved
    if tr.tl.packets != read:
        raise Problem(f"{read} frames read, {tr.tl.packets} counted")
    return check_timeline(tr.tl, deep=False), error


def _error_ok(error: str | None, path: str) -> None:
    if error is not None and ("\n" in error or not error.startswith(path + ": ")):
        raise Problem(f"not a one-line CaptureError: {error!r}")


_chunk_lock = threading.Lock()


def run_case(case: Case, path: Path) -> None:
    """Raise :class:`Problem` (or whatever escaped) if the case fails its checks."""
    path.write_bytes(case.data)
    p = str(path)
    res = load(p)
    _error_ok(res.error, p)
    loaded = check_timeline(res.timeline)
    with _chunk_lock:  # the chunk size is the reader module's
        direct, error = read_direct(p, None)
        _error_ok(error, p)
        if direct != loaded or (error is None) != (res.error is None):
            raise Problem(f"load() and the reader fed directly disagree: {res.error!r} / {error!r}")
        if case.chunk:
            small, serr = read_direct(p, case.chunk)
            _error_ok(serr, p)
            if small != direct or (serr is None) != (error is None):
                raise Problem(f"reading {case.chunk} bytes at a time differs: {serr!r} / {error!r}; "
                              f"{small['n']} / {direct['n']}")


# -- frames straight to the tracker ---------------------------------------------------------------
def seed_frames() -> list[tuple[float, int, bytes]]:
    """Frames of several conversations on every link type, to mutate one by one."""
    out = []
    for i, link in enumerate(("ether", "vlan", "qinq", "sll", "sll2", "null", "loop", "raw")):
        out += _lifecycle(link, v6=i % 2 == 1, cport=42000 + i).frames
    return out


def frame_case(frames: list[tuple[float, int, bytes]], seed: int, number: int) -> tuple[list, str]:
    """Records ``(frame, ts, linktype, bytes, 0, caplen, origlen)``: some of ``frames``, each
    perhaps with bits flipped, cut, lengthened, given another link type or another time."""
    rng = random.Random(seed * 1_000_003 + number)
    start = rng.randrange(len(frames))
    pick = frames[start:start + rng.randrange(1, 40)]
    recs = []
    t = pick[0][0]
    for k, (ts, lt, raw) in enumerate(pick, 1):
        b = bytearray(raw)
        r = rng.random()
        if r < 0.4:
            for _ in range(rng.choice((1, 2, 4))):
                p = rng.randrange(min(len(b), 80))
                b[p] ^= 1 << rng.randrange(8)
        elif r < 0.5:
            b = b[: rng.randrange(len(b) + 1)]
        elif r < 0.55:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        if rng.random() < 0.15:
            lt = rng.choice(LINKTYPES) if rng.random() < 0.8 else rng.randrange(1 << 16)
        t = ts if rng.random() < 0.8 else rng.choice((t - 1000.0, t + 0.0, t + 1e6, -5.0, 1e12, ts + 61.0))
        orig = len(b) if rng.random() < 0.8 else rng.choice((0, len(b) + 1, 65535, 1 << 20, 0x7FFFFFFF))
        recs.append((k, t, lt, bytes(b), 0, len(b), orig))
    return recs, f"{len(recs)} frames from {start}"


def run_frame_case(recs: list) -> None:
    """Feed the records as one batch and then one by one; both views must be consistent and
    agree; then let time pass."""
    a = Tracker(timeline=Timeline(rows=4))
    a.feed_batch(FrameBatch.of_records(recs))
    b = Tracker()
    for r in recs:
        b.feed(*r)
    da, db = check_timeline(a.tl), check_timeline(b.tl, deep=False)
    if da != db:
        raise Problem("one batch and frame by frame disagree")
    if a.tl.last_ts is not None:
        a.advance(a.tl.last_ts + 1000.0)
        check_timeline(a.tl, deep=False)


# -- running cases with a deadline -------------------------------------------------------------------
def within(deadline: float, fn: Callable[[], None]) -> BaseException | str | None:
    """Run ``fn`` on a thread (the kernels release the GIL, so a hang in one cannot stop the
    clock); returns what it raised, ``"hang"`` past the deadline, or None."""
    got: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:
            got.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(deadline)
    if t.is_alive():
        return "hang"
    return got[0] if got else None


def describe_failure(what: BaseException | str) -> str:
    if isinstance(what, str):
        return f"no answer within {DEADLINE:.0f} s (hang)"
    if isinstance(what, Problem):
        return str(what)
    import traceback

    tb = traceback.extract_tb(what.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(what).__name__}: {what}{where}"


def run_file_cases(seeds: list[tuple[str, bytes]], seed: int, numbers, path: Path,  # type: ignore[no-untyped-def]
                   deadline: float = DEADLINE) -> list[str]:
    """Run file cases ``numbers`` of run ``seed``; a line per failure, saying how to reproduce it."""
    failures = []
    for k in numbers:
        case = make_case(seeds, seed, k)
        bad = within(deadline, lambda case=case: run_case(case, path))
        if bad is not None:
            failures.append(f"seed {seed} case {k} ({case.describe()}): {describe_failure(bad)}")
            if bad == "hang":
                break  # the thread still runs; later cases would only queue behind it
    return failures


def run_frame_cases(frames: list, seed: int, numbers, deadline: float = DEADLINE) -> list[str]:  # type: ignore[no-untyped-def]
    """Run frame cases ``numbers`` of run ``seed``; a line per failure."""
    failures = []
    for k in numbers:
        recs, what = frame_case(frames, seed, k)
        bad = within(deadline, lambda recs=recs: run_frame_case(recs))
        if bad is not None:
            failures.append(f"seed {seed} frame case {k} ({what}): {describe_failure(bad)}")
            if bad == "hang":
                break
    return failures
