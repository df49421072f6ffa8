"""A simulated host: owns its TCP endpoints and answers segments for ports with none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.core.tcp import ACK, RST, SYN, M
from .context import Simulation
from .frames import host_mac
from .segments import Seg
from .tcb import Tcb

if TYPE_CHECKING:
    from .steps import Host as HostConfig


class Host:
    """A simulated machine: its address, TCP settings, endpoints and outgoing link."""

    def __init__(self, engine: Simulation, ip: str, cfg: HostConfig, server: bool) -> None:
        self.engine = engine
        self.ip = ip
        self.cfg = cfg
        self.server = server
        self.family = 6 if ":" in ip else 4
        self.mac = host_mac(ip)
        self.tcbs: dict[tuple[int, str, int], Tcb] = {}
        self.listen = set(cfg.listen) if server else set()
        rng = engine.rng
        self.ts_offset = rng.getrandbits(32)
        self.ip_id = rng.getrandbits(16)
        self.next_port = rng.randint(32768, 60999)
        self.link_free = 0

    def ephemeral_port(self) -> int:
        """A free local port from the ephemeral range (32768-60999, as Linux)."""
        used = {k[0] for k in self.tcbs}
        for _ in range(28232):
            p = self.next_port
            self.next_port = 32768 if p >= 60999 else p + 1
            if p not in used and p not in self.listen:
                return p
        raise RuntimeError("no free ephemeral port")

    def next_ip_id(self) -> int:
        """The IPv4 identification for the next frame this host sends."""
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id

    def ts_clock(self) -> int:
        """The TCP timestamp clock (milliseconds, random origin)."""
        return (self.engine.now // 1000 + self.ts_offset) & M

    # -- arrival ---------------------------------------------------------------------------
    def receive(self, seg: Seg) -> None:
        """A segment arrives from the network."""
        tcb = self.tcbs.get((seg.dport, seg.src, seg.sport))
        if tcb is not None:
            tcb.input(seg)
        elif seg.dport in self.listen:
            self._listen_input(seg)
        else:
            self._closed_input(seg)

    def _closed_input(self, seg: Seg) -> None:
        """RFC 9293 3.10.7.1: no endpoint -- answer anything but a RST with a RST."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            self.send_raw(seg, seg.ack, 0, RST)
        else:
            self.send_raw(seg, 0, seg.seq + seg.seg_len, RST | ACK)

    def _listen_input(self, seg: Seg) -> None:
        """RFC 9293 3.10.7.2: a listening socket."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            self.send_raw(seg, seg.ack, 0, RST)
            return
        if seg.flags & SYN:
            tcb = Tcb(self, seg.dport, seg.src, seg.sport, seg.conn)
            tcb.passive_open(seg)
        # anything else (FIN, NULL, Xmas probes) is dropped silently

    def send_raw(self, to: Seg, seq: int, ack: int, flags: int) -> None:
        """Answer ``to`` without an endpoint (a RST from the kernel)."""
        seg = Seg(self.ip, to.dport, to.src, to.sport, seq, ack, flags, 0, [], b"", "", to.conn, self.cfg.ttl)
        self.engine.transmit(self, seg)
