"""The simulated network: the hosts, the path between them, and the capture point.

Every host on the client side (the client, its neighbours, spoofed sources) reaches the server
over one path with a fixed one-way delay (``rtt / 2``); each host's outgoing link sends one
frame after another at ``bandwidth``, so a burst of segments is spread out as on a real link.

The capture point sits beside the client, on the client side of the path. A frame the client
side sends is captured as it leaves; a frame from the server is captured as it arrives (one
way delay after it left). Lost segments (the ``lose`` step) are lost beyond the capture point,
so each is captured once and its retransmission again -- as a capture on the client host
would show it, and as Wireshark's analysis expects.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .frames import ROUTER_MAC, build_frame, host_mac
from .host import Host
from .loop import EPOCH, SECOND, Loop
from .segments import Seg

if TYPE_CHECKING:
    from .steps import ScenarioModel


@dataclass(slots=True)
class SimFrame:
    """One captured frame and what the simulator knows about it."""

    frame: int
    """1-based position in the capture."""
    t_us: int
    """Simulated time in microseconds."""
    data: bytes
    """The Ethernet frame."""
    conn: int
    """The simulator's connection number (order of creation)."""
    dir: int
    """0: sent by the connection's client side; 1: by the server side."""
    kind: str
    """Why it was sent when notable: rto, fast, probe, keepalive, window_update ('' otherwise)."""
    lost: bool
    """It is lost after the capture point (the receiver never sees it)."""
    flags: int
    seq: int
    ack: int
    length: int

    @property
    def ts(self) -> float:
        """Capture timestamp, seconds since 1970."""
        return EPOCH + self.t_us / SECOND

    @property
    def retransmission(self) -> bool:
        """Sent again because it (or an earlier copy) went unacknowledged."""
        return self.kind in ("rto", "fast")


class Network(Loop):
    """The hosts and the path between them, with the capture point beside the client.

    Captured frames collect in ``out``, in capture order. With :class:`~tcpview.sim.loop.Loop`
    it is all that hosts and endpoints see of the simulation
    (:class:`~tcpview.sim.context.Simulation`).

    Args:
        model: the scenario's settings (its ``network``, ``client`` and ``server`` tables).
        seed: seeds the one ``random.Random`` behind ISNs, ports, sizes and picks.
    """

    def __init__(self, model: ScenarioModel, seed: int) -> None:
        super().__init__(seed)
        self.model = model
        net = model.network
        self.owd = max(1, round(net.rtt * SECOND / 2))
        self.bandwidth = net.bandwidth  # Mbit/s = bits per microsecond
        self.msl2 = round(net.msl2 * SECOND)
        self.fin_timeout = round(net.fin_timeout * SECOND)
        assert model.server.ip is not None  # ScenarioModel's validator sets both hosts' addresses
        self.server = Host(self, str(ipaddress.ip_address(model.server.ip.split("/")[0])), model.server,
                           server=True)
        self.hosts: dict[str, Host] = {self.server.ip: self.server}
        self.client_net = model.client.network()
        self.out: deque[SimFrame] = deque()
        self.frame_no = 0

    # -- the network -------------------------------------------------------------------------------
    def transmit(self, host: Host, seg: Seg) -> None:
        """``host`` puts ``seg`` on its link: schedule its capture and (unless lost) arrival."""
        conn = seg.conn
        size = 14 + (20 if host.family == 4 else 40) + 20 + 12 + len(seg.payload)
        tx = max(1, math.ceil(size * 8 / self.bandwidth))
        start = max(self.now, host.link_free)
        host.link_free = start + tx
        if host.server:
            cap = arrive = start + tx + self.owd
        else:
            cap = start + tx
            arrive = cap + self.owd
        d = 0
        lost = False
        if conn is not None:
            d = 0 if (seg.src, seg.sport) == (conn.cip, conn.cport) else 1
            conn.tx[d] += 1
            if conn.tx[d] in conn.lose[d]:
                conn.lose[d].discard(conn.tx[d])
                lost = True
        ip_id = host.next_ip_id() if seg.src == host.ip else self.rng.getrandbits(16)
        self.schedule(cap, self._capture, seg, d, lost, host.server, ip_id)
        if not lost:
            if conn is not None:
                conn.inflight += 1
            self.schedule(arrive, self._deliver, seg)

    def _deliver(self, seg: Seg) -> None:
        conn = seg.conn
        if conn is not None:
            conn.inflight -= 1
        host = self.hosts.get(seg.dst)
        if host is not None:
            host.receive(seg)
        if conn is not None:
            conn.changed()

    def _capture(self, seg: Seg, d: int, lost: bool, from_server: bool, ip_id: int) -> None:
        self.frame_no += 1
        data = build_frame(
            src_mac=ROUTER_MAC if from_server else host_mac(seg.src),
            dst_mac=host_mac(seg.dst) if from_server else ROUTER_MAC,
            family=self.server.family,
            src=seg.src,
            dst=seg.dst,
            ttl=seg.ttl,
            ip_id=ip_id,
            sport=seg.sport,
            dport=seg.dport,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flags,
            window=seg.win,
            options=seg.opts,
            payload=seg.payload,
        )
        cid = seg.conn.id if seg.conn is not None else -1
        self.out.append(SimFrame(self.frame_no, self.now, data, cid, d, seg.kind, lost, seg.flags, seg.seq,
                                 seg.ack, len(seg.payload)))

    # -- hosts ------------------------------------------------------------------------------------
    def _client_ip(self) -> str:
        return self._random_ip(self.client_net)

    def _random_ip(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
        n = net.num_addresses
        if n == 1:
            return str(net.network_address)
        if n <= 2:
            return str(net.network_address + self.rng.randrange(n))
        return str(net.network_address + self.rng.randrange(1, n - 1))

    def _client_host(self, ip: str) -> Host:
        h = self.hosts.get(ip)
        if h is None:
            h = Host(self, ip, self.model.client, server=False)
            self.hosts[ip] = h
        return h
