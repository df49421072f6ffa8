"""One TCP endpoint (TCB) and its RFC 9293 state machine."""

from __future__ import annotations

from ..engine.model import (
    ACK,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    PSH,
    RST,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    M,
)
from .context import Machine
from .loop import SECOND
from .segments import (
    DATA_RETRIES,
    PERSIST_MAX,
    RTO_INITIAL,
    RTO_MAX,
    Conn,
    Seg,
    _opts_dict,
    le,
    lt,
    sdiff,
)


class Tcb:
    """One TCP endpoint (Transmission Control Block) and its RFC 9293 state machine."""

    def __init__(self, host: Machine, lport: int, rip: str, rport: int, conn: Conn | None) -> None:
        self.host = host
        self.engine = host.engine
        self.cfg = host.cfg
        self.lport, self.rip, self.rport = lport, rip, rport
        self.conn = conn
        self.state = CLOSED
        self.passive = False
        cfg = self.cfg
        # send side
        self.iss = self.engine.rng.getrandbits(32)
        self.snd_una = self.iss
        self.snd_nxt = self.iss  # next new sequence number (also the highest sent: snd_max)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.sndbuf = bytearray()  # unacknowledged + unsent data; sndbuf[0] is at data_base
        self.data_base = (self.iss + 1) & M
        self.fin_queued = False
        self.fin_seq: int | None = None
        self.orphan = False  # close() was called: nobody reads any more
        self.probe_end: int | None = None
        # receive side
        self.irs = 0
        self.irs_known = False
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised (never moves left)
        self.rcv_adv_set = False
        self.rbuf = cfg.window
        self.unread = 0
        self.reading = True
        self.ooo: dict[int, bytes] = {}
        self.ooo_fin: int | None = None
        self.last_ooo: int | None = None
        # options
        self.send_mss = 536
        self.rcv_shift = 0
        self.snd_shift = 0
        self.sack_ok = False
        self.ts_ok = False
        self.ts_recent = 0
        self.peer_opts: dict = {}
        # retransmission
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = RTO_INITIAL
        self.backoff = 0
        self.retries = 0
        self.rtt_seq: int | None = None
        self.rtt_time = 0
        self.dupacks = 0
        self.recover: int | None = None  # fast recovery / loss recovery point
        self.in_loss = False
        self.last_win = -1
        self.last_activity = 0
        self.persist_backoff = 0
        self.gen = {"rto": 0, "persist": 0, "keepalive": 0, "tw": 0, "fw2": 0}
        self.armed = {"rto": False, "persist": False, "keepalive": False}
        host.tcbs[(lport, rip, rport)] = self
        if conn is not None:
            conn.attach(self)

    # -- helpers -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Tcb({self.host.ip}:{self.lport}->{self.rip}:{self.rport} {self.state})"

    def set_state(self, new: int) -> None:
        """Enter RFC 9293 state ``new``, arming the timers that state runs."""
        if new == self.state:
            return
        self.state = new
        e = self.engine
        if new == TIME_WAIT:
            self._cancel("rto")
            self._cancel("persist")
            self._cancel("keepalive")
            self._cancel("fw2")
            self._arm("tw", e.msl2, self._tw_expired)
        elif new == FIN_WAIT_2 and self.orphan:
            self._arm("fw2", e.fin_timeout, self._fw2_expired)
        elif new == ESTABLISHED and self.cfg.keepalive:
            self.last_activity = e.now
            self._arm("keepalive", int(self.cfg.keepalive * SECOND), self._keepalive)
        if self.conn is not None:
            self.conn.changed()

    def delete(self) -> None:
        """The endpoint is gone (CLOSED)."""
        self.state = CLOSED
        for k in self.gen:
            self._cancel(k)
        self.host.tcbs.pop((self.lport, self.rip, self.rport), None)
        if self.conn is not None:
            self.conn.changed()

    def _arm(self, name: str, delay_us: int, fn) -> None:  # type: ignore[no-untyped-def]
        self.gen[name] += 1
        if name in self.armed:
            self.armed[name] = True
        self.engine.schedule(self.engine.now + max(1, int(delay_us)), self._fire, name, self.gen[name], fn)

    def _cancel(self, name: str) -> None:
        self.gen[name] += 1
        if name in self.armed:
            self.armed[name] = False

    def _fire(self, name: str, gen: int, fn) -> None:  # type: ignore[no-untyped-def]
        if self.gen[name] != gen:
            return
        if name in self.armed:
            self.armed[name] = False
        fn()
        if self.conn is not None:
            self.conn.changed()

    def free_space(self) -> int:
        """Receive buffer bytes not taken by unread or out-of-order data."""
        ooo = sum(len(d) for d in self.ooo.values())
        return max(0, self.rbuf - self.unread - ooo)

    def _window_field(self, syn: bool) -> int:
        """The window to advertise; its right edge never moves left (RFC 9293 3.8.6.2.2)."""
        free = self.free_space()
        if syn:
            w = min(free, 65535)
            edge = (self.rcv_nxt + w) & M
        else:
            shift = self.rcv_shift
            w = min(free >> shift, 65535)
            if self.rcv_adv_set:
                keep = min(max(0, sdiff(self.rcv_adv, self.rcv_nxt)) >> shift, 65535)
                if keep > w:
                    w = keep
            edge = (self.rcv_nxt + (w << shift)) & M
        if self.state == SYN_SENT and not self.irs_known:
            return w  # our first SYN: RCV.NXT is not known yet, so neither is the edge
        if not self.rcv_adv_set or lt(self.rcv_adv, edge):
            self.rcv_adv = edge
            self.rcv_adv_set = True
        return w

    def rcv_wnd(self) -> int:
        """RCV.WND: from RCV.NXT to the right edge last advertised."""
        return max(0, sdiff(self.rcv_adv, self.rcv_nxt))

    def _syn_options(self, synack: bool) -> list:
        cfg = self.cfg
        peer = self.peer_opts
        sack = cfg.sack and (not synack or "SAckOK" in peer)
        ts = cfg.timestamps and (not synack or "Timestamp" in peer)
        ws = cfg.wscale is not None and (not synack or "WScale" in peer)
        opts: list = [("MSS", cfg.mss)]
        tsv = (self.host.ts_clock(), self.ts_recent if synack else 0)
        if sack and ts:
            opts += [("SAckOK", b""), ("Timestamp", tsv)]
        elif ts:
            opts += [("NOP", None), ("NOP", None), ("Timestamp", tsv)]
        elif sack:
            opts += [("NOP", None), ("NOP", None), ("SAckOK", b"")]
        if ws:
            opts += [("NOP", None), ("WScale", cfg.wscale)]
        return opts

    def _negotiate(self, synack: bool) -> None:
        """Settle the options once both SYNs are known (RFC 7323, RFC 2018)."""
        cfg = self.cfg
        peer = self.peer_opts
        self.sack_ok = cfg.sack and "SAckOK" in peer
        self.ts_ok = cfg.timestamps and "Timestamp" in peer
        if cfg.wscale is not None and "WScale" in peer:
            self.rcv_shift = cfg.wscale
            self.snd_shift = min(int(peer["WScale"]), 14)
        else:
            self.rcv_shift = self.snd_shift = 0
        mss = min(int(peer.get("MSS", 536)), cfg.mss)
        self.send_mss = max(1, mss - (12 if self.ts_ok else 0))

    def _send(self, flags: int, seq: int, payload: bytes = b"", kind: str = "", sack: bool = False) -> None:
        syn = bool(flags & SYN)
        if syn:
            opts = self._syn_options(synack=bool(flags & ACK))
        else:
            opts = []
            if self.ts_ok:
                opts += [("NOP", None), ("NOP", None), ("Timestamp", (self.host.ts_clock(), self.ts_recent))]
            if sack and self.sack_ok and self.ooo:
                blocks = self._sack_blocks(3 if self.ts_ok else 4)
                if blocks:
                    opts += [("NOP", None), ("NOP", None), ("SAck", tuple(x for b in blocks for x in b))]
        ack = self.rcv_nxt if flags & ACK else 0
        win = self._window_field(syn) if not flags & RST else 0
        if kind != "keepalive" and kind != "probe":
            self.last_activity = self.engine.now
        seg = Seg(self.host.ip, self.lport, self.rip, self.rport, seq, ack, flags, win, opts, payload, kind,
                  self.conn, self.cfg.ttl)
        self.engine.transmit(self.host, seg)

    def _sack_blocks(self, n: int) -> list[tuple[int, int]]:
        blocks: list[list[int]] = []
        for s in sorted(self.ooo, key=lambda x: sdiff(x, self.rcv_nxt)):
            e = (s + len(self.ooo[s])) & M
            if blocks and le(s, blocks[-1][1]):
                if lt(blocks[-1][1], e):
                    blocks[-1][1] = e
            else:
                blocks.append([s, e])
        # RFC 2018: the block holding the most recently received segment comes first
        if self.last_ooo is not None:
            for i, b in enumerate(blocks):
                if le(b[0], self.last_ooo) and lt(self.last_ooo, b[1]):
                    blocks.insert(0, blocks.pop(i))
                    break
        return [(b[0], b[1]) for b in blocks[:n]]

    def _send_ack(self, sack: bool = False, kind: str = "") -> None:
        self._send(ACK, self.snd_nxt, kind=kind, sack=sack)

    # -- opening -------------------------------------------------------------------------------
    def active_open(self) -> None:
        """connect(): send a SYN (RFC 9293 3.10.1)."""
        self.set_state(SYN_SENT)
        self.snd_nxt = (self.iss + 1) & M
        self._send(SYN, self.iss)
        self._start_rto()

    def passive_open(self, syn: Seg) -> None:
        """A SYN reached a listening port: answer SYN,ACK (RFC 9293 3.10.7.2)."""
        self.passive = True
        self.irs = syn.seq
        self.irs_known = True
        self.rcv_nxt = (syn.seq + 1) & M
        self.peer_opts = _opts_dict(syn.opts)
        self._take_ts(syn)
        self._negotiate(synack=True)
        self.snd_wnd = syn.win  # never scaled in a SYN
        self.snd_wl1, self.snd_wl2 = syn.seq, syn.ack
        self.set_state(SYN_RECEIVED)
        self.snd_nxt = (self.iss + 1) & M
        self._send(SYN | ACK, self.iss)
        self._start_rto()

    def _take_ts(self, seg: Seg) -> None:
        for o in seg.opts:
            if o[0] == "Timestamp":
                self.ts_recent = o[1][0]
                return

    # -- application calls ---------------------------------------------------------------------
    def can_send(self) -> bool:
        """The application may still write (its side is open)."""
        return self.state in (ESTABLISHED, CLOSE_WAIT) and not self.fin_queued

    def app_send(self, data: bytes) -> None:
        """send(): queue data and transmit what the window allows."""
        if not self.can_send():
            return
        self.sndbuf += data
        self.output()

    def app_close(self, orphan: bool) -> None:
        """close() (``orphan``) or shutdown(SHUT_WR): a FIN after the queued data."""
        st = self.state
        if orphan:
            self.orphan = True
            if self.unread:
                # Linux: closing with unread data aborts the connection (RFC 2525 2.17)
                self.app_abort()
                return
        if st == SYN_SENT:
            self.delete()
            return
        if self.fin_queued or st not in (ESTABLISHED, CLOSE_WAIT):
            return
        self.fin_queued = True
        self.set_state(LAST_ACK if st == CLOSE_WAIT else FIN_WAIT_1)
        self.output()

    def app_abort(self) -> None:
        """Abort (SO_LINGER 0): send a RST and forget the connection (RFC 9293 3.10.5)."""
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._send(RST | ACK, self.snd_nxt)
        self.delete()

    def app_stop_reading(self) -> None:
        """The application stops reading: arriving data stays in the buffer."""
        self.reading = False

    def app_read(self) -> None:
        """Read everything buffered and keep reading; tell the peer the window opened."""
        self.reading = True
        if not self.unread:
            return
        before = self.rcv_wnd()
        self.unread = 0
        if self.state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
            # RFC 9293 3.8.6.2.2: update once the window grows by min(buffer/2, MSS)
            after = self.free_space()
            if after - before >= min(self.rbuf // 2, self.cfg.mss):
                self._send_ack(kind="window_update")

    def quiet(self) -> bool:
        """Nothing left to do for now: no handshake, nothing unacknowledged or unsent (unless
        the peer's window is zero)."""
        st = self.state
        if st in (CLOSED, LISTEN, TIME_WAIT):
            return True
        if st in (SYN_SENT, SYN_RECEIVED):
            return False
        if self.snd_una != self.snd_nxt:
            return False
        if self.fin_queued and self.fin_seq is None and self._unsent() == 0:
            return False
        if self._unsent() > 0 and self.snd_wnd > 0:
            return False
        return True

    # -- output ----------------------------------------------------------------------------------
    def _unsent(self) -> int:
        return len(self.sndbuf) - sdiff(self.snd_nxt, self.data_base)

    def output(self) -> None:
        """Send new data (and the FIN) as far as the peer's window allows."""
        if self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, LAST_ACK, CLOSING):
            return
        sent = False
        while True:
            if self.fin_seq is not None:
                break
            off = sdiff(self.snd_nxt, self.data_base)
            avail = len(self.sndbuf) - off
            if avail > 0:
                usable = sdiff((self.snd_una + self.snd_wnd) & M, self.snd_nxt)
                if usable <= 0:
                    if self.snd_una == self.snd_nxt and not self.armed["persist"]:
                        self.persist_backoff = 0
                        self._arm("persist", self._rto_us(), self._persist)
                    break
                n = min(avail, self.send_mss, usable)
                last = n == avail
                fin = last and self.fin_queued
                flags = ACK | (PSH if last else 0) | (FIN if fin else 0)
                seq = self.snd_nxt
                self._send(flags, seq, bytes(self.sndbuf[off:off + n]))
                self._time_rtt(seq, n + (1 if fin else 0))
                self.snd_nxt = (seq + n + (1 if fin else 0)) & M
                if fin:
                    self.fin_seq = (seq + n) & M
                sent = True
                continue
            if self.fin_queued:
                seq = self.snd_nxt
                self._send(FIN | ACK, seq)
                self._time_rtt(seq, 1)
                self.fin_seq = seq
                self.snd_nxt = (seq + 1) & M
                sent = True
            break
        if sent:
            self._cancel("persist")
            if not self.armed["rto"]:
                self._start_rto()

    def _time_rtt(self, seq: int, n: int) -> None:
        if self.rtt_seq is None:
            self.rtt_seq = (seq + n) & M
            self.rtt_time = self.engine.now

    def _rto_us(self) -> int:
        return min(RTO_MAX, self.rto << self.backoff)

    def _start_rto(self) -> None:
        self._arm("rto", self._rto_us(), self._rto_fired)

    def _retransmit(self, kind: str) -> None:
        """Send again the first unacknowledged segment (SYN, SYN,ACK, data and/or FIN)."""
        self.rtt_seq = None  # Karn: no RTT sample from a retransmitted segment
        st = self.state
        if st == SYN_SENT:
            self._send(SYN, self.iss, kind=kind)
            return
        if st == SYN_RECEIVED and self.snd_una == self.iss:
            self._send(SYN | ACK, self.iss, kind=kind)
            return
        off = sdiff(self.snd_una, self.data_base)
        data_left = len(self.sndbuf) - off
        outstanding = sdiff(self.snd_nxt, self.snd_una)
        n = max(0, min(self.send_mss, data_left, outstanding))
        fin = self.fin_seq is not None and ((self.snd_una + n) & M) == self.fin_seq
        if n == 0 and not fin:
            return
        flags = ACK | (PSH if n and (off + n == len(self.sndbuf)) else 0) | (FIN if fin else 0)
        self._send(flags, self.snd_una, bytes(self.sndbuf[off:off + n]), kind=kind)

    def _rto_fired(self) -> None:
        st = self.state
        if st in (CLOSED, LISTEN, TIME_WAIT) or self.snd_una == self.snd_nxt:
            return
        self.retries += 1
        limit = DATA_RETRIES
        if st == SYN_SENT:
            limit = self.cfg.syn_retries
        elif st == SYN_RECEIVED and self.passive:
            limit = self.cfg.synack_retries
        if self.retries > limit:
            self.delete()  # give up (ETIMEDOUT); Linux sends nothing more
            return
        self.backoff = min(self.backoff + 1, 16)
        self.dupacks = 0
        self.recover = self.snd_nxt
        self.in_loss = True
        self._retransmit("rto")
        self._start_rto()

    def _persist(self) -> None:
        """Zero window: probe with one byte of new data (RFC 9293 3.8.6.1)."""
        if self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, LAST_ACK, CLOSING):
            return
        if self.snd_wnd > 0 or self._unsent() <= 0 or self.snd_una != self.snd_nxt:
            return
        off = sdiff(self.snd_nxt, self.data_base)
        self._send(ACK, self.snd_nxt, bytes(self.sndbuf[off:off + 1]), kind="probe")
        self.probe_end = (self.snd_nxt + 1) & M
        self.persist_backoff = min(self.persist_backoff + 1, 12)
        self._arm("persist", min(PERSIST_MAX, self._rto_us() << self.persist_backoff), self._persist)

    def _keepalive(self) -> None:
        if self.state != ESTABLISHED or not self.cfg.keepalive:
            return
        idle = int(self.cfg.keepalive * SECOND)
        due = self.last_activity + idle
        if self.engine.now < due:
            self._arm("keepalive", due - self.engine.now, self._keepalive)
            return
        if self.snd_una == self.snd_nxt and self._unsent() <= 0:
            # Linux's probe: one sequence number back, no data; the peer must answer with an ACK
            self._send(ACK, (self.snd_nxt - 1) & M, kind="keepalive")
        self.last_activity = self.engine.now
        self._arm("keepalive", idle, self._keepalive)

    def _tw_expired(self) -> None:
        self.delete()

    def _fw2_expired(self) -> None:
        if self.state == FIN_WAIT_2:
            self.delete()

    # -- input -----------------------------------------------------------------------------------
    def input(self, seg: Seg) -> None:
        """A segment for this endpoint arrives (RFC 9293 3.10.7.3 and 3.10.7.4)."""
        self.last_activity = self.engine.now
        if self.state == SYN_SENT:
            self._input_syn_sent(seg)
        else:
            self._input_sync(seg)

    def _input_syn_sent(self, seg: Seg) -> None:
        f = seg.flags
        if f & ACK and (le(seg.ack, self.iss) or lt(self.snd_nxt, seg.ack)):
            if not f & RST:
                self.host.send_raw(seg, seg.ack, 0, RST)
            return
        if f & RST:
            if f & ACK:
                self.delete()  # connection refused
            return
        if not f & SYN:
            return
        self.irs = seg.seq
        self.irs_known = True
        self.rcv_nxt = (seg.seq + 1) & M
        self.peer_opts = _opts_dict(seg.opts)
        self._take_ts(seg)
        self._negotiate(synack=bool(f & ACK))
        self.snd_wnd = seg.win
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        if f & ACK:
            self._ack_advance(seg.ack)
            self.set_state(ESTABLISHED)
            self._send_ack()
            self.output()
        else:
            # simultaneous open: our SYN crossed theirs
            self.set_state(SYN_RECEIVED)
            self._send(SYN | ACK, self.iss)
            self._start_rto()

    def _acceptable(self, seq: int, seg_len: int) -> bool:
        wnd = self.rcv_wnd()
        nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return le(nxt, seq) and lt(seq, (nxt + wnd) & M)
        if wnd == 0:
            return False
        end = (seq + seg_len - 1) & M
        top = (nxt + wnd) & M
        return (le(nxt, seq) and lt(seq, top)) or (le(nxt, end) and lt(end, top))

    def _input_sync(self, seg: Seg) -> None:
        f = seg.flags
        seq = seg.seq
        payload = seg.payload
        fin = bool(f & FIN)
        # the peer's SYN (our SYN,ACK crossed it, or a retransmission) lies before RCV.NXT:
        # trim it off, as RFC 9293 3.10.7.4 suggests, and process what remains
        if f & SYN and seq == self.irs and self.state != SYN_SENT:
            f &= ~SYN
            seq = (seq + 1) & M
        seg_len = len(payload) + (1 if fin else 0) + (1 if f & SYN else 0)
        if self.state == TIME_WAIT:
            if fin and not f & RST:
                self._send_ack()  # the peer did not get our ACK of its FIN: ack it again
                self._arm("tw", self.engine.msl2, self._tw_expired)
            return
        # first: sequence number
        if not self._acceptable(seq, seg_len):
            if f & RST:
                return
            zero_window_probe = seg_len > 0 and self.rcv_wnd() == 0 and seq == self.rcv_nxt
            if zero_window_probe and f & ACK:
                self._ack_field(seg, f)  # RFC 9293: still take valid ACKs when our window is 0
            if self.state in (CLOSED, LISTEN):
                return
            self._send_ack()
            return
        # second: RST (RFC 5961: only an exact match resets; otherwise a challenge ACK)
        if f & RST:
            if seq == self.rcv_nxt:
                self.delete()
            else:
                self._send_ack()
            return
        # fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2)
        if f & SYN:
            self._send_ack()
            return
        # fifth: ACK
        if not f & ACK:
            return
        if not self._ack_field(seg, f):
            return
        if self.state in (CLOSED, TIME_WAIT):
            return
        # trim what lies before RCV.NXT (a retransmission of data we already have)
        if payload and lt(seq, self.rcv_nxt):
            cut = sdiff(self.rcv_nxt, seq)
            payload = payload[cut:]
            seq = self.rcv_nxt
        # and what lies beyond the window
        room = sdiff((self.rcv_nxt + self.rcv_wnd()) & M, seq)
        if len(payload) > room:
            payload = payload[:max(0, room)]
            fin = False
        need_ack = False
        dup = False
        st = self.state
        if payload and st in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
            if self.orphan:
                # data for a socket nobody will read (close() was called): Linux resets
                self._send(RST | ACK, self.snd_nxt)
                self.delete()
                return
            if seq == self.rcv_nxt:
                self._deliver(payload)
            else:
                self.ooo[seq] = payload
                self.last_ooo = seq
                dup = True
            need_ack = True
        if fin:
            fin_at = (seq + len(payload)) & M
            if fin_at == self.rcv_nxt:
                self._got_fin()
            elif lt(self.rcv_nxt, fin_at):
                self.ooo_fin = fin_at
            need_ack = True
        if need_ack:
            self._send_ack(sack=dup or bool(self.ooo))
        self.output()

    def _deliver(self, payload: bytes) -> None:
        self.rcv_nxt = (self.rcv_nxt + len(payload)) & M
        self.unread += len(payload)
        # pull in the out-of-order segments that now follow
        while self.ooo:
            hit = None
            for s, d in self.ooo.items():
                if le(s, self.rcv_nxt) and lt(self.rcv_nxt, (s + len(d)) & M):
                    hit = s
                    break
                if le((s + len(d)) & M, self.rcv_nxt):
                    hit = s
                    break
            if hit is None:
                break
            d = self.ooo.pop(hit)
            if lt(self.rcv_nxt, (hit + len(d)) & M):
                extra = d[sdiff(self.rcv_nxt, hit):]
                self.rcv_nxt = (self.rcv_nxt + len(extra)) & M
                self.unread += len(extra)
        if self.reading:
            self.unread = 0
        if self.ooo_fin is not None and self.ooo_fin == self.rcv_nxt:
            self.ooo_fin = None
            self._got_fin()

    def _got_fin(self) -> None:
        self.rcv_nxt = (self.rcv_nxt + 1) & M
        st = self.state
        if st in (SYN_RECEIVED, ESTABLISHED):
            self.set_state(CLOSE_WAIT)
        elif st == FIN_WAIT_1:
            self.set_state(CLOSING)
        elif st == FIN_WAIT_2:
            self.set_state(TIME_WAIT)

    def _ack_field(self, seg: Seg, f: int) -> bool:
        """Process SEG.ACK (RFC 9293 3.10.7.4, fifth check); False when the segment is dropped."""
        ack = seg.ack
        st = self.state
        if st == SYN_RECEIVED:
            if lt(self.snd_una, ack) and le(ack, self.snd_nxt):
                self._take_window(seg, force=True)
                self._ack_advance(ack)
                self.set_state(ESTABLISHED)
                self.output()
            else:
                self.host.send_raw(seg, ack, 0, RST)
                return False
        top = self.snd_nxt
        if self.probe_end is not None and lt(top, self.probe_end):
            top = self.probe_end
        if lt(top, ack):
            self._send_ack()  # acks something not yet sent
            return False
        self._take_ts(seg)
        if lt(self.snd_una, ack):
            if self.probe_end is not None and lt(self.snd_nxt, ack):
                self.snd_nxt = ack  # the window opened and the probe byte was taken
            self.probe_end = None
            self._take_window(seg)
            self._ack_advance(ack)
        else:
            win_before = self.snd_wnd
            self._take_window(seg)
            if (ack == self.snd_una and not seg.payload and not f & (SYN | FIN)
                    and self.snd_wnd == win_before and self.snd_una != self.snd_nxt):
                self.dupacks += 1
                if self.dupacks == 3 and self.recover is None:
                    # RFC 5681 3.2: fast retransmit
                    self.recover = self.snd_nxt
                    self._retransmit("fast")
                    self._start_rto()
            if self.snd_wnd > 0 and win_before == 0:
                self._cancel("persist")
                self.output()
        st = self.state
        fin_acked = self.fin_seq is not None and self.snd_una == ((self.fin_seq + 1) & M)
        if fin_acked:
            if st == FIN_WAIT_1:
                self.set_state(FIN_WAIT_2)
            elif st == CLOSING:
                self.set_state(TIME_WAIT)
            elif st == LAST_ACK:
                self.delete()
                return False
        return True

    def _take_window(self, seg: Seg, force: bool = False) -> None:
        """SND.WND from the segment, if it is newer than the last one used (RFC 9293)."""
        if force or lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and le(self.snd_wl2, seg.ack)):
            self.snd_wnd = seg.win << self.snd_shift
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack

    def _ack_advance(self, ack: int) -> None:
        """SND.UNA moves to ``ack``: drop acknowledged data, take an RTT sample, restart timers."""
        if not lt(self.snd_una, ack):
            return
        acked_data = sdiff(ack, self.data_base)
        if acked_data > 0:
            n = min(acked_data, len(self.sndbuf))
            del self.sndbuf[:n]
            self.data_base = (self.data_base + n) & M
        self.snd_una = ack
        if self.rtt_seq is not None and le(self.rtt_seq, ack):
            self._rtt_sample(self.engine.now - self.rtt_time)
            self.rtt_seq = None
        self.backoff = 0
        self.retries = 0
        self.dupacks = 0
        partial = self.recover is not None and lt(ack, self.recover)
        if not partial:
            self.recover = None
            self.in_loss = False
        if self.snd_una == self.snd_nxt:
            self._cancel("rto")
        else:
            if partial:
                # NewReno: a partial ACK in recovery: the next hole is lost as well
                self._retransmit("rto" if self.in_loss else "fast")
            self._start_rto()
        self.output()

    def _rtt_sample(self, r_us: int) -> None:
        """RFC 6298 2.2/2.3, with Linux's 200 ms minimum (configurable)."""
        r = float(max(r_us, 1))
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        rto = self.srtt + max(1000.0, 4 * self.rttvar)
        self.rto = int(min(RTO_MAX, max(self.cfg.rto_min * SECOND, rto)))
