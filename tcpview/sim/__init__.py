"""The built-in TCP simulator: two RFC 9293 endpoints (or many) exchanging real frames.

Scenarios are TOML files (see :mod:`tcpview.sim.scenario` for the step language); the
built-in ones live in ``tcpview/sim/scenarios``. The simulator builds each segment as an
Ethernet frame with scapy and hands it out with a simulated capture timestamp, so its frames
go through the same decoder and tracker as a capture's.

Typical use::

    from tcpview.sim import load, SimSource, write_pcap

    scen = load("close-wait-leak")          # a built-in name or a path to a .toml file
    source = SimSource(scen, seed=7)        # a Source, paced for a live demo
    write_pcap(scen, "leak.pcap", seed=7)   # or every frame at once, into a pcap

The modules, bottom up; each imports only modules above it in this list (and
``tcpview.engine.core.tcp`` for the TCP state and flag constants), never Textual or rich:

- ``tomlpos``, ``steps`` -> ``scenario``: reading and checking scenario files.
- ``loop``: simulated time, the event queue, the seeded random source.
- ``segments``: a segment on the simulated wire, sequence-number arithmetic.
- ``context``: what an endpoint needs from its host and from the simulation (protocols).
- ``tcb_core`` -> ``tcb_output`` -> ``tcb``: one TCP endpoint, in three layers.
- ``frames``, ``host``, ``network``: building frames; hosts; the path and the capture point.
- ``engine``: the scenario interpreter; ``source`` and ``writer`` run it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .scenario import Scenario, builtin_names, load, load_builtin, parse
from .steps import ScenarioError

if TYPE_CHECKING:
    from .engine import Engine
    from .loop import EPOCH
    from .network import SimFrame
    from .source import SimSource
    from .writer import write_pcap

DEFAULT_SCENARIO = "busy"

# the parts that need scapy are imported on first use, so listing or checking scenarios is quick
_LAZY = {"EPOCH": ".loop", "Engine": ".engine", "SimFrame": ".network", "SimSource": ".source",
         "write_pcap": ".writer"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(mod, __name__), name)

__all__ = [
    "DEFAULT_SCENARIO",
    "EPOCH",
    "Engine",
    "Scenario",
    "ScenarioError",
    "SimFrame",
    "SimSource",
    "builtin_names",
    "load",
    "load_builtin",
    "parse",
    "write_pcap",
]
