"""What a simulated endpoint needs from around it: its host, and the simulation both run in.

Endpoints (:mod:`tcpview.sim.tcb`) sit below hosts (:mod:`tcpview.sim.host`), and hosts below
the network (:mod:`tcpview.sim.network`), yet each calls back up: an endpoint registers with
its host and reads its timestamp clock; endpoints and hosts set timers and put segments on the
network. These protocols name those calls, so the lower modules are typed without importing
the higher ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import random

    from .segments import Seg
    from .steps import Host as HostConfig


class Simulation(Protocol):
    """The simulation as hosts and endpoints see it (:class:`tcpview.sim.network.Network`)."""

    now: int
    """Simulated time, microseconds."""
    rng: random.Random
    msl2: int
    """How long TIME_WAIT lasts, microseconds."""
    fin_timeout: int
    """How long an orphaned FIN_WAIT_2 lasts, microseconds."""

    def schedule(self, t: int, fn, *args) -> None:
        """Call ``fn(*args)`` at simulated time ``t``."""

    def transmit(self, host: Any, seg: Seg) -> None:
        """``host`` (a :class:`tcpview.sim.host.Host`) puts ``seg`` on its link."""


class Machine(Protocol):
    """The host an endpoint lives on, as the endpoint uses it (:class:`tcpview.sim.host.Host`)."""

    engine: Simulation
    ip: str
    cfg: HostConfig
    tcbs: dict[tuple[int, str, int], Any]
    """The host's endpoints by (local port, remote ip, remote port)."""

    def ts_clock(self) -> int:
        """The TCP timestamp clock."""

    def send_raw(self, to: Seg, seq: int, ack: int, flags: int) -> None:
        """Answer ``to`` without an endpoint (a RST from the kernel)."""
