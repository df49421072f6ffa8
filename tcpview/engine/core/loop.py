"""The compiled hot loop: decode every frame of a batch and track each TCP segment in the steps
of :mod:`tcpview.engine.core.segment` (find its connection, analyse it, run both endpoints'
state machines, whose passive rules are in :mod:`tcpview.engine.core.statemachine`, then
store it).

Relative sequence numbers keep Wireshark's bases; analysis bits follow Wireshark's
definitions (retransmission, duplicate ACK, zero window, keep-alive, zero-window probe, ACK
to a keep-alive).

:func:`track` is the one entry point for frames; it works through a batch until it ends or a
table is full, and says which (``counts[STATUS]``), so the caller grows that table and calls
again from where it stopped. :func:`~tcpview.engine.core.transitions.expire` lets capture
time pass (timers fire). Connections are found by their 4-tuple in an open-addressing hash
table of row numbers (:mod:`tcpview.engine.core.connhash`).

The kernels take the tables as one :class:`~tcpview.engine.core.columns.TableArrays`
(``tables``: ``tables.conns``, ``tables.segs``, ``tables.counts``...).
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, helper, inlined, kernel
from .columns import (
    FIRST_TS,
    LAST_TS,
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
    PACKETS,
    STATUS,
    TCP_PACKETS,
)
from .decode import FRAGMENT, O_LINKTYPE, OK, REASON_SLOTS, UNSUPPORTED_LINK, decode_frame
from .reassembly import Fragments, expire_fragments, reassemble
from .segment import (
    Timeouts,
    analyse_sequence,
    analysis_state,
    decoded,
    find_connection,
    note_sack,
    read_syn_options,
    remember_sent,
    restart_analysis,
    run_state_machine,
    set_bases,
    start_timers,
    store_segment,
    time_transitions,
)
from .statemachine import flag_anomaly
from .transitions import expire

ROOM = 8  # transitions (and timers) one segment can add at most: a reuse, a handshake, a close


@helper
def _count_unsupported(skipped: np.ndarray, linktype: Int) -> None:
    """Count a frame of a link type the decoder does not read: ``skipped[REASON_SLOTS:]``
    holds (link type + 1, count) pairs."""
    for i in range(REASON_SLOTS, len(skipped) - 1, 2):
        if skipped[i] == 0 or skipped[i] == linktype + 1:
            skipped[i] = linktype + 1
            skipped[i + 1] += 1
            return
    skipped[UNSUPPORTED_LINK] += 1  # more kinds than there are pairs: counted without its number


@inlined
def _table_full(tables) -> Int:
    """Which table lacks room for one more frame (its counter's index; NEED_HASH for the
    hash table), or NEED_NOTHING."""
    counts = tables.counts
    if counts[N_CONN] + 2 > len(tables.conns):
        return N_CONN
    if (counts[N_CONN] + 2) * 2 > len(tables.hash):
        return NEED_HASH
    if counts[N_SEG] + 1 > len(tables.segs):
        return N_SEG
    if counts[N_TRANS] + ROOM > len(tables.trans):
        return N_TRANS
    if counts[N_TIMERS] + ROOM > len(tables.timers):
        return N_TIMERS
    if counts[N_ADDR6] + 2 > len(tables.addrs6):
        return N_ADDR6
    if counts[N_SEG_BACK] + 1 > len(tables.seg_back):
        return N_SEG_BACK
    if counts[N_TRANS_BACK] + 1 > len(tables.trans_back):
        return N_TRANS_BACK
    if counts[N_BASE_HIST] + 2 > len(tables.base_hist):
        return N_BASE_HIST
    if counts[N_LONG] + 1 > len(tables.long):
        return N_LONG
    if counts[N_ANOM] + 1 > len(tables.anom):
        return N_ANOM
    if counts[N_TRANS_TS] + ROOM > len(tables.trans_ts):
        return N_TRANS_TS
    if counts[N_DUPACK] + 1 > len(tables.dupack):
        return N_DUPACK
    if counts[N_SACK] + 1 > len(tables.sack):
        return N_SACK
    if counts[N_ANA] + 2 > len(tables.ana):
        return N_ANA
    return NEED_NOTHING


@kernel
def track(buf: np.ndarray, frames, i: Int, tables, timeouts: Timeouts, fields: np.ndarray, frags: Fragments) -> Int:
    """Decode and track frames ``i ..`` of a batch into ``tables``; returns where it stopped.

    ``frames`` describes the frames (:data:`tcpview.sources.batch.FRAME`): frame k is
    ``buf[frames[k].off : frames[k].off + frames[k].caplen]``. It stops early when a table is
    full (``tables.counts[STATUS]`` says which: the index of its counter, or NEED_HASH);
    frames before the returned index are done. ``fields`` is room for one frame's decoded
    fields (OUT_SIZE integers); ``frags`` the IP datagrams in reassembly
    (:mod:`tcpview.engine.core.reassembly`), kept from batch to batch.
    """
    counts = tables.counts
    clocks = tables.clocks
    n = len(frames)
    while i < n:
        need = _table_full(tables)
        if need != NEED_NOTHING:
            counts[STATUS] = need
            return i
        f = frames[i]
        start = np.int64(f.off)
        caplen = np.int64(f.caplen)
        ts = f.ts
        code = decode_frame(buf, start, caplen, np.int64(f.origlen), np.int64(f.linktype), fields)
        if (code == OK or code == FRAGMENT) and counts[N_TIMERS] > 0 and tables.timers[0].deadline <= ts:
            if not expire(tables, ts):
                return i
            need = _table_full(tables)
            if need != NEED_NOTHING:
                counts[STATUS] = need
                return i
        tcp_buf = buf  # where the segment's TCP header is: this frame's, or its datagram's first
        tcp_end = start + caplen
        if code == FRAGMENT:  # (after the timers: a frame the loop stops at is decoded again)
            if counts[PACKETS] > 0:  # what a batch ending at the last frame would have dropped
                expire_fragments(frags, clocks[LAST_TS], tables.skipped)
            code, held, header_end = reassemble(frags, buf, tcp_end, ts, fields, tables.skipped, counts)
            if code == OK:
                tcp_buf = frags.header[held]
                tcp_end = header_end
        counts[PACKETS] += 1
        if counts[PACKETS] == 1:
            clocks[FIRST_TS] = ts
            clocks[LAST_TS] = ts
        elif ts > clocks[LAST_TS]:
            clocks[LAST_TS] = ts
        if code == UNSUPPORTED_LINK:
            _count_unsupported(tables.skipped, fields[O_LINKTYPE])
        elif code != OK:
            tables.skipped[code] += 1
        else:
            # a TCP segment, step by step (the steps are compiled into this loop, not called: one
            # level of inlining less than a function of them all, which compiled 30% slower)
            frame = np.int64(f.frame)
            counts[TCP_PACKETS] += 1
            seg = decoded(fields, tcp_end)
            c, sender, found, previous, new_stream = find_connection(tables, seg, ts)
            row = counts[N_SEG]  # the row this segment gets
            ana = tables.ana[analysis_state(tables, c, previous, found, new_stream, row)]
            bits = restart_analysis(tables.conns[c], ana, sender, seg, found and c != previous, new_stream)
            first_tr = counts[N_TRANS]  # the transitions this segment causes start here
            set_bases(tables, c, sender, seg, row)
            ws_shift = read_syn_options(tables.conns[c], sender, tcp_buf, seg)
            anomaly = flag_anomaly(seg.flags)
            remember_sent(tables.conns[c], sender, seg)
            bits = analyse_sequence(tables, ana, sender, seg, frame, ts, bits, ws_shift, row)
            note_sack(tables, tcp_buf, seg, row)
            anomaly = run_state_machine(tables, c, sender, seg, found, anomaly)
            start_timers(tables, c, first_tr, ts, timeouts)
            key = store_segment(tables, row, seg, c, sender, frame, ts, bits, anomaly)
            time_transitions(tables, first_tr, ts, key)
        i += 1
    expire_fragments(frags, clocks[LAST_TS], tables.skipped)  # a datagram past its time at the end
    counts[STATUS] = NEED_NOTHING
    return i
