"""A connection's round-trip times and bytes in flight, as Wireshark computes them.

Wireshark keeps, per direction, the list of segments not yet acknowledged (a segment with
data, a SYN or a FIN; newest first, at most 10,000). Each segment's ACK field is walked down
the other direction's list: a listed segment whose end equals the ACK is acknowledged by it
(``tcp.analysis.acks_frame``, the oldest such when a retransmission repeats it, and
``ack_rtt``, the time since it); one the ACK covers leaves the list; one it cuts is shortened.
A segment with data reports the span of its direction's list as ``bytes_in_flight`` (minus
one for a SYN or FIN), unless a segment of its direction went missing ("previous segment not
captured") since the peer last sent an ACK.

The compiled loop keeps no lists (they would be most of a busy capture's memory): this
replays one connection's stored segments when its numbers are asked for. The bytes the
receiver's last SACK blocks cover are left out (the loop notes them per segment).
"""

from __future__ import annotations

import numpy as np

from ...jit import array_kernel
from .columns import seg_analysis, seg_dir, seg_flags
from .seqanalysis import gt
from .tcp import A_LOST, ACK, FIN, SYN

M = 0xFFFFFFFF
MAX_UNACKED = 10000  # Wireshark's TCP_MAX_UNACKED_SEGMENTS, per direction
MAX_IN_FLIGHT = 2000000000


@array_kernel
def conn_numbers(segs, rows: np.ndarray, plens: np.ndarray, sacked: np.ndarray, base: np.ndarray):
    """For each of one connection's segments ``rows`` (in order; ``plens`` their payload
    lengths, ``sacked`` the bytes their SACK blocks cover, ``base`` the relative-sequence base
    of each direction): the index (into rows) of the segment it acknowledges or -1, and its
    bytes in flight or -1."""
    n = len(rows)
    acked = np.full(n, -1, dtype=np.int64)
    bif = np.full(n, -1, dtype=np.int64)
    e_seq = np.empty(n, dtype=np.int64)  # the unacknowledged segments, as linked lists
    e_end = np.empty(n, dtype=np.int64)
    e_idx = np.empty(n, dtype=np.int64)
    e_next = np.empty(n, dtype=np.int64)
    head = np.full(2, -1, dtype=np.int64)
    count = np.zeros(2, dtype=np.int64)
    valid = np.ones(2, dtype=np.int64)
    sack = np.zeros(2, dtype=np.int64)  # what the last segment of each direction SACKed
    used = 0
    for i in range(n):
        s = segs[rows[i]]
        fl = np.int64(s.fl)
        flags = seg_flags(fl)
        fwd = seg_dir(fl)
        rev = 1 - fwd
        seq = np.int64(s.seq)
        ack = np.int64(s.ack)
        seglen = plens[i]
        synfin = 1 if flags & (SYN | FIN) else 0
        sack[fwd] = sacked[i]
        if flags & ACK:
            valid[rev] = 1
        if seg_analysis(fl) & A_LOST:
            valid[fwd] = 0
        if (seglen > 0 or synfin) and count[fwd] < MAX_UNACKED:
            e_seq[used] = seq
            e_end[used] = (seq + seglen + synfin) & M
            e_idx[used] = i
            e_next[used] = head[fwd]
            head[fwd] = used
            count[fwd] += 1
            used += 1
        # this segment's ACK field down the other direction's list (whatever its flags)
        prev = -1
        k = head[rev]
        while k >= 0:
            if ack == e_end[k]:
                acked[i] = e_idx[k]  # the last match walked is the oldest
            elif gt(ack, e_end[k]) or ack == e_end[k]:
                pass  # covered: it leaves the list too
            else:
                if gt(ack, e_seq[k]):
                    e_seq[k] = ack  # cut: it stays, shorter
                prev = k  # not acknowledged (yet)
                k = e_next[k]
                continue
            nk = e_next[k]  # acknowledged (or covered): it leaves the list
            if prev < 0:
                head[rev] = nk
            else:
                e_next[prev] = nk
            count[rev] -= 1
            k = nk
        if seglen != 0 and head[fwd] >= 0 and valid[fwd]:
            k = head[fwd]
            first = (e_seq[k] - base[fwd]) & M
            last = (e_end[k] - base[fwd]) & M
            k = e_next[k]
            while k >= 0:
                first = min(first, (e_seq[k] - base[fwd]) & M)
                last = max(last, (e_end[k] - base[fwd]) & M)
                k = e_next[k]
            flight = (last - first - sack[rev]) & M
            if 0 < flight < MAX_IN_FLIGHT:
                bif[i] = flight - synfin
    return acked, bif
