"""The compiled hot loop: decode every frame of a batch, find its connection, analyse it and
run both endpoints' state machines (:mod:`tcpview.engine.core.statemachine`, whose docstring
holds the passive rules), then store the segment.

Relative sequence numbers keep Wireshark's bases; analysis bits follow Wireshark's
definitions (retransmission, duplicate ACK, zero window, keep-alive, zero-window probe, ACK
to a keep-alive).

:func:`track` is the one entry point for frames; it works through a batch until it ends or a
table is full, and says which (``cnt[STATUS]``), so the caller grows that table and calls
again from where it stopped. :func:`expire` lets capture time pass (timers fire).
Connections are found by their 4-tuple in an open-addressing hash table of row numbers.
"""

from __future__ import annotations

import numpy as np

from ...jit import helper, inlined, kernel
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
    FIRST_TS,
    LAST_TS,
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
    N_TIMERS,
    N_TRANS,
    N_TRANS_BACK,
    N_TRANS_TS,
    NEED_HASH,
    NEED_NOTHING,
    NEXT_ID,
    NO_ROW,
    PACKETS,
    SEG_CLOCK,
    STATUS,
    TCP_PACKETS,
    TRANS_CLOCK,
    dupack_value,
    seg_word,
    trans_new,
    trans_side,
)
from .connhash import find
from .decode import (
    O_ACK,
    O_DPORT,
    O_DST_HI,
    O_DST_LO,
    O_FAM,
    O_FLAGS,
    O_LINKTYPE,
    O_PLEN,
    O_SEQ,
    O_SPORT,
    O_SRC_HI,
    O_SRC_LO,
    O_THL,
    O_TOFF,
    O_WIN,
    UNSUPPORTED_LINK,
    decode_frame,
    sack_delivered,
    syn_options,
)
from .seqanalysis import after as analyse_after
from .seqanalysis import analyse, carry, reset_both, state_of
from .statemachine import apply_segment, flag_anomaly, has_bit, seq_ge, syn_starts_new
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
    M,
)
from .transitions import add_transition, clamp_time, expire, last_of_side, note_pair, push_timer

ROOM = 8  # transitions (and timers) one segment can add at most: a reuse, a handshake, a close



@helper
def _new_conn(C, H: np.ndarray, A6: np.ndarray, cnt: np.ndarray, slot: int, old: int, fam: int, s_hi: int,  # type: ignore[no-untyped-def]
              s_lo: int, sp: int, d_hi: int, d_lo: int, dp: int, flags: int, ts: float) -> tuple:
    if flags & SYN:
        sender_is_client = not flags & ACK
    elif (sp < 1024) != (dp < 1024):
        # picked up mid-stream: the client is the side with the ephemeral port
        sender_is_client = dp < 1024
    else:
        sender_is_client = sp >= dp
    c = cnt[N_CONN]
    cnt[N_CONN] = c + 1
    r = C[c]
    r.cid = cnt[NEXT_ID]
    cnt[NEXT_ID] += 1
    r.fam = fam
    if sender_is_client:
        ch, cl, cp, sh, sl, spt = s_hi, s_lo, sp, d_hi, d_lo, dp
        dr = 0
    else:
        ch, cl, cp, sh, sl, spt = d_hi, d_lo, dp, s_hi, s_lo, sp
        dr = 1
    if fam == 4:
        r.caddr = cl
        r.saddr = sl
    else:
        a = cnt[N_ADDR6]
        cnt[N_ADDR6] = a + 1
        A6[a, 0] = ch
        A6[a, 1] = cl
        A6[a, 2] = sh
        A6[a, 3] = sl
        r.caddr = a
        r.saddr = a
    r.port[0] = cp
    r.port[1] = spt
    r.fl = F_IN_TABLE
    r.first_ts = ts
    r.anom = 0
    for x in range(2):
        r.state[x] = CLOSED
        r.seqbase[x] = 0
        r.nxt[x] = 0
        r.fin[x] = 0
        r.syn[x] = 0
        r.lack[x] = 0
        r.lwin[x] = 0
        r.wscale[x] = -1
        r.shift[x] = 0
        r.gen[x] = 0
        r.mss[x] = 0
        r.ws[x] = -1
    r.ana = 0
    r.row0 = NO_ROW
    if old >= 0:
        C[old].fl &= ~np.uint32(F_IN_TABLE)
    H[slot] = c + 1
    return c, dr


@inlined
def _segment(b: np.ndarray, d: np.ndarray, C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, DA, SK, AA, H, cnt: np.ndarray,  # type: ignore[no-untyped-def]
             clk: np.ndarray, params: np.ndarray, frame: int, ts: float, fend: int) -> None:
    """Apply one decoded TCP segment (its fields in ``d``) and store it."""
    cnt[TCP_PACKETS] += 1
    fam = d[O_FAM]
    s_hi = d[O_SRC_HI]
    s_lo = d[O_SRC_LO]
    d_hi = d[O_DST_HI]
    d_lo = d[O_DST_LO]
    sp = d[O_SPORT]
    dp = d[O_DPORT]
    seq = d[O_SEQ]
    ack = d[O_ACK]
    flags = d[O_FLAGS]
    win = d[O_WIN]
    plen = d[O_PLEN]
    slot, c, dr = find(H, C, A6, fam, s_hi, s_lo, sp, d_hi, d_lo, dp)
    found = c >= 0
    old = c
    # Wireshark starts a new tcp.stream at a SYN with another ISN than the sender's base (its
    # analysis starts again, the SYN is "reused ports"), whether or not the state machine does
    new_stream = False
    if found and (flags & (SYN | ACK)) == SYN:
        new_stream = has_bit(C[c].fl, F_BASE_SET, dr) and seq != C[c].seqbase[dr]
    if not found:
        c, dr = _new_conn(C, H, A6, cnt, slot, -1, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, flags, ts)
    elif (flags & (SYN | ACK)) == SYN and syn_starts_new(C, c, dr, seq):
        # a new connection takes over the 4-tuple: the old one's sockets are gone on both
        # hosts (Linux kills a TIME_WAIT socket that a new SYN reuses), as ss shows
        for side in range(2):
            add_transition(C, T, cnt, c, side, CLOSED, WHY_REUSED)
        c, dr = _new_conn(C, H, A6, cnt, slot, c, fam, s_hi, s_lo, sp, d_hi, d_lo, dp, flags, ts)
    row = cnt[N_SEG]  # the row this segment gets
    if not found or c != old:
        C[c].row0 = row
        if found and not new_stream:  # Wireshark's stream goes on: so does its analysis
            was = state_of(C, old, AA, S, LG, cnt, cnt[N_LONG], row)
            k = cnt[N_ANA]
            cnt[N_ANA] = k + 1
            C[c].ana = k
            carry(AA, was, k)
    rcv = 1 - dr
    r = C[c]
    a = AA[state_of(C, c, AA, S, LG, cnt, cnt[N_LONG], row)]
    bits = A_REUSED if new_stream else 0
    if new_stream:
        reset_both(a)  # (a connection the state machine just made is fresh already)
    elif (flags & (SYN | ACK)) == SYN and (has_bit(r.fl, F_BASE_SET, dr) or (found and c != old)):
        a.a_nxt[dr] = a.a_maxack[dr]  # the same SYN again: Wireshark rewinds nextseq
    elif (flags & (SYN | ACK)) == (SYN | ACK) and has_bit(r.fl, F_BASE_SET, dr) and seq != r.seqbase[dr]:
        bits = A_REUSED  # a SYN+ACK with another ISN: Wireshark moves the base, nothing else
    first_tr = cnt[N_TRANS]

    # relative sequence bases, as Wireshark sets them
    if not has_bit(r.fl, F_BASE_SET, dr) or (flags & SYN and not has_bit(r.fl, F_HAVE_SYN, dr)):
        # a SYN sets the base even after earlier non-SYN segments (e.g. an injected RST)
        nb = seq if flags & SYN else (seq - 1) & M
        if has_bit(r.fl, F_BASE_SET, dr) and nb != r.seqbase[dr]:
            h = cnt[N_BASE_HIST]
            cnt[N_BASE_HIST] = h + 1
            BH[h, 0] = c
            BH[h, 1] = row
            BH[h, 2] = dr
            BH[h, 3] = r.seqbase[dr]
            r.fl |= F_BASE_HIST
        r.seqbase[dr] = nb
        r.fl |= F_BASE_SET << dr
    if flags & ACK and not has_bit(r.fl, F_BASE_SET, rcv):
        r.seqbase[rcv] = (ack - 1) & M
        r.fl |= F_BASE_SET << rcv

    ws_shift = np.int64(-2)
    if flags & SYN:
        thl = d[O_THL]
        o_start = d[O_TOFF] + 20
        o_end = min(d[O_TOFF] + thl, fend)
        if thl > 20:
            shift, mss, ows, sack = syn_options(b, o_start, o_end)
        else:
            shift, mss, ows, sack = np.int64(-2), np.int64(-1), np.int64(-1), False
        r.wscale[dr] = shift
        ws_shift = shift
        r.ws[dr] = ows
        keep = ~np.uint32((F_SACK_PERM | F_SYN_OPTS | F_HAVE_MSS) << dr)
        r.fl &= keep
        if mss >= 0:
            r.mss[dr] = mss
            r.fl |= F_HAVE_MSS << dr
        if sack:
            r.fl |= F_SACK_PERM << dr
        if thl > 20 and o_end > o_start:
            r.fl |= F_SYN_OPTS << dr
        # Wireshark: a direction scales by its SYN's shift unless the peer's SYN had none
        for x in range(2):
            wsx = r.wscale[x]
            r.shift[x] = wsx if wsx >= 0 and r.wscale[1 - x] != -2 else 0

    anomaly = flag_anomaly(flags)

    # the next sequence number the state machine measures a RST against; a zero-window probe's
    # byte is not consumed, and a RST does not move it
    fl = r.fl
    have_nxt = has_bit(fl, F_HAVE_NXT, dr)
    nxt = np.int64(r.nxt[dr])
    end = (seq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & M
    probe = ((flags & 0x17) == ACK and plen == 1 and have_nxt and seq == nxt and has_bit(fl, F_HAVE_LWIN, rcv)
             and r.lwin[rcv] == 0)
    if not probe and (not have_nxt or (seq_ge(end, nxt) and end != nxt and not flags & RST)):
        r.nxt[dr] = end
        r.fl |= F_HAVE_NXT << dr

    # Wireshark's sequence analysis: its expert flags
    bits, dupn = analyse(a, dr, seq, ack, plen, flags, win, frame, ts, bits)
    if dupn:
        note_pair(DA, cnt, N_DUPACK, row, dupack_value(np.int64(a.a_nondup[dr]), dupn))
    analyse_after(a, dr, flags, ts, ws_shift)
    if d[O_THL] > 20 and not flags & SYN:  # SACK blocks: bytes in flight leave out what they cover
        delivered = sack_delivered(b, d[O_TOFF] + 20, min(d[O_TOFF] + d[O_THL], fend))
        if delivered >= 0:
            note_pair(SK, cnt, N_SACK, row, delivered)
    r.lack[dr] = ack
    r.lwin[dr] = win
    r.fl |= (F_HAVE_LACK | F_HAVE_LWIN) << dr

    if anomaly:
        r.anom |= anomaly
    elif not found and not flags & SYN:
        if flags & RST:
            r.fl |= F_PARTIAL | F_RESET
        else:
            # picked up mid-stream
            r.fl |= F_PARTIAL
            add_transition(C, T, cnt, c, 0, ESTABLISHED, WHY_MIDSTREAM)
            add_transition(C, T, cnt, c, 1, ESTABLISHED, WHY_MIDSTREAM)
            apply_segment(C, T, cnt, c, dr, seq, ack, flags, plen)
    else:
        anomaly = apply_segment(C, T, cnt, c, dr, seq, ack, flags, plen)
        if anomaly:
            r.anom |= anomaly

    # a side that this segment left in TIME_WAIT or FIN_WAIT_2 gets its timer
    for k in range(first_tr, cnt[N_TRANS]):
        tk = T[k]
        if tk.conn == c:
            side = trans_side(np.int64(tk.code))
            st = C[c].state[side]
            if trans_new(np.int64(tk.code)) == st and last_of_side(T, k, cnt[N_TRANS], c, side):
                if st == TIME_WAIT:
                    push_timer(Q, cnt, ts + params[0], c, side, TIME_WAIT, np.int64(C[c].gen[side]))
                elif st == FIN_WAIT_2:
                    push_timer(Q, cnt, ts + params[1], c, side, FIN_WAIT_2, np.int64(C[c].gen[side]))

    # the segment's row: times never go back in the table (the real one is kept aside)
    key = clamp_time(clk, SEG_CLOCK, ts, SB, cnt, N_SEG_BACK, row)
    cnt[N_SEG] = row + 1
    s = S[row]
    s.ts = key
    s.frame = frame
    s.conn = c
    s.seq = seq
    s.ack = ack
    if plen >= LONG_LEN:
        s.len = LONG_LEN
        note_pair(LG, cnt, N_LONG, row, plen)
    else:
        s.len = plen
    s.win = win
    wshift = 0 if flags & SYN else np.int64(r.shift[dr])
    s.fl = seg_word(flags, dr, wshift, bits)
    if anomaly:
        note_pair(AN, cnt, N_ANOM, row, anomaly)
    # the transitions it caused happened at its time, kept in order against the transitions
    # before them only (a stray future time stamp elsewhere in the capture does not move them)
    for k in range(first_tr, cnt[N_TRANS]):
        tkey = ts if ts >= clk[TRANS_CLOCK] else clk[TRANS_CLOCK]
        clk[TRANS_CLOCK] = tkey
        if tkey != key:
            note_pair(TT, cnt, N_TRANS_TS, k, tkey)


@helper
def _count_unsupported(skip: np.ndarray, linktype: int) -> None:
    """Count a frame of a link type the decoder does not read: ``skip[16:]`` holds
    (link type + 1, count) pairs."""
    for i in range(16, len(skip) - 1, 2):
        if skip[i] == 0 or skip[i] == linktype + 1:
            skip[i] = linktype + 1
            skip[i + 1] += 1
            return
    skip[UNSUPPORTED_LINK] += 1  # more kinds than there are pairs: counted without its number


@inlined
def _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, DA, SK, AA, H: np.ndarray, cnt: np.ndarray) -> int:  # type: ignore[no-untyped-def]
    """Which table lacks room for one more frame (its counter's index), or NEED_NOTHING."""
    if cnt[N_CONN] + 2 > len(C):
        return N_CONN
    if (cnt[N_CONN] + 2) * 2 > len(H):
        return NEED_HASH
    if cnt[N_SEG] + 1 > len(S):
        return N_SEG
    if cnt[N_TRANS] + ROOM > len(T):
        return N_TRANS
    if cnt[N_TIMERS] + ROOM > len(Q):
        return N_TIMERS
    if cnt[N_ADDR6] + 2 > len(A6):
        return N_ADDR6
    if cnt[N_SEG_BACK] + 1 > len(SB):
        return N_SEG_BACK
    if cnt[N_TRANS_BACK] + 1 > len(TB):
        return N_TRANS_BACK
    if cnt[N_BASE_HIST] + 2 > len(BH):
        return N_BASE_HIST
    if cnt[N_LONG] + 1 > len(LG):
        return N_LONG
    if cnt[N_ANOM] + 1 > len(AN):
        return N_ANOM
    if cnt[N_TRANS_TS] + ROOM > len(TT):
        return N_TRANS_TS
    if cnt[N_DUPACK] + 1 > len(DA):
        return N_DUPACK
    if cnt[N_SACK] + 1 > len(SK):
        return N_SACK
    if cnt[N_ANA] + 2 > len(AA):
        return N_ANA
    return NEED_NOTHING


@kernel
def track(b: np.ndarray, F, i: int, C, S, T, Q, A6: np.ndarray, SB: np.ndarray, TB: np.ndarray,  # type: ignore[no-untyped-def]
          BH: np.ndarray, LG: np.ndarray, AN: np.ndarray, TT: np.ndarray, DA: np.ndarray, SK: np.ndarray, AA, H: np.ndarray, cnt: np.ndarray,
          clk: np.ndarray, skip: np.ndarray, params: np.ndarray, d: np.ndarray) -> int:
    """Decode and track frames ``i ..`` of a batch; returns where it stopped.

    ``F`` describes the frames (:data:`tcpview.sources.batch.FRAME`): frame k is
    ``b[F[k].off : F[k].off + F[k].caplen]``. It stops early when a table is full
    (``cnt[STATUS]`` says which: the index of its counter, or NEED_HASH); frames before the returned index are
    done. ``params`` is ``(2*MSL, FIN timeout)`` in seconds; ``d`` is room for one frame's decoded
    fields (OUT_SIZE integers).
    """
    n = len(F)
    while i < n:
        need = _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, DA, SK, AA, H, cnt)
        if need != NEED_NOTHING:
            cnt[STATUS] = need
            return i
        f = F[i]
        o = np.int64(f.off)
        cl = np.int64(f.caplen)
        ts = f.ts
        code = decode_frame(b, o, cl, np.int64(f.origlen), np.int64(f.linktype), d)
        if code == 0 and cnt[N_TIMERS] > 0 and Q[0].deadline <= ts:
            if not expire(C, T, Q, TB, TT, cnt, clk, ts):
                return i
            need = _room(C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, DA, SK, AA, H, cnt)
            if need != NEED_NOTHING:
                cnt[STATUS] = need
                return i
        cnt[PACKETS] += 1
        if cnt[PACKETS] == 1:
            clk[FIRST_TS] = ts
            clk[LAST_TS] = ts
        elif ts > clk[LAST_TS]:
            clk[LAST_TS] = ts
        if code == UNSUPPORTED_LINK:
            _count_unsupported(skip, d[O_LINKTYPE])
        elif code != 0:
            skip[code] += 1
        else:
            _segment(b, d, C, S, T, Q, A6, SB, TB, BH, LG, AN, TT, DA, SK, AA, H, cnt, clk, params, np.int64(f.frame), ts, o + cl)
        i += 1
    cnt[STATUS] = NEED_NOTHING
    return i
