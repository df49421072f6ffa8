"""What one TCP segment does to the tables, step by step: the steps of the compiled loop
(:func:`tcpview.engine.core.loop.track` calls them in this order for each segment), each an
inlined function named for what it decides:

:func:`decoded` (the fields ``decode_frame`` read), :func:`find_connection` (made now if it
is new), :func:`analysis_state` (the row of Wireshark's analysis it goes on from),
:func:`restart_analysis` (where that analysis starts again at a SYN), :func:`set_bases` (the
relative sequence bases), :func:`read_syn_options`, :func:`remember_sent` (what the sender
sent last), :func:`analyse_sequence` (Wireshark's expert bits), :func:`note_sack`,
:func:`run_state_machine` (both endpoints' states: :mod:`tcpview.engine.core.statemachine`),
:func:`start_timers`, :func:`store_segment` (its row) and :func:`time_transitions`.

The steps take the tables as one :class:`~tcpview.engine.core.columns.TableArrays`
(``tables``); the helpers compiled apart take only the arrays they use (numba passes every
field of a tuple at each call of such a function).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...jit import Int, helper, inlined
from .columns import (
    F_BASE_HIST,
    F_BASE_SET,
    F_HAVE_LACK,
    F_HAVE_LWIN,
    F_HAVE_MSS,
    F_HAVE_NXT,
    F_HAVE_SYN,
    F_IN_TABLE,
    F_PARTIAL,
    F_RESET,
    F_SACK_PERM,
    F_SYN_OPTS,
    LONG_LEN,
    N_ADDR6,
    N_ANA,
    N_ANOM,
    N_BASE_HIST,
    N_CONN,
    N_DUPACK,
    N_LONG,
    N_SACK,
    N_SEG,
    N_SEG_BACK,
    N_TRANS,
    N_TRANS_TS,
    NEXT_ID,
    NO_ROW,
    SEG_CLOCK,
    SEG_TUNNEL_SHIFT,
    TRANS_CLOCK,
    dupack_value,
    seg_word,
    trans_new,
    trans_side,
)
from .connhash import NO_CONN, find
from .decode import (
    O_ACK,
    O_DPORT,
    O_DST_HI,
    O_DST_LO,
    O_FAM,
    O_FLAGS,
    O_NLAYERS,
    O_PLEN,
    O_SEQ,
    O_SPORT,
    O_SRC_HI,
    O_SRC_LO,
    O_THL,
    O_TOFF,
    O_WIN,
)
from .seqanalysis import after as analyse_after
from .seqanalysis import analyse, carry, reset_both, state_of
from .statemachine import apply_segment, has_bit, seq_ge, syn_starts_new
from .tcp import (
    A_REUSED,
    ACK,
    CLOSED,
    ESTABLISHED,
    FIN,
    FIN_WAIT_2,
    RST,
    SYN,
    TIME_WAIT,
    WHY_MIDSTREAM,
    WHY_REUSED,
    WS_NONE,
    WS_UNKNOWN,
    M,
)
from .tcpopts import ABSENT, sack_delivered, syn_options
from .transitions import TransitionLog, add_transition, clamp_time, last_of_side, note_pair, push_timer


class Timeouts(NamedTuple):
    """How long the states that end by a timer last, in seconds of capture time."""

    time_wait: float  # 2*MSL (Linux: 60)
    fin_wait_2: float  # an orphaned FIN_WAIT_2 (Linux tcp_fin_timeout: 60)


class Decoded(NamedTuple):
    """One TCP segment's fields as :func:`~tcpview.engine.core.decode.decode_frame` read them."""

    fam: int  # 4 or 6
    src_hi: int  # the source address (an IPv4 address in src_lo)
    src_lo: int
    sport: int
    dst_hi: int
    dst_lo: int
    dport: int
    seq: int  # raw
    ack: int  # raw
    flags: int  # the TCP header's flags byte
    win: int  # raw window
    plen: int  # payload bytes
    options: int  # where its TCP options are in the batch's buffer: options .. options_end
    options_end: int  # (no further than the frame's captured bytes)
    tunneled: int  # 1: it came through a tunnel or an encapsulation (decode_frame walked layers)


@inlined
def decoded(fields: np.ndarray, frame_end: Int) -> Decoded:
    """The segment ``decode_frame`` left in ``fields``; ``frame_end`` is where its frame's
    captured bytes end in the buffer."""
    options = fields[O_TOFF] + 20
    return Decoded(fields[O_FAM], fields[O_SRC_HI], fields[O_SRC_LO], fields[O_SPORT], fields[O_DST_HI],
                   fields[O_DST_LO], fields[O_DPORT], fields[O_SEQ], fields[O_ACK], fields[O_FLAGS],
                   fields[O_WIN], fields[O_PLEN], options, min(fields[O_TOFF] + fields[O_THL], frame_end),
                   1 if fields[O_NLAYERS] > 1 else 0)


@helper
def _new_conn(conns, addrs6: np.ndarray, hash_table: np.ndarray, counts: np.ndarray, slot: Int, old: Int,
              seg: Decoded, ts: float) -> tuple:
    """A connection for ``seg``'s 4-tuple at hash slot ``slot`` (taking it over from row ``old``
    unless that is NO_CONN): ``(its row, the segment's sender)``. The sender of a SYN is the
    client; of anything else, the side with the ephemeral port (picked up mid-stream)."""
    flags = seg.flags
    if flags & SYN:
        sender_is_client = not flags & ACK
    elif (seg.sport < 1024) != (seg.dport < 1024):
        sender_is_client = seg.dport < 1024
    else:
        sender_is_client = seg.sport >= seg.dport
    c = counts[N_CONN]
    counts[N_CONN] = c + 1
    conn = conns[c]
    conn.cid = counts[NEXT_ID]
    counts[NEXT_ID] += 1
    conn.fam = seg.fam
    if sender_is_client:
        ch, cl, cp, sh, sl, spt = seg.src_hi, seg.src_lo, seg.sport, seg.dst_hi, seg.dst_lo, seg.dport
        sender = 0
    else:
        ch, cl, cp, sh, sl, spt = seg.dst_hi, seg.dst_lo, seg.dport, seg.src_hi, seg.src_lo, seg.sport
        sender = 1
    if seg.fam == 4:
        conn.caddr = cl
        conn.saddr = sl
    else:
        a = counts[N_ADDR6]
        counts[N_ADDR6] = a + 1
        addrs6[a, 0] = ch
        addrs6[a, 1] = cl
        addrs6[a, 2] = sh
        addrs6[a, 3] = sl
        conn.caddr = a
        conn.saddr = a
    conn.port[0] = cp
    conn.port[1] = spt
    conn.fl = F_IN_TABLE
    conn.first_ts = ts
    conn.anom = 0
    for x in range(2):
        conn.state[x] = CLOSED
        conn.seqbase[x] = 0
        conn.nxt[x] = 0
        conn.fin[x] = 0
        conn.syn[x] = 0
        conn.lack[x] = 0
        conn.lwin[x] = 0
        conn.wscale[x] = WS_UNKNOWN
        conn.shift[x] = 0
        conn.gen[x] = 0
        conn.mss[x] = 0
        conn.ws[x] = ABSENT
    conn.ana = 0
    conn.row0 = NO_ROW
    if old != NO_CONN:
        conns[old].fl &= ~np.uint32(F_IN_TABLE)
    hash_table[slot] = c + 1
    return c, sender


# -- the steps of one segment, in order ------------------------------------------------------------------
@inlined
def find_connection(tables, seg: Decoded, ts: float) -> tuple:
    """Which connection ``seg`` belongs to, made now if it is new: ``(row, sender, found,
    previous, new_stream)``. ``found``: its 4-tuple was known, owned by row ``previous``
    (another row than ``row`` when a SYN started a new connection on it: the old one's
    sockets are gone on both hosts, as Linux kills a TIME_WAIT socket that a new SYN reuses).
    ``new_stream``: Wireshark starts a new tcp.stream here (a SYN with another ISN than the
    sender's base: its analysis starts again), whether or not the state machine does."""
    slot, c, sender = find(tables.hash, tables.conns, tables.addrs6, seg.fam, seg.src_hi, seg.src_lo,
                           seg.sport, seg.dst_hi, seg.dst_lo, seg.dport)
    found = c != NO_CONN
    previous = c
    bare_syn = (seg.flags & (SYN | ACK)) == SYN
    new_stream = False
    if found and bare_syn:
        conn = tables.conns[c]
        new_stream = has_bit(conn.fl, F_BASE_SET, sender) and seg.seq != conn.seqbase[sender]
    if not found:
        c, sender = _new_conn(tables.conns, tables.addrs6, tables.hash, tables.counts, slot, NO_CONN, seg, ts)
    elif bare_syn and syn_starts_new(tables.conns[c], sender, seg.seq):
        log = TransitionLog(tables.conns, tables.trans, tables.counts)
        for side in range(2):
            add_transition(log, c, side, CLOSED, WHY_REUSED)
        c, sender = _new_conn(tables.conns, tables.addrs6, tables.hash, tables.counts, slot, c, seg, ts)
    return c, sender, found, previous, new_stream


@inlined
def analysis_state(tables, c: Int, previous: Int, found: bool, new_stream: bool, row: Int) -> Int:
    """The row of Wireshark's analysis state that segment ``row`` of connection c goes on
    from. A connection made just now starts at this row; when it took its 4-tuple over but
    Wireshark's stream goes on, so does the analysis of the connection it replaced."""
    if not found or c != previous:
        tables.conns[c].row0 = row
        if found and not new_stream:
            was = state_of(tables, previous, row)
            k = tables.counts[N_ANA]
            tables.counts[N_ANA] = k + 1
            tables.conns[c].ana = k
            carry(tables.ana, was, k)
    return state_of(tables, c, row)


@inlined
def restart_analysis(conn, ana, sender: Int, seg: Decoded, took_over: bool, new_stream: bool) -> Int:
    """Where Wireshark's analysis starts again at a SYN; returns the analysis bits it sets
    (reused ports). A new stream starts afresh; the same SYN again rewinds nextseq; a SYN+ACK
    with another ISN moves the base and does nothing else."""
    if new_stream:
        reset_both(ana)  # (a connection the state machine just made is fresh already)
        return A_REUSED
    syn_ack = seg.flags & (SYN | ACK)
    if syn_ack == SYN and (has_bit(conn.fl, F_BASE_SET, sender) or took_over):
        ana.a_nxt[sender] = ana.a_maxack[sender]
    elif syn_ack == (SYN | ACK) and has_bit(conn.fl, F_BASE_SET, sender) and seg.seq != conn.seqbase[sender]:
        return A_REUSED
    return 0


@inlined
def set_bases(tables, c: Int, sender: Int, seg: Decoded, row: Int) -> None:
    """The relative sequence bases, as Wireshark sets them: the sender's from a SYN (even
    after earlier segments, e.g. an injected RST) or its first segment; the receiver's from
    the first ACK it gets. A base that moves is kept in ``base_hist``."""
    conn = tables.conns[c]
    seq = seg.seq
    flags = seg.flags
    if not has_bit(conn.fl, F_BASE_SET, sender) or (flags & SYN and not has_bit(conn.fl, F_HAVE_SYN, sender)):
        base = seq if flags & SYN else (seq - 1) & M
        if has_bit(conn.fl, F_BASE_SET, sender) and base != conn.seqbase[sender]:
            h = tables.counts[N_BASE_HIST]
            tables.counts[N_BASE_HIST] = h + 1
            hist = tables.base_hist
            hist[h, 0] = c
            hist[h, 1] = row
            hist[h, 2] = sender
            hist[h, 3] = conn.seqbase[sender]
            conn.fl |= F_BASE_HIST
        conn.seqbase[sender] = base
        conn.fl |= F_BASE_SET << sender
    receiver = 1 - sender
    if flags & ACK and not has_bit(conn.fl, F_BASE_SET, receiver):
        conn.seqbase[receiver] = (seg.ack - 1) & M
        conn.fl |= F_BASE_SET << receiver


@inlined
def read_syn_options(conn, sender: Int, buf: np.ndarray, seg: Decoded) -> Int:
    """What a SYN's options say about its sender (window scale, MSS, SACK permitted); returns
    the window-scale shift for the analysis (``WS_NONE`` for a segment that is not a SYN)."""
    if not seg.flags & SYN:
        return np.int64(WS_NONE)
    has_options = seg.options_end > seg.options
    if has_options:
        shift, mss, ws, sack = syn_options(buf, seg.options, seg.options_end)
    else:
        shift, mss, ws, sack = np.int64(WS_NONE), np.int64(ABSENT), np.int64(ABSENT), False
    conn.wscale[sender] = shift
    conn.ws[sender] = ws
    conn.fl &= ~np.uint32((F_SACK_PERM | F_SYN_OPTS | F_HAVE_MSS) << sender)
    if mss != ABSENT:
        conn.mss[sender] = mss
        conn.fl |= F_HAVE_MSS << sender
    if sack:
        conn.fl |= F_SACK_PERM << sender
    if has_options:
        conn.fl |= F_SYN_OPTS << sender
    # Wireshark: a direction scales by its SYN's shift unless the peer's SYN had none
    for x in range(2):
        wsx = conn.wscale[x]
        conn.shift[x] = wsx if wsx >= 0 and conn.wscale[1 - x] != WS_NONE else 0
    return shift


@inlined
def remember_sent(conn, sender: Int, seg: Decoded) -> None:
    """What the state machine keeps of the sender's segment: the next sequence number (a RST
    is measured against it; a zero-window probe's byte is not consumed and a RST does not
    move it), its last ACK and window."""
    flags = seg.flags
    seq = seg.seq
    receiver = 1 - sender
    fl = conn.fl
    have_nxt = has_bit(fl, F_HAVE_NXT, sender)
    nxt = np.int64(conn.nxt[sender])
    end = (seq + seg.plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & M
    probe = ((flags & 0x17) == ACK and seg.plen == 1 and have_nxt and seq == nxt
             and has_bit(fl, F_HAVE_LWIN, receiver) and conn.lwin[receiver] == 0)
    if not probe and (not have_nxt or (seq_ge(end, nxt) and end != nxt and not flags & RST)):
        conn.nxt[sender] = end
        conn.fl |= F_HAVE_NXT << sender
    conn.lack[sender] = seg.ack
    conn.lwin[sender] = seg.win
    conn.fl |= (F_HAVE_LACK | F_HAVE_LWIN) << sender


@inlined
def analyse_sequence(tables, ana, sender: Int, seg: Decoded, frame: Int, ts: float, bits: Int, ws_shift: Int,
                      row: Int) -> Int:
    """Wireshark's sequence analysis of segment ``row``: its expert bits (a duplicate ACK's
    number and the frame it repeats go to ``dupack``)."""
    bits, dupn = analyse(ana, sender, seg.seq, seg.ack, seg.plen, seg.flags, seg.win, frame, ts, bits)
    if dupn:
        repeats = np.int64(ana.a_nondup[sender])  # the frame whose ACK it repeats
        note_pair(tables.dupack, tables.counts, N_DUPACK, row, dupack_value(repeats, dupn))
    analyse_after(ana, sender, seg.flags, ts, ws_shift)
    return bits


@inlined
def note_sack(tables, buf: np.ndarray, seg: Decoded, row: Int) -> None:
    """The bytes the segment's SACK blocks cover (bytes in flight leave them out)."""
    if seg.options_end > seg.options and not seg.flags & SYN:
        delivered = sack_delivered(buf, seg.options, seg.options_end)
        if delivered != ABSENT:
            note_pair(tables.sack, tables.counts, N_SACK, row, delivered)


@inlined
def run_state_machine(tables, c: Int, sender: Int, seg: Decoded, found: bool, anomaly: Int) -> Int:
    """Both endpoints' states after the segment; returns its anomaly bits. An invalid flag
    combination (``anomaly``) moves nothing. A connection whose first segment is not a SYN
    was picked up mid-stream: both ESTABLISHED, or reset at once by a RST."""
    conn = tables.conns[c]
    log = TransitionLog(tables.conns, tables.trans, tables.counts)
    flags = seg.flags
    if anomaly:
        conn.anom |= anomaly
    elif not found and not flags & SYN:
        if flags & RST:
            conn.fl |= F_PARTIAL | F_RESET
        else:
            conn.fl |= F_PARTIAL
            add_transition(log, c, 0, ESTABLISHED, WHY_MIDSTREAM)
            add_transition(log, c, 1, ESTABLISHED, WHY_MIDSTREAM)
            apply_segment(log, c, sender, seg.seq, seg.ack, flags, seg.plen)
    else:
        anomaly = apply_segment(log, c, sender, seg.seq, seg.ack, flags, seg.plen)
        if anomaly:
            conn.anom |= anomaly
    return anomaly


@inlined
def start_timers(tables, c: Int, first_tr: Int, ts: float, timeouts: Timeouts) -> None:
    """A side that the segment's transitions (``first_tr`` on) left in TIME_WAIT or
    FIN_WAIT_2 gets its timer."""
    trans = tables.trans
    n = tables.counts[N_TRANS]
    for k in range(first_tr, n):
        if trans[k].conn == c:
            code = np.int64(trans[k].code)
            side = trans_side(code)
            conn = tables.conns[c]
            state = conn.state[side]
            if trans_new(code) == state and last_of_side(trans, k, n, c, side):
                if state == TIME_WAIT:
                    push_timer(tables.timers, tables.counts, ts + timeouts.time_wait, c, side, TIME_WAIT,
                               np.int64(conn.gen[side]))
                elif state == FIN_WAIT_2:
                    push_timer(tables.timers, tables.counts, ts + timeouts.fin_wait_2, c, side, FIN_WAIT_2,
                               np.int64(conn.gen[side]))


@inlined
def store_segment(tables, row: Int, seg: Decoded, c: Int, sender: Int, frame: Int, ts: float, bits: Int,
                   anomaly: Int) -> float:
    """The segment's row; returns the time stored (times never go back in the table: where
    the capture's clock did, the real one is kept aside)."""
    counts = tables.counts
    key = clamp_time(tables.clocks, SEG_CLOCK, ts, tables.seg_back, counts, N_SEG_BACK, row)
    counts[N_SEG] = row + 1
    stored = tables.segs[row]
    stored.ts = key
    stored.frame = frame
    stored.conn = c
    stored.seq = seg.seq
    stored.ack = seg.ack
    if seg.plen >= LONG_LEN:
        stored.len = LONG_LEN
        note_pair(tables.long, counts, N_LONG, row, seg.plen)
    else:
        stored.len = seg.plen
    stored.win = seg.win
    wshift = 0 if seg.flags & SYN else np.int64(tables.conns[c].shift[sender])
    stored.fl = seg_word(seg.flags, sender, wshift, bits) | (seg.tunneled << SEG_TUNNEL_SHIFT)
    if anomaly:
        note_pair(tables.anom, counts, N_ANOM, row, anomaly)
    return key


@inlined
def time_transitions(tables, first_tr: Int, ts: float, key: float) -> None:
    """The transitions the segment caused happened at its time, kept in order against the
    transitions before them only (a stray future time stamp elsewhere in the capture does not
    move them); where that is not the time its row got (``key``), it goes to ``trans_ts``."""
    clocks = tables.clocks
    for k in range(first_tr, tables.counts[N_TRANS]):
        at = ts if ts >= clocks[TRANS_CLOCK] else clocks[TRANS_CLOCK]
        clocks[TRANS_CLOCK] = at
        if at != key:
            note_pair(tables.trans_ts, tables.counts, N_TRANS_TS, k, at)
