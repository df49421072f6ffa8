"""Shared helpers for the simulator tests (the ``runs`` fixture, built on :class:`Run`, is in
conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tcpview.engine.core.tcp import STATE_NAMES
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sim import Engine, builtin_names, load
from tcpview.sim.steps import Send
from tcpview.textutil import ip_text

SCEN_DIR = Path(__file__).resolve().parent.parent / "tcpview" / "sim" / "scenarios"
FINITE = [n for n in builtin_names() if n != "busy"]


# -- helpers ------------------------------------------------------------------------------------
class Run:
    """One scenario run: the simulator's frames and the tracker fed with them."""

    def __init__(self, name: str, seed: int | None = None, **bounds) -> None:  # type: ignore[no-untyped-def]
        self.scenario = load(name)
        self.engine = Engine(self.scenario, seed, record=True)
        self.frames = list(self.engine.frames(**bounds))
        self.tracker = Tracker()
        self.tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in self.frames)
        self.tl = self.tracker.tl

    @property
    def model(self):  # type: ignore[no-untyped-def]
        return self.scenario.model

    def states(self) -> list[tuple[str, str]]:
        """The tracker's (client, server) state names per connection, at the end."""
        return [(STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]) for c in self.tl.conns]

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.tl.counters_at(None).items() if v}

    def segments(self) -> list:
        return list(self.tl.all_segments_in_frame_order())

    def kind(self, kind: str) -> list:
        return [f for f in self.frames if f.kind == kind]

    def transitions(self, cid: int = 0) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"client": [], "server": []}
        for tr in self.tl.transitions(cid):
            out[tr.side].append(tr.new)
        return out


def step(model, op: str, nth: int = 0):  # type: ignore[no-untyped-def]
    """The nth step with this op in the scenario's main steps."""
    return [s for s in model.steps if s.op == op][nth]


def send_sizes(steps: list, by: str) -> int:
    """Bytes the scenario's ``send`` steps of ``by`` write (fixed sizes only)."""
    total = 0
    for s in steps:
        if isinstance(s, Send) and s.by == by:
            if s.data is not None:
                total += len(s.data.encode())
            else:
                lo, hi = s.size
                assert lo == hi, "a random size has no single expected value"
                total += lo
    return total


def _assert_tracker_matches_truth(r: Run, spoofed_clients: bool = False) -> None:
    truth = {key: (STATE_NAMES[c], STATE_NAMES[s]) for key, c, s in r.engine.truth()}
    assert len(truth) == len(r.tl.conns)
    for c in r.tl.conns:
        key = (ip_text(c.family, c.cip), c.cport, ip_text(c.family, c.sip), c.sport)
        got = (STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]])
        want = truth[key]
        if spoofed_clients:
            # a spoofed source has no endpoint; an observer only saw its SYN
            want = ("SYN_SENT", want[1])
        assert got == want, (r.scenario.name, key, "tracker", got, "endpoints", want)
