"""Why was it slow: each connection's life split into what held it back, a verdict, and the
evidence (``tcpview diagnose``, the viewer's ``slow`` column and breakdown bar).

The split is made by one compiled pass over the segment table
(:func:`tcpview.engine.core.limits.limits_pass`, which says how each interval is decided);
this module runs it as of a cursor (carrying on from the last cursor when it moved forward),
picks the verdict and words the evidence. The categories and their rules are documented in
``docs/diagnose.md``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..core import columns as col
from ..core import limits as lim
from ..timeline.reader import Reader
from ..timeline.view import View

CATEGORIES = ("handshake", "server_response", "application", "receive_window", "congestion", "loss_recovery",
              "bottleneck", "idle", "delayed_ack")
"""The time categories, in the order of their codes in :mod:`tcpview.engine.core.limits`."""
TOO_SHORT = "too_short"
VERDICTS = (*CATEGORIES, TOO_SHORT)
"""Every verdict: a category, or too_short."""
TOO_SHORT_CODE = len(CATEGORIES)

INITIAL_WINDOW = 10
"""Segments a sender may put out before any ACK (RFC 6928): a connection whose data fits in
one initial window was never held back by its congestion window or a queue it could fill."""
DEFAULT_MSS = 536
ROWS_AHEAD = 1 << 18
"""Connection rows the pass's state makes room for, at the least, once it has to grow (a
live capture's or a stream's connections arrive a few at a time): 140 MB of address space,
not of memory, as zeroed rows cost nothing until they are set up. Doubling from a few rows
copied each row again at every step, into memory touched for the first time: under
connection churn (``benchmarks/stream_bench.py``) 0.37 s of the viewer's thread in 15 s, up
to 0.2 s at once."""

_PASS = threading.RLock()
"""Held while the pass's state is carried on or read: it is changed in place (its rows made
ahead), and a reading thread carries it on ahead of the viewer (:func:`advance`)."""

EPISODES_AHEAD = 1 << 21
"""Episode rows made ahead once the first 1024 are full, for the same reason (a connection
under churn has about 8: 96 MB of address space). Doubling them from 1024 took up to 0.2 s at
once, at each step past 128,000 connections."""
MAX_EPISODES_SHOWN = 50
"""Evidence items listed per connection for its verdict's episodes, the longest (the summary
line counts all)."""
LABELS = {
    "handshake": "handshake", "server_response": "waiting for the server", "application": "application",
    "receive_window": "receive window", "congestion": "congestion window", "loss_recovery": "loss recovery",
    "bottleneck": "bottleneck (queueing)", "idle": "idle", "delayed_ack": "waiting for a delayed ACK",
    TOO_SHORT: "too short to say",
}
"""How the text output names each verdict."""
SHORT = {
    "handshake": "handshake", "server_response": "server", "application": "application",
    "receive_window": "recv-window", "congestion": "congestion", "loss_recovery": "loss",
    "bottleneck": "bottleneck", "idle": "idle", "delayed_ack": "delayed-ack", TOO_SHORT: "too-short",
}
"""Each verdict in at most 11 cells (the viewer's ``slow`` column; a filter takes these too)."""


@dataclass
class Diagnoses:
    """Every connection's breakdown as of a cursor (arrays by connection row)."""

    view: View
    ids: np.ndarray
    shares: np.ndarray
    """Seconds per category, ``(n_conn, len(CATEGORIES))``; each row sums to its duration."""
    duration: np.ndarray
    verdicts: np.ndarray
    """The verdict's index in :data:`VERDICTS` per connection."""
    ints: np.ndarray
    floats: np.ndarray
    episodes: np.ndarray
    """``(conn, category, first row, last row)`` per episode, sorted by connection then time."""
    ep_times: np.ndarray
    """``(start time, seconds)`` per episode."""

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def seg_frames(self) -> np.ndarray:
        """Each segment's frame number in the view, as a plain array (a record array looks its
        field up again at each read: a fifth of ``diagnose``'s time on 200,000 connections)."""
        return self.view.segs.view(np.ndarray)["frame"]

    def verdict(self, row: int) -> str:
        """The verdict of connection ``row``."""
        return VERDICTS[int(self.verdicts[row])]

    def counts(self) -> dict[str, int]:
        """Connections per verdict (every verdict, zeros too)."""
        got = np.bincount(self.verdicts, minlength=len(VERDICTS)) if len(self.verdicts) else np.zeros(len(VERDICTS))
        return {name: int(n) for name, n in zip(VERDICTS, got.tolist(), strict=True)}

    def of(self, row: int) -> Diagnosis:
        """Connection ``row``'s diagnosis with its evidence."""
        shares = {name: float(s) for name, s in zip(CATEGORIES, self.shares[row].tolist(), strict=True)}
        lo, hi = np.searchsorted(self.episodes[:, lim.EP_CONN], [row, row + 1])
        evidence, heads = _evidence(self, row, slice(int(lo), int(hi)))
        return Diagnosis(int(self.ids[row]), self.verdict(row), shares, float(self.duration[row]), evidence, heads,
                         self.sender(row))

    def sender(self, row: int) -> str:
        """Which end of connection ``row`` sent its data: the one that sent more payload bytes
        (``"server"`` on a tie)."""
        return "server" if self.ints[row, lim.I_BYTES1] >= self.ints[row, lim.I_BYTES0] else "client"


@dataclass
class Diagnosis:
    """One connection's verdict, its time breakdown and the evidence for it."""

    id: int
    verdict: str
    shares: dict[str, float]
    duration: float
    evidence: list[dict]
    """``{"frame", "ts", "text"}`` items: first the verdict's summary, then its episodes, then a
    summary of each other category that took a tenth of the time or more."""
    headlines: list[int]
    """Which evidence items are summaries (the rest are episodes)."""
    sender: str = "server"
    """The end that sent the data (``"client"`` or ``"server"``: the one that sent more bytes)."""
    kernel: dict | None = None
    """The kernel's own chrono counters of an end's socket on this host, read during a live
    capture: ``{"side", "sender", "busy_us", "rwnd_limited_us", "sndbuf_limited_us",
    "read_at"}`` (see :func:`tcpview.engine.analysis.kernel_check.beside_kernel`); None
    otherwise. Shown beside the inference."""

    def as_dict(self) -> dict:
        """The JSON shape: ``{"id", "verdict", "duration", "shares", "evidence"}`` (and ``kernel``
        when known)."""
        out = {"id": self.id, "verdict": self.verdict, "duration": self.duration, "shares": self.shares,
               "evidence": self.evidence}
        if self.kernel is not None:
            out["kernel"] = self.kernel
        return out


def diagnose(tl: Reader, t: float | None = None) -> Diagnoses:
    """Every connection's diagnosis as of ``t`` (the end when None), from the segments at or
    before it. The pass carries on from the last cursor asked when this one is later."""
    with _passed(tl, t) as (v, m, state):
        done = tl.cached("diagnoses")
        if done is None or done[0] != (v.generation, m, len(state["ints"])):
            done = ((v.generation, m, len(state["ints"])), _finish(v, state))
            tl.remember("diagnoses", done)
        return done[1]


def verdicts_at(tl: Reader, t: float | None = None, v: View | None = None) -> np.ndarray:
    """Each connection's verdict (its index in :data:`VERDICTS`) as of ``t``, by row of view
    ``v`` (the timeline's newest when None): what the table shows and filters on, without the
    evidence (cheap to ask on every tick)."""
    with _passed(tl, t, v) as (v, m, state):
        ints, floats = state["ints"], state["floats"]
        shares = _with_open(ints, floats, state["shares"])
        duration = np.where(ints[:, lim.I_SEEN] > 0, floats[:, lim.F_LAST] - floats[:, lim.F_FIRST], 0.0)
        return _verdicts(ints, shares, duration)


def breakdown_at(tl: Reader, cid: int, t: float | None = None) -> tuple[str, dict[str, float], float] | None:
    """Connection ``cid``'s verdict, seconds per category and duration as of ``t`` (None when
    it has no segment by then, or has left): the viewer's bar, without the evidence."""
    with _passed(tl, t) as (v, _m, state):
        row = v.row_of(cid)
        ints, floats = state["ints"], state["floats"]
        if row < 0 or row >= len(ints) or not ints[row, lim.I_SEEN]:
            return None
        shares = _with_open(ints[row:row + 1], floats[row:row + 1], state["shares"][row:row + 1])[0]
        duration = float(floats[row, lim.F_LAST] - floats[row, lim.F_FIRST])
        ints = ints[row:row + 1].copy()
    code = int(_verdicts(ints, shares[None, :], np.array([duration]))[0])
    return VERDICTS[code], {n: float(x) for n, x in zip(CATEGORIES, shares.tolist(), strict=True)}, duration


def sender_at(tl: Reader, cid: int, t: float | None = None) -> str:
    """Which end of connection ``cid`` sent its data as of ``t`` (``"client"`` or
    ``"server"``, the one that sent more payload bytes; ``"server"`` when it is not known)."""
    with _passed(tl, t) as (v, _m, state):
        row = v.row_of(cid)
        ints = state["ints"]
        if row < 0 or row >= len(ints):
            return "server"
        return "server" if ints[row, lim.I_BYTES1] >= ints[row, lim.I_BYTES0] else "client"


def evidence_frames(tl: Reader, cid: int, t: float | None = None) -> list[int]:
    """The frames connection ``cid``'s evidence points at as of ``t``, in order, each once (the
    viewer's ``w`` / ``W`` go through them)."""
    d = diagnose(tl, t)
    row = tl.view().row_of(cid)
    if row < 0 or row >= len(d):
        return []
    return sorted({e["frame"] for e in d.of(row).evidence if e["frame"] is not None})


def advance(tl: Reader, t: float | None = None, v: View | None = None) -> None:
    """Carry the pass on to ``t`` in view ``v`` (the newest when None): what a thread that
    reads a live source does after each batch, so the viewer's next question finds the pass
    there (it then carries it on over the segments since, if any)."""
    with _passed(tl, t, v):
        pass


@contextmanager
def _passed(tl: Reader, t: float | None, v: View | None = None) -> Iterator[tuple]:
    """``(view, segments passed, the pass's state)`` as of ``t`` (:func:`_advance`), to be
    read inside the ``with``: the state is changed in place, and :data:`_PASS` is held."""
    with _PASS:
        yield _advance(tl, t, v)


def _advance(tl: Reader, t: float | None, v: View | None = None) -> tuple:
    """The pass's state after the segments at or before ``t`` in view ``v`` (the newest when
    None): carried on from the last one kept when ``t`` is later, else made afresh (with
    :data:`_PASS` held: see :func:`_passed`)."""
    v = v or tl.view()
    m = tl.seg_index_at(t, v)
    n = v.n_conn
    prev = tl.cached("limits")
    if prev is not None and prev[0] == v.generation and prev[1] == m and len(prev[2]["ints"]) == n:
        return v, m, prev[2]
    if prev is not None and prev[0] == v.generation and prev[1] <= m:
        k0, state = prev[1], _grown(prev[2], n)
    else:
        k0, state = 0, _fresh(n)
    _run(v, k0, m, state)
    tl.remember("limits", (v.generation, m, state))
    return v, m, state


def _fresh(n: int, room: int | None = None) -> dict:
    """The pass's state for ``n`` connections, with rows made for ``room`` (at least ``n``):
    ``ints``, ``floats`` and ``shares`` are the first ``n`` rows of the ``*_all`` arrays, the
    rows past them zero pages not touched yet (:func:`_grown` sets them up as they are taken)."""
    room = max(n, room or n)
    ints = np.zeros((room, lim.N_INTS), dtype=np.int64)
    floats = np.zeros((room, lim.N_FLOATS), dtype=np.float64)
    lim.grow_state(ints[:n], floats[:n], 0)
    shares = np.zeros((room, lim.N_CATEGORIES))
    return {"ints_all": ints, "floats_all": floats, "shares_all": shares,
            "ints": ints[:n], "floats": floats[:n], "shares": shares[:n],
            "ep_i": np.zeros((1024, 4), dtype=np.int64), "ep_f": np.zeros((1024, 2)), "n_ep": np.zeros(1, np.int64)}


def _grown(state: dict, n: int) -> dict:
    """``state`` for ``n`` connections (the new ones fresh). The rows are made ahead
    (:data:`ROWS_AHEAD` at first, then twice as many each time they run out): a live stream's
    connections come a few at a time, tick after tick, and copying every row each time would
    cost the viewer more than its packets do."""
    old = len(state["ints"])
    if old >= n:
        return state
    if len(state["ints_all"]) < n:
        bigger = _fresh(0, max(2 * n, ROWS_AHEAD))  # (its first rows are copied over: none set up)
        for key in ("ints", "floats", "shares"):
            bigger[key + "_all"][:old] = state[key]
        state = dict(state, ints_all=bigger["ints_all"], floats_all=bigger["floats_all"],
                     shares_all=bigger["shares_all"])
    lim.grow_state(state["ints_all"][old:n], state["floats_all"][old:n], 0)
    return dict(state, ints=state["ints_all"][:n], floats=state["floats_all"][:n], shares=state["shares_all"][:n])


def _run(v, k0: int, m: int, state: dict) -> int:
    long = v.long[: v.n["long"]]
    while k0 < m:
        k0 = int(lim.limits_pass(v.segs, long, v.conns, k0, m, state["ints"], state["floats"], state["shares"],
                                 state["ep_i"], state["ep_f"], state["n_ep"]))
        if k0 < m:  # the episode table is full: double it (at the least, room for EPISODES_AHEAD)
            for key in ("ep_i", "ep_f"):
                old = state[key]
                state[key] = np.zeros((max(2 * len(old), EPISODES_AHEAD), old.shape[1]), dtype=old.dtype)
                state[key][: len(old)] = old
    return k0


def _finish(v, state: dict) -> Diagnoses:
    """The breakdown as it stands: open episodes closed, quiet stretches no data ended are idle."""
    ints, floats = state["ints"], state["floats"]
    n = len(ints)
    ne = int(state["n_ep"][0])
    ep_i, ep_f = [state["ep_i"][:ne]], [state["ep_f"][:ne]]
    open_ = np.flatnonzero(ints[:, lim.I_EP_CAT] >= 0)
    ep_i.append(np.column_stack([open_, ints[open_, lim.I_EP_CAT], ints[open_, lim.I_EP_ROW0],
                                 ints[open_, lim.I_EP_LAST]]))
    ep_f.append(np.column_stack([floats[open_, lim.F_EP_TS], floats[open_, lim.F_EP_S]]))
    pend = np.flatnonzero(ints[:, lim.I_PEND_ROW] >= 0)
    ep_i.append(np.column_stack([pend, np.full(len(pend), lim.IDLE), ints[pend, lim.I_PEND_ROW],
                                 ints[pend, lim.I_PREV]]))
    ep_f.append(np.column_stack([floats[pend, lim.F_PEND_TS], floats[pend, lim.F_PEND_S]]))
    held = np.flatnonzero(ints[:, lim.I_HELD_CAT] >= 0)
    ep_i.append(np.column_stack([held, _held_as(ints[held, lim.I_HELD_CAT]), ints[held, lim.I_HELD_ROW0],
                                 ints[held, lim.I_HELD_ROW1]]))
    ep_f.append(np.column_stack([floats[held, lim.F_HELD_TS], floats[held, lim.F_HELD_S]]))
    shares = _with_open(ints, floats, state["shares"])
    episodes = np.concatenate(ep_i).astype(np.int64).reshape(-1, 4)
    times = np.concatenate(ep_f).reshape(-1, 2)
    order = np.lexsort((episodes[:, lim.EP_ROW0], episodes[:, lim.EP_CONN]))
    duration = np.where(ints[:, lim.I_SEEN] > 0, floats[:, lim.F_LAST] - floats[:, lim.F_FIRST], 0.0)
    verdicts = _verdicts(ints, shares, duration)
    ids = np.asarray(v.ids(np.arange(n)), dtype=np.int64)
    return Diagnoses(v, ids, shares, duration, verdicts, ints.copy(), floats.copy(), episodes[order], times[order])


def _held_as(cats: np.ndarray) -> np.ndarray:
    """What a held wait (:func:`tcpview.engine.core.limits._settle`) counts as while nothing
    after it has come: its category otherwise, a quiet stretch's being idle."""
    return np.where(cats == lim.QUIET, lim.IDLE, cats)


def _with_open(ints: np.ndarray, floats: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """``shares`` (a copy) with the intervals still open counted as they stand: a quiet stretch
    no data ended yet as idle, a held wait as its category otherwise."""
    out = shares.copy()
    pend = ints[:, lim.I_PEND_ROW] >= 0
    out[pend, lim.IDLE] += floats[pend, lim.F_PEND_S]
    held = np.flatnonzero(ints[:, lim.I_HELD_CAT] >= 0)
    np.add.at(out, (held, _held_as(ints[held, lim.I_HELD_CAT])), floats[held, lim.F_HELD_S])
    return out


def _verdicts(ints: np.ndarray, shares: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """The largest category per connection, or too_short: nothing to time (fewer than two
    segments, no time passed), or a congestion / bottleneck verdict on a connection whose data
    fits in one initial window (it never had the chance to be held back: T-RAT's opportunity
    limited)."""
    n = len(ints)
    if not n:
        return np.zeros(0, dtype=np.int64)
    best = np.argmax(shares, axis=1).astype(np.int64)
    mss = np.maximum(np.maximum(ints[:, lim.I_MSS0], ints[:, lim.I_MSS1]), DEFAULT_MSS)
    most = np.maximum(ints[:, lim.I_BYTES0], ints[:, lim.I_BYTES1])
    small = (most < INITIAL_WINDOW * mss) & np.isin(best, (lim.CONGESTION, lim.BOTTLENECK))
    nothing = (ints[:, lim.I_SEGS] < 2) | (duration <= 0.0)
    best[small | nothing] = TOO_SHORT_CODE
    return best


# -- evidence ---------------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.3g} ms" if seconds >= 0.001 else f"{seconds * 1e6:.3g} µs"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return _ms(lo) if abs(hi - lo) < 1e-4 else f"{_ms(lo)}–{_ms(hi)}"


def _frames(a: int, b: int) -> str:
    return f"frame {a}" if a == b else f"frames {a}–{b}"


def _evidence(d: Diagnoses, row: int, eps: slice) -> tuple[list[dict], list[int]]:
    """The evidence for connection ``row``: its verdict's summary line, then each episode of
    the verdict, then a line for each other category holding a tenth of its time or more;
    and which items are those summary lines."""
    ints, floats = d.ints[row], d.floats[row]
    rows = d.episodes[eps]
    times = d.ep_times[eps]
    verdict = d.verdict(row)
    total = float(d.duration[row])
    out: list[dict] = []
    heads: list[int] = []
    if verdict == TOO_SHORT:
        first = int(ints[lim.I_EP_ROW0]) if ints[lim.I_EP_CAT] >= 0 else int(ints[lim.I_PREV])
        nbytes = int(ints[lim.I_BYTES0] + ints[lim.I_BYTES1])
        out.append({"frame": int(d.seg_frames[first]) if first >= 0 else None,
                    "ts": float(floats[lim.F_FIRST]),
                    "text": f"too short to say: {int(ints[lim.I_SEGS])} segments, {nbytes} bytes of data "
                            f"in {_ms(total)}"})
        return out, [0]
    shares = d.shares[row]
    first = CATEGORIES.index(verdict)
    ranked = [first] + [c for c in np.argsort(-shares).tolist()
                        if c != first and shares[c] > 0 and shares[c] >= 0.1 * total]
    for k, code in enumerate(ranked):
        mine = np.flatnonzero(rows[:, lim.EP_CAT] == code)
        if not len(mine):
            continue
        frames = [(a, b) for a, b in d.seg_frames[rows[mine][:, 2:4]].tolist()]
        secs = times[mine, lim.EP_SECS].tolist()
        summary = _summary(CATEGORIES[code], d, row, frames, secs, rows[mine])
        heads.append(len(out))
        out.append({"frame": frames[0][0], "ts": float(times[mine[0], lim.EP_TS]), "text": summary})
        if k == 0:  # the longest episodes (the ones that cost), in time order
            for j in sorted(np.argsort(-np.asarray(secs), kind="stable")[:MAX_EPISODES_SHOWN].tolist()):
                a, b = frames[j]
                out.append({"frame": a, "ts": float(times[mine[j], lim.EP_TS]),
                            "text": f"{LABELS[CATEGORIES[code]]} for {_ms(secs[j])} ({_frames(a, b)})"})
    return out, heads


def _summary(name: str, d: Diagnoses, row: int, frames: list[tuple[int, int]], secs: list[float],
             eps: np.ndarray) -> str:
    """One line saying how much of the connection went to ``name`` and the numbers behind it."""
    ints, floats = d.ints[row], d.floats[row]
    total = float(d.duration[row])
    share = float(d.shares[row, CATEGORIES.index(name)])
    head = f"{LABELS[name]}: {100 * share / total:.0f}% of {_ms(total)}; " if total > 0 else f"{LABELS[name]}: "
    where = _frames(frames[0][0], frames[-1][1])
    many = f"once, for {_ms(secs[0])}" if len(secs) == 1 else f"{len(secs)} times, each {_span(secs)}"
    data_dir = 1 if ints[lim.I_BYTES1] >= ints[lim.I_BYTES0] else 0
    sender, receiver = ("server", "client") if data_dir else ("client", "server")
    if name == "handshake":
        syns = int(ints[lim.I_SYNS])
        return head + f"the client sent its SYN {syns} time{'s' if syns != 1 else ''} ({where}); " \
                      f"the handshake took {_ms(share)}"
    if name == "server_response":
        return head + f"the server answered after {_span(secs)} ({len(secs)} request{'s' if len(secs) != 1 else ''}," \
                      f" {where})"
    if name == "application":
        v = d.view
        who = col.seg_dir(v.segs.fl[eps[:, lim.EP_ROW1]].astype(np.int64))
        by = ", ".join(f"the {side} sent again {n} time{'s' if n != 1 else ''}"
                       for side, n in (("server", int(who.sum())), ("client", int(len(who) - who.sum()))) if n)
        return head + f"nothing in flight and nothing sent {many} ({where}); then {by}"
    if name == "receive_window":
        zw = int(ints[lim.I_ZW])
        if zw:
            z0, z1 = int(d.seg_frames[ints[lim.I_ZW_ROW0]]), int(d.seg_frames[ints[lim.I_ZW_ROW1]])
            said = f"the {receiver} advertised a zero window {zw} time{'s' if zw != 1 else ''} ({_frames(z0, z1)}); "
        else:
            said = "in flight within a segment of the advertised window; "
        return head + said + f"held back {many}"
    if name == "congestion":
        return head + f"full-sized segments in flight below the {receiver}'s window, at most " \
                      f"{int(ints[lim.I_MAXFLIGHT])} bytes ({len(secs)} stretch{'es' if len(secs) != 1 else ''}, {where}); " \
                      f"{int(ints[lim.I_RETR])} retransmissions"
    if name == "loss_recovery":
        return head + f"{int(ints[lim.I_RETR])} retransmissions ({int(ints[lim.I_FAST])} fast), " \
                      f"{int(ints[lim.I_DUPACKS])} duplicate ACKs; recovering {many} ({where})"
    if name == "bottleneck":
        k = data_dir
        mn, mx = float(floats[lim.F_MINRTT0 + k]), float(floats[lim.F_MAXSRTT0 + k])
        if not np.isfinite(mn):
            k = 1 - k
            mn, mx = float(floats[lim.F_MINRTT0 + k]), float(floats[lim.F_MAXSRTT0 + k])
        return head + f"the RTT rose from {_ms(mn)} (its minimum) to {_ms(mx)} (smoothed) with the " \
                      f"{sender}'s data in flight: a queue ({where})"
    if name == "delayed_ack":
        n = int(ints[lim.I_DELACKS])
        return head + f"one segment or less in flight, then a wait of {_span(secs)} for its ACK, which the receiver " \
                      f"delayed, and the sender's next data right after it, {n} time{'s' if n != 1 else ''} ({where}): " \
                      f"Nagle's algorithm (TCP_NODELAY unset) holding a small write until the last is acknowledged, " \
                      f"or a window of one segment"
    return head + f"nothing in flight and no more data for {_span(secs)} ({where})"
