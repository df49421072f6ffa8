"""What held each connection back, interval by interval: the compiled pass behind ``tcpview
diagnose`` (:mod:`tcpview.engine.analysis.diagnosis` turns its numbers into verdicts).

One pass over the segment table, in capture order, keeps a few numbers per connection (a row
of ``ints`` and of ``floats``, columns named ``I_*`` / ``F_*`` below) and gives each interval
between two consecutive segments of a connection to one category, decided from what the
connection's state was when the interval began and the segment that ends it:

- ``handshake`` until the client's ACK of the SYN+ACK (or the first data);
- ``loss_recovery`` for the wait a retransmission ends (a timeout: its sender had no ACK,
  whether its data or the ACK was lost), whatever this vantage saw in flight;
- ``receive_window`` while either side's last word was a zero window, or one smaller than
  the other side's largest segment (either stops the sender, whatever is in flight), unless
  the sender is recovering a loss;
- with data in flight (``flight`` = highest byte sent - highest byte acknowledged, per
  direction; the busier direction decides): ``loss_recovery`` from a retransmission or the
  third duplicate ACK until everything outstanding then is acknowledged; ``bottleneck`` when the smoothed RTT stands above its
  minimum by more than ``max(QUEUE_FRACTION * min, QUEUE_FLOOR)`` (a queue at the bottleneck link: T-RAT's
  bandwidth-limited); ``receive_window`` when the flight is within a segment of the window;
  ``congestion`` when full-sized segments are in flight below the window (the congestion
  window holds the sender back);
- nothing in flight, or two segments or less after a segment shorter than the sender's
  largest (and than the MSS its receiver's SYN offered, less :data:`OPTION_ROOM`) or its FIN
  (it put out all it had: a message awaiting its ACK): a quiet stretch,
  decided when the next data comes: ``server_response`` when the server sends it after the client spoke last (or before
  anyone spoke), ``application`` otherwise (a sender paused, or the client thought), and
  ``idle`` when no data ever comes;
- ``delayed_ack``, before any of the last two (a wait decided by what comes after it): one
  segment or less in flight, a bare ACK of all of it that came at least
  :data:`DELACK_FLOOR` later than an ACK could (the least time this vantage saw the sender's
  segments take to the receiver and their ACK back), and the same sender's next data right
  after that ACK (within :data:`RELEASE_FLOOR` plus :data:`RELEASE_RTTS` times the least the
  ACK can take to reach the sender and its data come back; that time is the wait's too): the
  sender had more to send and waited for the ACK, which the receiver delayed (Nagle's algorithm holding a small segment back
  until everything before it is acknowledged, or a window of one segment). Such a wait is
  held until the connection's next segment says which it was.

The sum of a connection's intervals is its duration, so the shares add up exactly. Runs of
intervals of one category are episodes ``(conn, category, first row, row that ended it, start
time, seconds)``: the evidence a user can check. RTT samples follow Karn's rule (one timed
segment at a time, never a retransmitted one, nor one sent at the edge of the receiver's
window), and only from an ACK that covers two segments or more or leaves data in flight, and
not while the sender has filled the receiver's window: neither a delayed ACK of a lone segment
nor a receiver holding its ACK until it reads is taken for a queue.

The pass can stop and go on: ``k0 .. k`` are the rows to go through, the per-connection rows
and the episode table carry over between calls (a cursor that moves forward costs only the
rows it passed).
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, inlined, kernel
from .columns import F_HAVE_MSS, LONG_LEN, seg_analysis, seg_dir, seg_flags, seg_wshift
from .tcp import A_DUPACK, A_FAST_RETRANS, A_KEEPALIVE, A_RETRANS, A_WINPROBE, A_ZEROWIN, ACK, FIN, RST, SYN

M = 0xFFFFFFFF

# -- categories, by code (their names are tcpview.engine.analysis.diagnosis.CATEGORIES) ------------
(HANDSHAKE, SERVER_RESPONSE, APPLICATION, RECEIVE_WINDOW, CONGESTION, LOSS_RECOVERY, BOTTLENECK,
 IDLE, DELAYED_ACK) = range(9)
N_CATEGORIES = 9
QUIET = 9
"""Not a category: a quiet stretch, given one when the next data (or the end) says which."""

QUEUE_FLOOR = 0.002
"""Seconds of queueing (smoothed RTT above the minimum) below which no queue is claimed."""
QUEUE_FRACTION = 0.5
"""...and the fraction of the minimum RTT it must exceed (a path's own jitter scales with it)."""
SRTT_GAIN = 0.125  # RFC 6298's alpha
DELACK_FLOOR = 0.015
"""Seconds a bare ACK of one segment must come later than an ACK could to be a delayed one
(receivers delay theirs by 40 ms on Linux, up to 200 ms elsewhere)."""
RELEASE_FLOOR = 0.002
RELEASE_RTTS = 1.25
"""The sender's next data follows the delayed ACK within ``RELEASE_FLOOR + RELEASE_RTTS * t``,
``t`` the least time from this vantage to the sender and back: about 0 where the capture is at
the sender, one RTT where it is at the receiver."""

# -- the per-connection int64 row: a pair (client's, server's) where a name ends in 0 ----------------
(I_SEEN, I_PHASE, I_PREV, I_SYNACK, I_LASTDATA, I_PEND_ROW, I_EP_CAT, I_EP_ROW0, I_EP_LAST,
 I_HAVE0, I_HAVE1, I_NXT0, I_NXT1, I_NXTRAW0, I_NXTRAW1, I_UNA0, I_UNA1, I_RWND0, I_RWND1, I_MSS0, I_MSS1,
 I_LASTLEN0, I_LASTLEN1, I_REC0, I_REC1, I_DUP0, I_DUP1, I_TIMING0, I_TIMING1, I_BYTES0, I_BYTES1,
 I_ZW, I_ZW_ROW0, I_ZW_ROW1, I_RETR, I_FAST, I_DUPACKS, I_SYNS, I_MAXFLIGHT, I_SAMPLES, I_SEGS,
 I_FIN0, I_FIN1, I_HELD_CAT, I_HELD_ROW0, I_HELD_ROW1, I_HELD_DIR, I_DELACKS) = range(48)
N_INTS = 48
# I_RWND: the window the other side advertised for this direction's data (-1: not yet);
# I_REC: the recovery point (-1: not in recovery); I_TIMING: the end of the timed segment (-1: none)
# I_HELD_*: a wait that may be a delayed ACK's (its category otherwise; -1: none), its rows and
# whose data waited; I_DELACKS: the waits that were
(F_FIRST, F_LAST, F_PEND_TS, F_PEND_S, F_EP_TS, F_EP_S, F_TSTART0, F_TSTART1, F_MINRTT0, F_MINRTT1,
 F_SRTT0, F_SRTT1, F_MAXSRTT0, F_MAXSRTT1, F_SYN_TS, F_SYNACK_TS, F_HELD_TS, F_HELD_S) = range(18)
N_FLOATS = 18
PHASE_HANDSHAKE, PHASE_OPEN = 1, 2

# an episode's int64 columns, and its float64 ones
EP_CONN, EP_CAT, EP_ROW0, EP_ROW1 = range(4)
EP_TS, EP_SECS = range(2)


def new_state(n_conn: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh per-connection rows for ``n_conn`` connections."""
    ints = np.zeros((n_conn, N_INTS), dtype=np.int64)
    floats = np.zeros((n_conn, N_FLOATS), dtype=np.float64)
    grow_state(ints, floats, 0)
    return ints, floats


def grow_state(ints: np.ndarray, floats: np.ndarray, start: int) -> None:
    """Set rows ``start ..`` of the per-connection rows to their initial values."""
    ints[start:] = 0
    floats[start:] = 0.0
    for c in (I_LASTDATA, I_PEND_ROW, I_EP_CAT, I_RWND0, I_RWND1, I_REC0, I_REC1, I_TIMING0, I_TIMING1, I_ZW_ROW0,
              I_HELD_CAT):
        ints[start:, c] = -1
    floats[start:, F_MINRTT0:F_MINRTT1 + 1] = np.inf


@inlined
def _unwrap(raw: Int, ref_raw: Int, ref_rel: Int) -> Int:
    """A raw 32-bit sequence number as a 64-bit one relative to a known pair."""
    d = (raw - ref_raw) & M
    if d >= 0x80000000:
        d -= 0x100000000
    return ref_rel + d


@inlined
def _emit(ints, floats, c: Int, cat: Int, row0: Int, row1: Int, ts: float, secs: float,
          ep_i: np.ndarray, ep_f: np.ndarray, n_ep: np.ndarray) -> None:
    e = n_ep[0]
    ep_i[e, EP_CONN] = c
    ep_i[e, EP_CAT] = cat
    ep_i[e, EP_ROW0] = row0
    ep_i[e, EP_ROW1] = row1
    ep_f[e, EP_TS] = ts
    ep_f[e, EP_SECS] = secs
    n_ep[0] = e + 1


@inlined
def _add(ints, floats, shares, c: Int, cat: Int, t0: float, secs: float, row0: Int, row1: Int,
         ep_i: np.ndarray, ep_f: np.ndarray, n_ep: np.ndarray) -> None:
    """Give the interval ``row0 .. row1`` (from t0, secs long) to ``cat``: extend the open
    episode, or close it and open another."""
    shares[c, cat] += secs
    if ints[c, I_EP_CAT] == cat and ints[c, I_EP_LAST] == row0:
        floats[c, F_EP_S] += secs
    else:
        if ints[c, I_EP_CAT] >= 0:
            _emit(ints, floats, c, ints[c, I_EP_CAT], ints[c, I_EP_ROW0], ints[c, I_EP_LAST], floats[c, F_EP_TS],
                  floats[c, F_EP_S], ep_i, ep_f, n_ep)
        ints[c, I_EP_CAT] = cat
        ints[c, I_EP_ROW0] = row0
        floats[c, F_EP_TS] = t0
        floats[c, F_EP_S] = secs
    ints[c, I_EP_LAST] = row1


OPTION_ROOM = 40
"""The most a segment's TCP options take: a segment this much shorter than the MSS its
receiver's SYN offered is not a full-sized one, whatever the largest seen so far."""


@inlined
def _offered(conns, c: Int, x: Int) -> Int:
    """The MSS side ``x``'s SYN offered (its option), 0 where none was seen."""
    if c >= len(conns) or not np.int64(conns[c].fl) & (F_HAVE_MSS << x):
        return 0
    return np.int64(conns[c].mss[x])


@inlined
def _classify(ints, floats, conns, c: Int, d: Int, span: Int, bits: Int) -> Int:
    """The category of the interval that segment (direction d, ``span`` bytes of sequence
    space: its payload and FIN, analysis bits) ends, from the connection's state before it
    (``conns``: the connection table, for the MSS each side's SYN offered)."""
    if ints[c, I_PHASE] == PHASE_HANDSHAKE:
        return HANDSHAKE
    f0 = ints[c, I_NXT0] - ints[c, I_UNA0] if ints[c, I_HAVE0] else 0
    f1 = ints[c, I_NXT1] - ints[c, I_UNA1] if ints[c, I_HAVE1] else 0
    b = 0 if f0 >= f1 else 1
    f = f0 if b == 0 else f1
    if span > 0 and bits & A_RETRANS and not bits & (A_KEEPALIVE | A_WINPROBE):
        return LOSS_RECOVERY  # the wait it ends: its sender had no ACK (lost data, or a lost ACK)
    if f > 0 and ints[c, I_REC0 + b] >= 0:
        return LOSS_RECOVERY
    for x in range(2):  # a window shut, or too small for a segment, stops its sender (RFC 9293's SWS avoidance)
        rw = ints[c, I_RWND0 + x]
        if rw == 0 or (0 <= rw < ints[c, I_MSS0 + x]):
            return RECEIVE_WINDOW
    if f <= 0:
        return QUIET
    rw = ints[c, I_RWND0 + b]
    mn = floats[c, F_MINRTT0 + b]
    srtt = floats[c, F_SRTT0 + b]
    if srtt > 0.0 and srtt - mn > max(QUEUE_FRACTION * mn, QUEUE_FLOOR):
        return BOTTLENECK
    mss = ints[c, I_MSS0 + b]
    if rw > 0 and f + mss > rw:
        return RECEIVE_WINDOW
    full = max(mss, _offered(conns, c, 1 - b) - OPTION_ROOM)
    if (ints[c, I_LASTLEN0 + b] < full or ints[c, I_FIN0 + b]) and f <= 2 * mss:
        return QUIET  # the sender put out all it had, and it is a message awaiting its ACK
    return CONGESTION


@inlined
def _beyond(floats, c: Int, x: Int) -> float:
    """How long a segment of side ``x`` takes from this vantage to the other end and its ACK
    back (the least seen: the handshake's, or an RTT sample of x's data), or 0 unknown."""
    m = floats[c, F_MINRTT0 + x]
    return m if np.isfinite(m) else 0.0


@inlined
def _delack_wait(ints, floats, c: Int, d: Int, cat: Int, flags: Int, plen: Int, ack: Int, dt: float) -> bool:
    """Whether the wait a segment (direction d) ends may be a delayed ACK's: a bare ACK of
    all the other side had in flight, one segment or less, that came :data:`DELACK_FLOOR`
    later than an ACK could (:func:`_beyond`), where the wait was otherwise a quiet stretch or the congestion
    window's (what comes next decides: :func:`_settle`)."""
    if cat != QUIET and cat != CONGESTION:
        return False
    if plen > 0 or not flags & ACK or flags & (SYN | FIN | RST):
        return False
    o = 1 - d
    if not ints[c, I_HAVE0 + o]:
        return False
    f = ints[c, I_NXT0 + o] - ints[c, I_UNA0 + o]
    if f <= 0 or f > ints[c, I_MSS0 + o]:
        return False
    if _unwrap(ack, ints[c, I_NXTRAW0 + o], ints[c, I_NXT0 + o]) < ints[c, I_NXT0 + o]:
        return False
    return dt - _beyond(floats, c, o) >= DELACK_FLOOR


@inlined
def _quiet(ints, floats, c: Int, row0: Int, t0: float, secs: float) -> None:
    """Add a quiet stretch's interval to the one waiting for its next data."""
    if ints[c, I_PEND_ROW] < 0:
        ints[c, I_PEND_ROW] = row0
        floats[c, F_PEND_TS] = t0
    floats[c, F_PEND_S] += secs


@inlined
def _hold(ints, floats, c: Int, cat: Int, row0: Int, row1: Int, waiting: Int, t0: float, secs: float) -> None:
    """Hold the wait ``row0 .. row1`` (its category otherwise ``cat``; side ``waiting``'s data
    waited) until the next segment says whether it was a delayed ACK's (:func:`_settle`)."""
    ints[c, I_HELD_CAT] = cat
    ints[c, I_HELD_ROW0] = row0
    ints[c, I_HELD_ROW1] = row1
    ints[c, I_HELD_DIR] = waiting
    floats[c, F_HELD_TS] = t0
    floats[c, F_HELD_S] = secs


@inlined
def _settle(ints, floats, shares, c: Int, d: Int, plen: Int, bits: Int, ts: float,
            ep_i: np.ndarray, ep_f: np.ndarray, n_ep: np.ndarray) -> bool:
    """The next segment (direction d) decides a held wait: ``delayed_ack`` when it is the
    waiting side's new data, right after the ACK (True: the time since the ACK, which this
    data ends, was the same wait: the ACK on its way to the sender, the data on its way back);
    else what it was otherwise."""
    held = ints[c, I_HELD_CAT]
    ints[c, I_HELD_CAT] = -1
    row0, row1 = ints[c, I_HELD_ROW0], ints[c, I_HELD_ROW1]
    t0, secs = floats[c, F_HELD_TS], floats[c, F_HELD_S]
    # (from the ACK, at t0 + secs, to this segment: the ACK reaches the waiting side and its data
    # comes back, the other side's part of the RTT)
    soon = ts - (t0 + secs) <= RELEASE_FLOOR + RELEASE_RTTS * _beyond(floats, c, 1 - ints[c, I_HELD_DIR])
    if plen > 0 and d == ints[c, I_HELD_DIR] and not bits & A_RETRANS and soon:
        ints[c, I_DELACKS] += 1
        _add(ints, floats, shares, c, DELAYED_ACK, t0, secs, row0, row1, ep_i, ep_f, n_ep)
        return True
    if held == QUIET:
        _quiet(ints, floats, c, row0, t0, secs)
    else:
        _add(ints, floats, shares, c, held, t0, secs, row0, row1, ep_i, ep_f, n_ep)
    return False


@inlined
def _resolve(ints, floats, shares, c: Int, d: Int, row: Int,
             ep_i: np.ndarray, ep_f: np.ndarray, n_ep: np.ndarray) -> None:
    """A data segment from direction d ends the quiet stretch before it: give it its category."""
    if ints[c, I_PEND_ROW] < 0:
        return
    last = ints[c, I_LASTDATA]
    cat = SERVER_RESPONSE if d == 1 and last != 1 else APPLICATION
    secs = floats[c, F_PEND_S]
    shares[c, cat] += secs
    _emit(ints, floats, c, cat, ints[c, I_PEND_ROW], row, floats[c, F_PEND_TS], secs, ep_i, ep_f, n_ep)
    ints[c, I_PEND_ROW] = -1
    floats[c, F_PEND_S] = 0.0


@inlined
def _first_long(long: np.ndarray, row: Int) -> Int:
    lo, hi = 0, len(long)
    while lo < hi:
        mid = (lo + hi) >> 1
        if long[mid, 0] < row:
            lo = mid + 1
        else:
            hi = mid
    return long[lo, 1] if lo < len(long) and long[lo, 0] == row else LONG_LEN


@inlined
def _track(ints, floats, c: Int, i: Int, s, d: Int, flags: Int, bits: Int, plen: Int) -> None:
    """What segment i (direction d) tells of the connection: phase, sequence, ACK, window, RTT."""
    o = 1 - d
    ts = s.ts
    fl = np.int64(s.fl)
    ints[c, I_SEGS] += 1
    if ints[c, I_PHASE] == PHASE_HANDSHAKE:
        if flags & SYN and not flags & ACK:
            ints[c, I_SYNS] += 1
            floats[c, F_SYN_TS] = ts
        if flags & SYN and flags & ACK:
            ints[c, I_SYNACK] += 1
            floats[c, F_SYNACK_TS] = ts
        elif flags & RST:
            pass  # refused, or reset before it opened: its time stays the handshake's
        elif plen > 0 or (flags & ACK and not flags & SYN and ints[c, I_SYNACK]):
            ints[c, I_PHASE] = PHASE_OPEN
            if ints[c, I_SYNS] == 1 and ints[c, I_SYNACK] == 1:
                # the path's RTT before any data queued: each side's first sample (Karn: only
                # when neither SYN was sent twice)
                floats[c, F_MINRTT0] = floats[c, F_SYNACK_TS] - floats[c, F_SYN_TS]
                floats[c, F_MINRTT1] = ts - floats[c, F_SYNACK_TS]
    seq = np.int64(s.seq)
    if flags & SYN:
        ints[c, I_HAVE0 + d] = 1
        ints[c, I_NXTRAW0 + d] = (seq + 1) & M
        ints[c, I_NXT0 + d] = 0
        ints[c, I_UNA0 + d] = 0
        seq = (seq + 1) & M
    elif not ints[c, I_HAVE0 + d]:
        ints[c, I_HAVE0 + d] = 1
        ints[c, I_NXTRAW0 + d] = seq
    rel = _unwrap(seq, ints[c, I_NXTRAW0 + d], ints[c, I_NXT0 + d])
    span = plen + 1 if flags & FIN else plen  # a FIN takes a number too: its ACK (or its loss) counts
    if plen > 0:
        ints[c, I_BYTES0 + d] += plen
        end = rel + plen
        if bits & A_RETRANS:
            ints[c, I_RETR] += 1
            if bits & A_FAST_RETRANS:
                ints[c, I_FAST] += 1
            if ints[c, I_TIMING0 + d] >= 0 and rel < ints[c, I_TIMING0 + d]:
                ints[c, I_TIMING0 + d] = -1  # Karn: no sample across a retransmission
            if ints[c, I_REC0 + d] < 0 and ints[c, I_NXT0 + d] > ints[c, I_UNA0 + d]:
                ints[c, I_REC0 + d] = ints[c, I_NXT0 + d]
        if end > ints[c, I_NXT0 + d]:
            ints[c, I_NXT0 + d] = end
            ints[c, I_NXTRAW0 + d] = (seq + plen) & M
            ints[c, I_LASTLEN0 + d] = plen
            if plen > ints[c, I_MSS0 + d]:
                ints[c, I_MSS0 + d] = plen
            rw = ints[c, I_RWND0 + d]
            room = rw < 0 or end + ints[c, I_MSS0 + d] < ints[c, I_UNA0 + d] + rw
            if ints[c, I_TIMING0 + d] < 0 and not bits & A_RETRANS and room:
                # (a segment sent at the window's edge is acknowledged when the reader makes
                # room, not when it arrives: its time says nothing of the path)
                ints[c, I_TIMING0 + d] = end
                floats[c, F_TSTART0 + d] = ts
    if flags & FIN:
        ints[c, I_FIN0 + d] = 1
        if rel + span > ints[c, I_NXT0 + d]:
            ints[c, I_NXT0 + d] = rel + span
            ints[c, I_NXTRAW0 + d] = (seq + span) & M
        elif bits & A_RETRANS and plen == 0 and ints[c, I_REC0 + d] < 0:
            ints[c, I_REC0 + d] = ints[c, I_NXT0 + d]
    if flags & ACK and ints[c, I_HAVE0 + o]:
        a = _unwrap(np.int64(s.ack), ints[c, I_NXTRAW0 + o], ints[c, I_NXT0 + o])
        una = ints[c, I_UNA0 + o]
        if a > una:
            if a > ints[c, I_NXT0 + o]:  # it acknowledges data the capture did not see
                ints[c, I_NXTRAW0 + o] = np.int64(s.ack)
                ints[c, I_NXT0 + o] = a
            ints[c, I_UNA0 + o] = a
            ints[c, I_DUP0 + o] = 0
            timed = ints[c, I_TIMING0 + o]
            if timed >= 0 and a >= timed:
                ints[c, I_TIMING0 + o] = -1
                # not a delayed ACK of a lone segment (it covers two, or more was sent after it),
                # nor one a full receiver held until its reader made room
                mss = ints[c, I_MSS0 + o]
                rw = ints[c, I_RWND0 + o]
                full = rw >= 0 and ints[c, I_NXT0 + o] - una + mss > rw
                if (a - una >= 2 * mss or ints[c, I_NXT0 + o] > a) and not full:
                    rtt = ts - floats[c, F_TSTART0 + o]
                    ints[c, I_SAMPLES] += 1
                    if rtt < floats[c, F_MINRTT0 + o]:
                        floats[c, F_MINRTT0 + o] = rtt
                    sr = floats[c, F_SRTT0 + o]
                    sr = rtt if sr == 0.0 else sr + SRTT_GAIN * (rtt - sr)
                    floats[c, F_SRTT0 + o] = sr
                    if sr > floats[c, F_MAXSRTT0 + o]:
                        floats[c, F_MAXSRTT0 + o] = sr
            if ints[c, I_REC0 + o] >= 0 and a >= ints[c, I_REC0 + o]:
                ints[c, I_REC0 + o] = -1
        elif a == una and bits & A_DUPACK:
            ints[c, I_DUPACKS] += 1
            ints[c, I_DUP0 + o] += 1
            if ints[c, I_DUP0 + o] >= 3 and ints[c, I_REC0 + o] < 0 and ints[c, I_NXT0 + o] > una:
                ints[c, I_REC0 + o] = ints[c, I_NXT0 + o]
    if flags & ACK:
        win = np.int64(s.win)
        if not flags & SYN:
            win = win << seg_wshift(fl)
        ints[c, I_RWND0 + o] = win
        if bits & A_ZEROWIN:
            ints[c, I_ZW] += 1
            if ints[c, I_ZW_ROW0] < 0:
                ints[c, I_ZW_ROW0] = i
            ints[c, I_ZW_ROW1] = i
    if ints[c, I_HAVE0 + d]:
        flight = ints[c, I_NXT0 + d] - ints[c, I_UNA0 + d]
        if flight > ints[c, I_MAXFLIGHT]:
            ints[c, I_MAXFLIGHT] = flight


@kernel
def limits_pass(segs, long: np.ndarray, conns, k0: Int, k: Int, ints: np.ndarray,
                floats: np.ndarray, shares: np.ndarray, ep_i: np.ndarray, ep_f: np.ndarray, n_ep: np.ndarray) -> Int:
    """Go through segment rows ``k0 .. k-1``: each connection's intervals into ``shares``
    (``(n_conn, N_CATEGORIES)`` seconds), closed episodes into ``ep_i`` / ``ep_f`` from row
    ``n_ep[0]`` on (``long``: the long segments' (row, length) pairs; ``conns``: the connection
    table, for the MSS each side's SYN offered). Returns the row it
    stopped at: ``k``, or earlier when the episode table has room for fewer than three more."""
    for i in range(k0, k):
        if n_ep[0] + 3 > len(ep_i):
            return i
        s = segs[i]
        c = np.int64(s.conn)
        fl = np.int64(s.fl)
        flags = seg_flags(fl)
        d = seg_dir(fl)
        bits = seg_analysis(fl)
        plen: Int = np.int64(s.len)
        if plen == LONG_LEN:
            plen = _first_long(long, i)
        ts = s.ts
        if not ints[c, I_SEEN]:
            ints[c, I_SEEN] = 1
            floats[c, F_FIRST] = ts
            floats[c, F_LAST] = ts
            ints[c, I_PHASE] = PHASE_HANDSHAKE if flags & SYN else PHASE_OPEN
        else:
            released = ints[c, I_HELD_CAT] >= 0 and _settle(ints, floats, shares, c, d, plen, bits, ts,
                                                             ep_i, ep_f, n_ep)
            dt = ts - floats[c, F_LAST]
            if dt > 0.0:
                cat = DELAYED_ACK if released else _classify(ints, floats, conns, c, d,
                                                             plen + 1 if flags & FIN else plen, bits)
                prev = ints[c, I_PREV]
                if _delack_wait(ints, floats, c, d, cat, flags, plen, np.int64(s.ack), dt):
                    _hold(ints, floats, c, cat, prev, i, 1 - d, floats[c, F_LAST], dt)
                elif cat == QUIET:
                    _quiet(ints, floats, c, prev, floats[c, F_LAST], dt)
                else:
                    _add(ints, floats, shares, c, cat, floats[c, F_LAST], dt, prev, i, ep_i, ep_f, n_ep)
            floats[c, F_LAST] = ts
        if plen > 0:
            _resolve(ints, floats, shares, c, d, i, ep_i, ep_f, n_ep)
        _track(ints, floats, c, i, s, d, flags, bits, plen)
        if plen > 0 and not bits & A_RETRANS:
            ints[c, I_LASTDATA] = d
        ints[c, I_PREV] = i
    return k
