"""The passive TCP state machine for both endpoints (see DESIGN.md, "Passive state inference").

The tracker owns the :class:`~tcpview.engine.store.Timeline` it appends to. Feed it frames in capture
order; it uses capture time only (never the wall clock), so a replay at any speed, or a
``--at`` query, gives the same states.

Rules, as an observer between the hosts sees them (RFC 9293 names):

- SYN: sender SYN_SENT, receiver LISTEN. SYN crossing SYN: both SYN_RECEIVED.
- SYN+ACK acking the SYN's ISN+1: sender SYN_RECEIVED. An endpoint becomes ESTABLISHED once
  its SYN was acked and it has acked the peer's SYN (so the ACK of the SYN+ACK makes both).
- FIN: sender FIN_WAIT_1 (or LAST_ACK from CLOSE_WAIT), receiver CLOSE_WAIT. The ACK of a FIN
  (seq+1): FIN_WAIT_1 -> FIN_WAIT_2, CLOSING -> TIME_WAIT, LAST_ACK -> CLOSED. A FIN received
  in FIN_WAIT_2, or a FIN that also acks ours in FIN_WAIT_1 -> TIME_WAIT. FINs that cross:
  both CLOSING.
- RST in window: both CLOSED; a RST answering a SYN marks the connection refused.
- TIME_WAIT ends after 2*MSL; an orphaned FIN_WAIT_2 after the FIN timeout.
- Retransmitted SYN/FIN do not move states again. Invalid flag combinations and wrong
  handshake ACKs are anomalies and move nothing.
- First segment not a SYN: picked up mid-stream, both ESTABLISHED, ``partial``.
- A SYN on a 4-tuple whose connection is over starts a new connection (Wireshark tcp.stream).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable

from .decode import decode
from .model import (
    ACK,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN,
    FIN_WAIT_1,
    FIN_WAIT_2,
    HALF,
    LAST_ACK,
    LISTEN,
    PSH,
    RST,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    URG,
    Analysis,
    Anomaly,
    M,
)
from .store import (
    REC,
    WHY_FIN,
    WHY_FIN_ACKED,
    WHY_FW2_EXPIRED,
    WHY_GOT_FIN,
    WHY_HANDSHAKE_ACK,
    WHY_MIDSTREAM,
    WHY_REFUSED,
    WHY_REUSED,
    WHY_RST,
    WHY_SIMCLOSE,
    WHY_SIMOPEN,
    WHY_SYN,
    WHY_SYNACK,
    WHY_TW_EXPIRED,
    Conn,
    Timeline,
)

_pack = REC.pack
# Ethernet type, IPv4 ver/ihl, total length, frag, proto, src, dst; TCP ports, seq, ack, offset,
# flags, window: the whole common case in one unpack
_ETH_IP4_TCP = struct.Struct("!12xHBxHxxHxBxxIIHHIIBBH")
_RETRANS = int(Analysis.RETRANSMISSION) << 8
_KEEPALIVE = int(Analysis.KEEP_ALIVE) << 8
_ZEROWIN = int(Analysis.ZERO_WINDOW) << 8
_DUPACK = int(Analysis.DUP_ACK) << 8
_WINPROBE = int(Analysis.WINDOW_PROBE) << 8
_KAACK = int(Analysis.KEEP_ALIVE_ACK) << 8
A_WINPROBE = int(Analysis.WINDOW_PROBE)
A_KAACK = int(Analysis.KEEP_ALIVE_ACK)
A_RETRANS = int(Analysis.RETRANSMISSION)
A_KEEPALIVE = int(Analysis.KEEP_ALIVE)
A_ZEROWIN = int(Analysis.ZERO_WINDOW)
A_DUPACK = int(Analysis.DUP_ACK)
BAD_HANDSHAKE_ACK = int(Anomaly.BAD_HANDSHAKE_ACK)
RST_OUT_OF_WINDOW = int(Anomaly.RST_OUT_OF_WINDOW)


def _syn_ws(buf: object, p: int, end: int) -> int:
    """The window-scale shift in a SYN's options (max 14), or -2 when it has none."""
    while p < end:
        kind = buf[p]  # type: ignore[index]
        if kind == 3:
            return min(buf[p + 2], 14) if p + 2 < end else -2  # type: ignore[index]
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 1 >= end:
            break
        olen = buf[p + 1]  # type: ignore[index]
        if olen < 2:
            break
        p += olen
    return -2


def _flag_anomaly(flags: int) -> int:
    """Anomaly bits for an invalid flag combination (0 when the combination is valid)."""
    a = 0
    if flags & SYN and flags & FIN:
        a |= Anomaly.SYN_FIN
    if flags & SYN and flags & RST:
        a |= Anomaly.SYN_RST
    if flags & 0x3F == 0:
        a |= Anomaly.NO_FLAGS
    if flags & (FIN | PSH | URG) == (FIN | PSH | URG):
        a |= Anomaly.XMAS
    elif flags & FIN and not flags & ACK and not flags & SYN:
        a |= Anomaly.FIN_NO_ACK
    return int(a)


_FLAG_ANOMALY = [_flag_anomaly(f) for f in range(256)]


def _ge(a: int, b: int) -> bool:
    """a >= b in 32-bit sequence space."""
    return ((a - b) & M) < HALF


def _guess_client_is_sender(sport: int, dport: int) -> bool:
    """Mid-stream: the client is the side with the ephemeral (higher, or non-well-known) port."""
    if (sport < 1024) != (dport < 1024):
        return dport < 1024
    return sport >= dport


class Tracker:
    """Turns decoded frames into connections, segments and transitions in a Timeline.

    Args:
        timeline: the store to append to (a new one by default).
        msl2: TIME_WAIT duration in seconds (2*MSL; Linux uses 60).
        fin_timeout: how long an orphaned FIN_WAIT_2 lasts (Linux tcp_fin_timeout, 60).
    """

    def __init__(self, timeline: Timeline | None = None, msl2: float = 60.0, fin_timeout: float = 60.0) -> None:
        self.tl = timeline if timeline is not None else Timeline()
        self.msl2 = msl2
        self.fin_timeout = fin_timeout
        self.table: dict[tuple, tuple[Conn, int]] = {}
        self.timers: list[tuple[float, int, int, int, float]] = []

    # -- input -------------------------------------------------------------------------------
    def feed(self, frame: int, ts: float, linktype: int, buf: object, off: int, caplen: int, origlen: int) -> None:
        """Decode one frame and apply it (non-TCP or undecodable frames are counted)."""
        tl = self.tl
        tl.packets += 1
        if tl.first_ts is None:
            tl.first_ts = ts
        if tl.last_ts is None or ts > tl.last_ts:
            tl.last_ts = ts
        d = decode(buf, off, caplen, origlen, linktype)
        if d.__class__ is str:
            tl.skipped[d] = tl.skipped.get(d, 0) + 1  # type: ignore[index]
            return
        self.segment(frame, ts, d, buf)  # type: ignore[arg-type]

    def feed_frame(self, frame: int, ts: float, linktype: int, data: bytes) -> None:
        """Apply one frame given as bytes (simulator, live capture)."""
        self.feed(frame, ts, linktype, data, 0, len(data), len(data))

    def feed_records(self, records: Iterable) -> None:
        """Apply records ``(frame, ts, linktype, buf, off, caplen, origlen)`` from a reader.

        ``None`` items (a follower waiting for data) are skipped. This is the hot loop of
        ``tcpview summary``; it inlines :meth:`feed` and the established-data fast path.
        """
        tl = self.tl
        skipped = tl.skipped
        table = self.table
        segment = self.segment
        timers = self.timers
        eth4 = _ETH_IP4_TCP.unpack_from
        packets = tl.packets
        first = tl.first_ts
        last = tl.last_ts if tl.last_ts is not None else float("-inf")
        tcp = 0
        try:
            for r in records:
                if r is None:
                    continue
                frame, ts, lt, buf, off, caplen, origlen = r
                packets += 1
                if ts > last:
                    last = ts
                    if first is None:
                        first = tl.first_ts = ts
                elif first is None:
                    first = tl.first_ts = ts
                if lt == 1 and caplen >= 54:
                    # Ethernet + IPv4 without options + TCP: one unpack for all three headers
                    et, vihl, total, frag, proto, src, dst, sp, dp, seq, ack, doff, flags, win = eth4(buf, off)
                    if et != 0x0800 or vihl != 0x45 or proto != 6 or frag & 0x1FFF:
                        d = decode(buf, off, caplen, origlen, lt)
                        if d.__class__ is str:
                            skipped[d] = skipped.get(d, 0) + 1
                            continue
                        src, dst, sp, dp, seq, ack, flags, win, plen = d[1:10]
                    else:
                        if total == 0 or total > origlen - 14:
                            total = origlen - 14
                        thl = (doff >> 4) << 2
                        plen = total - 20 - thl
                        if plen < 0 or doff < 0x50:
                            d = decode(buf, off, caplen, origlen, lt)
                            if d.__class__ is str:
                                skipped[d] = skipped.get(d, 0) + 1
                                continue
                            plen = d[9]
                        else:
                            d = (4, src, dst, sp, dp, seq, ack, flags, win, plen, off + 34, thl)
                else:
                    d = decode(buf, off, caplen, origlen, lt)
                    if d.__class__ is str:
                        skipped[d] = skipped.get(d, 0) + 1
                        continue
                    src, dst, sp, dp, seq, ack, flags, win, plen = d[1:10]
                if (flags & 0x17) == 0x10:
                    ent = table.get((src, sp, dst, dp))
                    if ent is not None and not (timers and timers[0][0] <= ts):
                        c, dr = ent
                        st = c.state
                        if st[0] == 4 and st[1] == 4:
                            # established data / pure ACK: no state can change
                            tcp += 1
                            bits = 0
                            nxt = c.nxt[dr]
                            end = (seq + plen) & M
                            if plen == 1 and seq == nxt and c.last_win[1 - dr] == 0:
                                bits = _WINPROBE  # the byte is not consumed: nxt stays
                            elif nxt < 0 or (((end - nxt) & M) < HALF and end != nxt):
                                c.nxt[dr] = end
                            elif plen > 1 or (plen == 1 and ((nxt - end) & M) != 0):
                                bits = _RETRANS
                            elif seq == ((nxt - 1) & M):
                                bits = _KEEPALIVE
                                c.ka[dr] = True
                            if win == 0:
                                bits |= _ZEROWIN
                            ka = c.ka
                            if ka[1 - dr]:
                                ka[1 - dr] = False
                                if plen == 0 and not bits and ack == c.last_ack[dr]:
                                    bits = _KAACK
                            if plen == 0 and not bits and ack == c.last_ack[dr] and win == c.last_win[dr]:
                                bits = _DUPACK
                            c.last_ack[dr] = ack
                            c.last_win[dr] = win
                            c.rec += _pack(ts, frame, seq, ack, plen, win << c.shift[dr], flags, dr, 4, 4, bits)
                            c.bytes += plen
                            continue
                tl.packets = packets
                tl.last_ts = last
                tl.tcp_packets += tcp
                tcp = 0
                segment(frame, ts, d, buf)
        finally:
            tl.packets = packets
            tl.last_ts = last if last != float("-inf") else tl.last_ts
            tl.tcp_packets += tcp

    def advance(self, ts: float) -> None:
        """Let capture time pass to ``ts`` (fires TIME_WAIT / FIN_WAIT_2 expiry)."""
        if self.timers and self.timers[0][0] <= ts:
            self._expire(ts)

    # -- the state machine -----------------------------------------------------------------------
    def segment(self, frame: int, ts: float, d: tuple, buf: object) -> None:
        """Apply one decoded TCP segment ``d`` (see :func:`tcpview.engine.decode.decode`)."""
        tl = self.tl
        tl.tcp_packets += 1
        if self.timers and self.timers[0][0] <= ts:
            self._expire(ts)
        fam, src, dst, sp, dp, seq, ack, flags, win, plen, toff, thl = d
        ent = self.table.get((src, sp, dst, dp))
        syn_only = (flags & (SYN | ACK)) == SYN
        if ent is None:
            c, dr = self._new_conn(fam, src, sp, dst, dp, flags, ts)
        else:
            c, dr = ent
            if syn_only and self._syn_starts_new(c, dr, seq):
                self._retire(c, ts, frame)
                c, dr = self._new_conn(fam, src, sp, dst, dp, flags, ts)
        rcv = 1 - dr
        st = c.state
        bits = 0
        anomaly = 0

        # relative sequence bases, as Wireshark sets them
        if not c.base_set[dr] or (flags & SYN and c.syn_seq[dr] < 0):
            # a SYN sets the base even after earlier non-SYN segments (e.g. an injected RST)
            nb = seq if flags & SYN else (seq - 1) & M
            if c.base_set[dr] and nb != c.base[dr]:
                c.base_hist.append((c.n, dr, c.base[dr]))
            c.base[dr] = nb
            c.base_set[dr] = True
        if flags & ACK and not c.base_set[rcv]:
            c.base[rcv] = (ack - 1) & M
            c.base_set[rcv] = True

        if flags & SYN:
            c.optraw[dr] = bytes(buf[toff + 20 : toff + thl]) if thl > 20 else b""
            ws = c.win_scale
            ws[dr] = _syn_ws(buf, toff + 20, min(toff + thl, len(buf))) if thl > 20 else -2
            # Wireshark: a direction scales by its SYN's shift unless the peer's SYN had none
            for x in (0, 1):
                c.shift[x] = ws[x] if ws[x] >= 0 and ws[1 - x] != -2 else 0

        anomaly = _FLAG_ANOMALY[flags]  # invalid flag combinations

        # sequence analysis (retransmission etc.)
        nxt = c.nxt[dr]
        seg_len = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        end = (seq + seg_len) & M
        plain = (flags & 0x17) == ACK  # data / pure ACK: judged as the fast path in feed_records does
        if plain and plen == 1 and seq == nxt and c.last_win[rcv] == 0:
            bits |= A_WINPROBE  # a zero-window probe's byte is not consumed: nxt stays
        elif nxt < 0 or (_ge(end, nxt) and end != nxt and not flags & RST):
            # a RST must not move nxt: the in-window check below measures it against nxt
            c.nxt[dr] = end
        elif plain:
            if plen > 1 or (plen == 1 and end != nxt):
                bits |= A_RETRANS
            elif seq == ((nxt - 1) & M):
                bits |= A_KEEPALIVE
                c.ka[dr] = True
        elif seg_len > 0 and not flags & RST:
            bits |= A_RETRANS
        if win == 0 and not flags & (RST | SYN | FIN):
            bits |= A_ZEROWIN
        if c.ka[rcv]:
            c.ka[rcv] = False
            if plain and plen == 0 and not bits and ack == c.last_ack[dr]:
                bits |= A_KAACK
        if plain and plen == 0 and not bits and ack == c.last_ack[dr] and win == c.last_win[dr]:
            bits |= A_DUPACK
        c.last_ack[dr] = ack
        c.last_win[dr] = win

        if anomaly:
            c.anomalies |= anomaly
        elif ent is None and not flags & SYN:
            if flags & RST:
                c.partial = True
                c.reset = True
            else:
                # picked up mid-stream
                c.partial = True
                tl.add_transition(c, ts, frame, 0, ESTABLISHED, WHY_MIDSTREAM)
                tl.add_transition(c, ts, frame, 1, ESTABLISHED, WHY_MIDSTREAM)
                c.since[0] = c.since[1] = ts
                self._apply(c, dr, frame, ts, seq, ack, flags, plen, win)
        else:
            anomaly = self._apply(c, dr, frame, ts, seq, ack, flags, plen, win)
            if anomaly:
                c.anomalies |= anomaly

        if not flags & SYN:
            win <<= c.shift[dr]
        c.rec += _pack(ts, frame, seq, ack, plen, win, flags, dr, st[0], st[1], anomaly | (bits << 8))
        c.bytes += plen

    def _apply(self, c: Conn, s: int, frame: int, ts: float, seq: int, ack: int, flags: int, plen: int, win: int) -> int:
        """Move the states for a valid segment from side ``s``; returns anomaly bits."""
        tl = self.tl
        st = c.state
        r = 1 - s
        S, R = st[s], st[r]

        def move(side: int, new: int, why: str) -> None:
            if st[side] != new:
                tl.add_transition(c, ts, frame, side, new, why)
                c.since[side] = ts
                if new == TIME_WAIT:
                    heapq.heappush(self.timers, (ts + self.msl2, c.id, side, TIME_WAIT, ts))
                elif new == FIN_WAIT_2:
                    heapq.heappush(self.timers, (ts + self.fin_timeout, c.id, side, FIN_WAIT_2, ts))

        if flags & RST:
            if S == CLOSED and R == CLOSED:
                c.reset = True
                return 0
            if R == SYN_SENT and S == LISTEN:
                # RST answering a SYN: refused (it must ack the SYN, or carry no ACK)
                if flags & ACK and ack != ((c.syn_seq[r] + 1) & M):
                    return RST_OUT_OF_WINDOW
                c.refused = True
                move(r, CLOSED, WHY_REFUSED)
                move(s, CLOSED, WHY_REFUSED)
                return 0
            # in-window check against what the sender has sent so far
            nxt_s = c.nxt[s]
            if nxt_s >= 0 and c.base_set[s]:
                w = max(max(c.last_win[r], 0) << c.shift[r], 65535)
                dist = (seq - nxt_s) & M
                if dist > w and (M + 1 - dist) > w:
                    return RST_OUT_OF_WINDOW
            c.reset = True
            move(s, CLOSED, WHY_RST)
            move(r, CLOSED, WHY_RST)
            return 0

        if flags & SYN:
            if flags & ACK:
                # SYN+ACK
                if c.syn_seq[r] >= 0 and ack != ((c.syn_seq[r] + 1) & M):
                    return BAD_HANDSHAKE_ACK
                if c.syn_seq[s] >= 0 and seq == c.syn_seq[s] and c.acked_peer_syn[s]:
                    return 0  # retransmitted SYN+ACK
                c.syn_seq[s] = seq
                c.syn_acked[r] = True
                c.acked_peer_syn[s] = True
                if c.syn_seq[r] < 0:
                    c.syn_seq[r] = (ack - 1) & M  # the client's SYN was not captured
                    c.partial = True
                if S in (CLOSED, LISTEN):
                    move(s, SYN_RECEIVED, WHY_SYNACK)
                if st[r] == CLOSED:
                    move(r, SYN_SENT, WHY_SYN)
                self._established(c, move)
                return 0
            # SYN without ACK
            if S == SYN_SENT or (c.syn_seq[s] >= 0 and seq == c.syn_seq[s]):
                return 0  # retransmitted SYN
            c.syn_seq[s] = seq
            if S == CLOSED and R == CLOSED:
                move(s, SYN_SENT, WHY_SYN)
                move(r, LISTEN, WHY_SYN)
            elif R == SYN_SENT:
                move(r, SYN_RECEIVED, WHY_SIMOPEN)
                move(s, SYN_RECEIVED, WHY_SIMOPEN)
            return 0

        anomaly = 0
        # ACK of the peer's SYN completes the handshake for whoever is ready
        if flags & ACK and c.syn_seq[r] >= 0 and not c.syn_acked[r] and R in (SYN_RECEIVED, SYN_SENT):
            isn1 = (c.syn_seq[r] + 1) & M
            hi = c.nxt[r] if c.nxt[r] >= 0 else isn1
            if _ge(ack, isn1) and _ge(hi, ack):
                c.syn_acked[r] = True
                c.acked_peer_syn[s] = True
                self._established(c, move, WHY_HANDSHAKE_ACK)
            elif not flags & FIN:
                return BAD_HANDSHAKE_ACK

        fin_r = c.fin_seq[r]
        acks_peer_fin = bool(flags & ACK) and fin_r >= 0 and _ge(ack, (fin_r + 1) & M)
        S, R = st[s], st[r]
        if flags & FIN:
            fseq = (seq + plen) & M
            if c.fin_seq[s] >= 0:
                if fseq == c.fin_seq[s]:
                    # retransmitted FIN; it may still ack the peer's FIN
                    if acks_peer_fin:
                        self._peer_fin_acked(c, r, move)
                    return 0
            c.fin_seq[s] = fseq
            if S in (ESTABLISHED, SYN_RECEIVED):
                move(s, FIN_WAIT_1, WHY_FIN)
                if R in (ESTABLISHED, SYN_RECEIVED, SYN_SENT):
                    move(r, CLOSE_WAIT, WHY_GOT_FIN)
                elif R == FIN_WAIT_1:
                    move(r, CLOSING, WHY_SIMCLOSE)
                    move(s, CLOSING, WHY_SIMCLOSE)
            elif S == CLOSE_WAIT:
                if acks_peer_fin or R == FIN_WAIT_2:
                    move(s, LAST_ACK, WHY_FIN)
                    move(r, TIME_WAIT, WHY_GOT_FIN)
                else:
                    # our FIN left before the peer's FIN arrived: the FINs crossed
                    move(s, CLOSING, WHY_SIMCLOSE)
                    move(r, CLOSING, WHY_SIMCLOSE)
            elif S == SYN_SENT:
                pass  # FIN before the handshake finished: nothing an endpoint would do with it
            return anomaly
        if acks_peer_fin:
            self._peer_fin_acked(c, r, move)
        return anomaly

    @staticmethod
    def _peer_fin_acked(c: Conn, r: int, move) -> None:  # type: ignore[no-untyped-def]
        R = c.state[r]
        if R == FIN_WAIT_1:
            move(r, FIN_WAIT_2, WHY_FIN_ACKED)
        elif R == CLOSING:
            move(r, TIME_WAIT, WHY_FIN_ACKED)
        elif R == LAST_ACK:
            move(r, CLOSED, WHY_FIN_ACKED)

    @staticmethod
    def _established(c: Conn, move, why: str = WHY_HANDSHAKE_ACK) -> None:  # type: ignore[no-untyped-def]
        st, sa, ap = c.state, c.syn_acked, c.acked_peer_syn
        if (st[0] == SYN_SENT or st[0] == SYN_RECEIVED) and sa[0] and ap[0]:
            move(0, ESTABLISHED, why)
        if (st[1] == SYN_SENT or st[1] == SYN_RECEIVED) and sa[1] and ap[1]:
            move(1, ESTABLISHED, why)

    def _syn_starts_new(self, c: Conn, dr: int, seq: int) -> bool:
        """Whether a SYN (no ACK) on a known 4-tuple begins a new connection (tcp.stream).

        The same ISN again is a retransmission. A different ISN starts a new connection when
        the old one is over (both ends CLOSED or TIME_WAIT, as Linux reuses a 4-tuple in
        TIME_WAIT), or when the sender's earlier SYN went unanswered.
        """
        if c.syn_seq[dr] >= 0 and seq == c.syn_seq[dr]:
            return False
        st = c.state
        if st[0] in (CLOSED, TIME_WAIT) and st[1] in (CLOSED, TIME_WAIT):
            return True
        return st[dr] == SYN_SENT

    def _retire(self, c: Conn, ts: float, frame: int) -> None:
        """A new connection takes over c's 4-tuple: c's sockets are gone on both hosts.

        A host holds one socket per 4-tuple, so a TIME_WAIT (or abandoned SYN_SENT) endpoint
        reused by a new SYN is destroyed then (Linux kills the TIME_WAIT socket), as ``ss``
        shows.
        """
        for side in (0, 1):
            if c.state[side] != CLOSED:
                self.tl.add_transition(c, ts, frame, side, CLOSED, WHY_REUSED)
                c.since[side] = ts

    def _new_conn(self, fam: int, src: object, sp: int, dst: object, dp: int, flags: int, ts: float) -> tuple[Conn, int]:
        tl = self.tl
        if flags & SYN:
            sender_is_client = not flags & ACK
        else:
            sender_is_client = _guess_client_is_sender(sp, dp)
        cid = len(tl.conns)
        if sender_is_client:
            c = Conn(cid, fam, src, sp, dst, dp, ts)
            dr = 0
        else:
            c = Conn(cid, fam, dst, dp, src, sp, ts)
            dr = 1
        tl.conns.append(c)
        tl.conn_first_ts.append(ts if not tl.conn_first_ts or ts >= tl.conn_first_ts[-1] else tl.conn_first_ts[-1])
        self.table[(src, sp, dst, dp)] = (c, dr)
        self.table[(dst, dp, src, sp)] = (c, 1 - dr)
        return c, dr

    def _expire(self, now: float) -> None:
        timers = self.timers
        tl = self.tl
        while timers and timers[0][0] <= now:
            deadline, cid, side, state, since = heapq.heappop(timers)
            c = tl.conns[cid]
            if c.state[side] == state and c.since[side] == since:
                why = WHY_TW_EXPIRED if state == TIME_WAIT else WHY_FW2_EXPIRED
                tl.add_transition(c, deadline, 0, side, CLOSED, why)
                c.since[side] = deadline
