"""One simulated TCP endpoint (TCB): its RFC 9293 state machine and the events that drive it.

A :class:`Tcb` is one endpoint: send and receive sequence variables, receive buffer and window,
retransmission (RFC 6298 timer, fast retransmit after three duplicate ACKs as RFC 5681), the
persist timer with one-byte zero-window probes, keep-alives, TIME_WAIT. It is built in three
layers, one module each: :mod:`tcpview.sim.tcb_core` (variables, state changes, timers, options,
building segments), :mod:`tcpview.sim.tcb_output` (sending and retransmission) and this one,
the event processing of RFC 9293 section 3.10: opening (active and passive), the calls an
application makes (send, close, shutdown, abort, read) and the arrival of a segment
(3.10.7.3 and 3.10.7.4: in SYN_SENT the SYN,ACK or a SYN crossing ours; otherwise the checks in
the RFC's order -- sequence number, RST (only an exact match resets, RFC 5961), SYN (a challenge
ACK), the ACK field -- then data and FIN, keeping out-of-order data and acknowledging it with
SACK blocks).

What is simplified, on purpose: there is no congestion control (a sender sends what the peer's
window allows), every segment that carries data or a FIN is acknowledged at once (no delayed
ACKs), and SACK blocks are sent but the sender only uses them through fast retransmit. The
shapes of the exchanges -- the thing tcpview shows -- are those of a real stack.

Times are integer microseconds of simulated time (``engine.now``).
"""

from __future__ import annotations

from ..engine.core.tcp import (
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
    RST,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    M,
)
from .segments import Seg, _opts_dict, le, lt, sdiff
from .tcb_output import TcbOutput


class Tcb(TcbOutput):
    """One TCP endpoint (Transmission Control Block) and its RFC 9293 state machine."""

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
