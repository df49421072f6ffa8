"""Wireshark's TCP sequence analysis, segment by segment, inside the compiled loop.

The definition is Wireshark's ``tcp_analyze_sequence_number()`` (``epan/dissectors/
packet-tcp.c``, 4.0): the same per-direction state (``nextseq``, ``maxseqtobeacked``,
``lastack`` and its time, the last raw window, the duplicate-ACK count and the frame it
counts from, the flags of the direction's previous segment), the same tests in the same order,
with the same 32-bit arithmetic and the same quirks (0 means "not seen yet"; the duplicate-ACK
count is unsigned, so "ACKed unseen segment" leaves it at 2**32 - 1). What Wireshark keeps
per segment in lists (the unacknowledged segments, for ``ack_rtt`` and bytes in flight) is
not kept here: :mod:`tcpview.engine.core.rtt` replays a connection's segments for those, when they
are asked for.

All sequence numbers here are raw (absolute); windows are raw (unscaled) but for the
window-full test, as Wireshark's.
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, helper, inlined
from .columns import LONG_LEN, N_ANA, N_LONG, NO_ROW, seg_analysis, seg_dir, seg_flags
from .tcp import (
    A_ACK_LOST,
    A_DUPACK,
    A_FAST_RETRANS,
    A_KAACK,
    A_KEEPALIVE,
    A_LOST,
    A_OUT_OF_ORDER,
    A_RETRANS,
    A_REUSED,
    A_SPURIOUS,
    A_WINDOW_FULL,
    A_WINDOW_UPDATE,
    A_WINPROBE,
    A_WINPROBE_ACK,
    A_ZEROWIN,
    ACK,
    FIN,
    HALF,
    RST,
    SYN,
    WS_NONE,
    WS_UNKNOWN,
    M,
)

NO_WINDOW = 0xFFFFFFFF  # no window seen yet (Wireshark's G_MAXUINT32)
FAST_RETRANS_WITHIN_US = 20_000  # microseconds since the peer's last segment
OUT_OF_ORDER_WITHIN_US = 3_000  # microseconds since nextseq moved, when there is no initial RTT


@inlined
def us(seconds: float) -> Int:
    """A time difference in whole microseconds, as Wireshark compares its nanosecond times:
    a capture's times are whole microseconds (or finer), but as float64 seconds since 1970
    each is off by up to 0.12 µs, so two differences that are equal in the capture could
    compare either way (a segment exactly one initial RTT after nextseq moved is a
    retransmission to Wireshark, and was out of order here in 52 of 300 such cases)."""
    return np.int64(np.floor(seconds * 1e6 + 0.5))


@inlined
def gt(x: Int, y: Int) -> bool:
    """Wireshark's GT_SEQ(x, y): (gint32)(y - x) < 0."""
    return ((y - x) & M) >= HALF


@inlined
def lt(x: Int, y: Int) -> bool:
    """LT_SEQ(x, y): (gint32)(x - y) < 0."""
    return ((x - y) & M) >= HALF


@inlined
def le(x: Int, y: Int) -> bool:
    """LE_SEQ(x, y): (gint32)(x - y) <= 0."""
    d = (x - y) & M
    return d == 0 or d >= HALF


@inlined
def reset(ana, x: Int) -> None:
    """Direction x's analysis state as Wireshark starts a flow."""
    ana.a_nxt[x] = 0
    ana.a_maxack[x] = 0
    ana.a_lack[x] = 0
    ana.a_win[x] = NO_WINDOW
    ana.a_nondup[x] = 0
    ana.a_dupn[x] = 0
    ana.a_nxt_ts[x] = 0.0
    ana.a_last_ts[x] = 0.0
    ana.a_lastfl[x] = 0
    ana.a_wsc[x] = WS_UNKNOWN
    ana.a_first_ack[x] = 0


@inlined
def reset_both(ana) -> None:
    """A new conversation for Wireshark: both directions and the RTT anchors start again."""
    reset(ana, 0)
    reset(ana, 1)
    ana.a_syn_ts = 0.0
    ana.a_irtt = 0.0


@inlined
def state_of(tables, c: Int, row: Int) -> Int:
    """The analysis row of connection c for its segment in ``row``: the scratch row (fresh)
    for its first segment; else its own, made now if it has none, from its first segment
    (stored in ``row0``; gone, when that row left: then it starts fresh)."""
    conn = tables.conns[c]
    if conn.ana != 0:
        return np.int64(conn.ana)
    if conn.row0 == row:
        reset_both(tables.ana[0])
        return np.int64(0)
    return make_state(tables.conns, tables.ana, tables.segs, tables.long, tables.counts, c, row)


@helper
def make_state(conns, anas, segs, longs: np.ndarray, counts: np.ndarray, c: Int, row: Int) -> Int:
    """Connection c's own analysis row, made from its first segment (see :func:`state_of`).

    It takes the tables it uses, not all of them: numba passes every field of a tuple to a
    function it compiles apart."""
    conn = conns[c]
    k = counts[N_ANA]
    counts[N_ANA] = k + 1
    ana = anas[k]
    reset_both(ana)
    conn.ana = k
    first = np.int64(conn.row0)
    if first != NO_ROW and first < row:
        seg = segs[first]
        fl = np.int64(seg.fl)
        flags = seg_flags(fl)
        sender = seg_dir(fl)
        plen = np.int64(seg.len)
        if plen == LONG_LEN:
            for j in range(counts[N_LONG]):
                if longs[j, 0] == first:
                    plen = longs[j, 1]
        analyse(ana, sender, np.int64(seg.seq), np.int64(seg.ack), plen, flags, np.int64(seg.win),
                np.int64(seg.frame), seg.ts, seg_analysis(fl) & A_REUSED)
        after(ana, sender, flags, seg.ts, np.int64(conn.wscale[sender]) if flags & SYN else np.int64(WS_NONE))
    return k


@inlined
def carry(anas, old: Int, new: Int) -> None:
    """Analysis row ``new`` goes on from ``old`` (of table ``anas``): where the state machine
    starts a new connection (a second SYN after an odd first one) but Wireshark's stream goes on."""
    was = anas[old]
    now = anas[new]
    for x in range(2):
        now.a_nxt[x] = was.a_nxt[x]
        now.a_maxack[x] = was.a_maxack[x]
        now.a_lack[x] = was.a_lack[x]
        now.a_win[x] = was.a_win[x]
        now.a_nondup[x] = was.a_nondup[x]
        now.a_dupn[x] = was.a_dupn[x]
        now.a_nxt_ts[x] = was.a_nxt_ts[x]
        now.a_last_ts[x] = was.a_last_ts[x]
        now.a_lastfl[x] = was.a_lastfl[x]
        now.a_wsc[x] = was.a_wsc[x]
        now.a_first_ack[x] = was.a_first_ack[x]
    now.a_syn_ts = was.a_syn_ts
    now.a_irtt = was.a_irtt


@inlined
def analyse(ana, dr: Int, seq: Int, ack: Int, seglen: Int, flags: Int, win: Int, frame: Int, ts: float,
            bits: Int) -> tuple[Int, Int]:
    """Run Wireshark's sequence analysis for one segment with analysis row ``ana`` sent in
    direction ``dr``; ``bits`` are flags found before it (reused ports). Returns the analysis
    bits and the duplicate-ACK count (0 when it is not one)."""
    fwd = dr
    rev = 1 - dr
    quiet = (flags & (SYN | FIN | RST)) == 0
    nxt = np.int64(ana.a_nxt[fwd])
    dupn: Int = 0
    # A1: zero-window probe (skips to the ACK bookkeeping)
    if seglen == 1 and seq == nxt and ana.a_win[rev] == 0:
        bits |= A_WINPROBE
    else:
        if win == 0 and quiet:  # A2
            bits |= A_ZEROWIN
        if nxt != 0 and gt(seq, nxt) and (flags & RST) == 0:  # A3: previous segment not captured
            bits |= A_LOST
        if seglen <= 1 and seq == ((nxt - 1) & M) and quiet:  # A4
            bits |= A_KEEPALIVE
        same = seq == nxt and ack == ana.a_lack[fwd] and quiet
        if seglen == 0 and win != 0 and win != ana.a_win[fwd] and same:  # A5
            bits |= A_WINDOW_UPDATE
        if seglen > 0 and ana.a_wsc[rev] != WS_UNKNOWN and quiet:  # A6
            sh = 0 if (ana.a_first_ack[rev] != 0 or ana.a_wsc[rev] == WS_NONE) else np.int64(ana.a_wsc[rev])
            if ((seq + seglen) & M) == ((np.int64(ana.a_lack[rev]) + ((np.int64(ana.a_win[rev]) << sh) & M)) & M):
                bits |= A_WINDOW_FULL
        if seglen == 0 and win != 0 and win == ana.a_win[fwd] and same and (ana.a_lastfl[rev] & A_KEEPALIVE):  # A7
            bits |= A_KAACK
        elif seglen == 0 and win == 0 and win == ana.a_win[fwd] and same and (ana.a_lastfl[rev] & A_WINPROBE):  # A8
            bits |= A_WINPROBE_ACK
        elif seglen == 0 and win != 0 and win == ana.a_win[fwd] and same:  # A9
            if ana.a_dupn[fwd] == M:
                ana.a_dupn[fwd] = 1
            else:
                ana.a_dupn[fwd] = (np.int64(ana.a_dupn[fwd]) + 1) & M
            bits |= A_DUPACK
            dupn = np.int64(ana.a_dupn[fwd])
    # B1: a new ACK value ends a run of duplicates
    if ack != ana.a_lack[fwd]:
        ana.a_nondup[fwd] = frame
        ana.a_dupn[fwd] = 0
    # B2: ACKed unseen segment
    rmax = np.int64(ana.a_maxack[rev])
    if rmax != 0 and gt(ack, rmax) and (flags & ACK) != 0:
        if lt(rmax, np.int64(ana.a_nxt[rev])):
            ana.a_maxack[rev] = ana.a_nxt[rev]
            bits |= A_ACK_LOST
        else:
            if ana.a_dupn[rev] == 0:
                bits |= A_ACK_LOST
            ana.a_dupn[rev] = M
    # C: retransmission, fast, spurious, out of order
    synfin = 1 if flags & (SYN | FIN) else 0
    if (seglen > 0 or synfin) and (bits & A_KEEPALIVE) == 0:
        behind = nxt != 0 and lt(seq, nxt)
        if seglen > 1 and ((nxt - 1) & M) == seq:
            behind = False
        rl = np.int64(ana.a_lack[rev])
        if seglen > 0 and rl != 0 and le((seq + seglen) & M, rl):
            bits |= A_SPURIOUS | A_RETRANS
        else:
            since_peer = us(ts - ana.a_last_ts[rev])
            since_nxt = us(ts - ana.a_nxt_ts[fwd])
            within = us(ana.a_irtt) if ana.a_irtt > 0.0 else OUT_OF_ORDER_WITHIN_US
            if behind and ana.a_dupn[rev] >= 2 and rl == seq and 0 <= since_peer < FAST_RETRANS_WITHIN_US:
                bits |= A_FAST_RETRANS | A_RETRANS
            elif behind and 0 <= since_nxt < within and nxt != ((seq + seglen + synfin) & M):
                bits |= A_OUT_OF_ORDER
            elif behind:
                bits |= A_RETRANS
    # D: the direction's state after it
    nseq = (seq + seglen + synfin) & M
    if (bits & A_WINPROBE) == 0:
        if gt(nseq, nxt) or nxt == 0:
            ana.a_nxt[fwd] = nseq
            ana.a_nxt_ts[fwd] = ts
        if seq == ana.a_maxack[fwd] or ana.a_maxack[fwd] == 0:
            ana.a_maxack[fwd] = ana.a_nxt[fwd]
    ana.a_win[fwd] = win
    ana.a_lack[fwd] = ack
    ana.a_last_ts[fwd] = ts
    ana.a_lastfl[fwd] = bits
    return bits, dupn


@inlined
def after(ana, dr: Int, flags: Int, ts: float, ws_shift: Int) -> None:
    """What Wireshark does after a segment's analysis: the time of the last SYN and the initial
    RTT, whether the sender's window is still unscaled (its first ACK), the window-scale shift
    of a SYN (``ws_shift``: ``WS_NONE`` when it had no option)."""
    if (flags & (SYN | ACK)) == SYN:
        ana.a_syn_ts = ts
    if flags & SYN:
        ana.a_first_ack[dr] = 1
    if (flags & (SYN | ACK)) == ACK:
        if ana.a_syn_ts != 0.0 and ana.a_irtt == 0.0:
            ana.a_irtt = ts - ana.a_syn_ts
        ana.a_first_ack[dr] = 0
    if flags & SYN:
        if ws_shift >= 0:
            ana.a_wsc[dr] = ws_shift
        if ana.a_wsc[dr] == WS_UNKNOWN:
            ana.a_wsc[dr] = WS_NONE
            ana.a_wsc[1 - dr] = WS_NONE
        elif (flags & ACK) and ana.a_wsc[1 - dr] == WS_NONE:
            ana.a_wsc[dr] = WS_NONE
