"""The variables of one simulated TCP endpoint and the machinery under its state machine.

:class:`TcbCore` holds the RFC 9293 send and receive sequence variables, the send and receive
buffers, the negotiated options and the retransmission variables. It changes state (arming the
timers a state runs: TIME_WAIT, an orphaned FIN_WAIT_2, keep-alive), runs named timers on the
engine's event queue, works out the window to advertise, negotiates options (MSS, window scale,
SACK, timestamps: RFC 7323, RFC 2018) and builds and sends segments.

It is the first of three layers, one module each, that make :class:`tcpview.sim.tcb.Tcb`:
``tcb_core`` (this), ``tcb_output`` (sending and retransmission) and ``tcb`` (the events that
drive the state machine). Each layer subclasses the one before, so every call goes to a layer
below or to its own.
"""

from __future__ import annotations

from ..engine.core.tcp import ACK, CLOSED, ESTABLISHED, FIN_WAIT_2, RST, SYN, SYN_SENT, TIME_WAIT, M
from .context import Machine
from .loop import SECOND
from .segments import RTO_INITIAL, Conn, Seg, le, lt, sdiff


class TcbCore:
    """The variables of one TCP endpoint and the machinery under its state machine."""

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

    # -- state and timers ------------------------------------------------------------------------
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

    def _arm(self, name: str, delay_us: int, fn) -> None:
        self.gen[name] += 1
        if name in self.armed:
            self.armed[name] = True
        self.engine.schedule(self.engine.now + max(1, int(delay_us)), self._fire, name, self.gen[name], fn)

    def _cancel(self, name: str) -> None:
        self.gen[name] += 1
        if name in self.armed:
            self.armed[name] = False

    def _fire(self, name: str, gen: int, fn) -> None:
        if self.gen[name] != gen:
            return
        if name in self.armed:
            self.armed[name] = False
        fn()
        if self.conn is not None:
            self.conn.changed()

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

    # -- window and options -----------------------------------------------------------------------
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

    def _take_ts(self, seg: Seg) -> None:
        for o in seg.opts:
            if o[0] == "Timestamp":
                self.ts_recent = o[1][0]
                return

    # -- sending a segment -------------------------------------------------------------------------
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

    def _unsent(self) -> int:
        return len(self.sndbuf) - sdiff(self.snd_nxt, self.data_base)
