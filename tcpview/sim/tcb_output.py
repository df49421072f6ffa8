"""Sending and retransmission for a simulated TCP endpoint (the second layer of a TCB).

:class:`TcbOutput` sends new data and the FIN as far as the peer's window allows; times round
trips and computes the RTO (RFC 6298, Karn's rule, Linux's 200 ms minimum); retransmits the
first unacknowledged segment after a timeout, or when the ACK processing sees three duplicate
ACKs (RFC 5681 fast retransmit) or a partial ACK (NewReno); probes a zero window with one byte
(the persist timer, RFC 9293 3.8.6.1); and takes in what the peer acknowledges (SND.UNA,
SND.WND).
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
    LAST_ACK,
    LISTEN,
    PSH,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    M,
)
from .loop import SECOND
from .segments import DATA_RETRIES, PERSIST_MAX, RTO_MAX, Seg, le, lt, sdiff
from .tcb_core import TcbCore


class TcbOutput(TcbCore):
    """A TCB's sending and retransmission (see the module)."""

    # -- output ----------------------------------------------------------------------------------
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

    # -- what the peer acknowledges ---------------------------------------------------------------
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
