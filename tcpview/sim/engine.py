"""The scenario interpreter: runs a scenario's steps over the simulated network.

A scenario's ``steps`` (and the scripts they start) run as generators, one :class:`Task` each.
A step acts on the endpoints, then yields what it waits for: time to pass, or its connections
to settle (everything delivered and acknowledged) and then the application's reaction time
``network.think``. :meth:`Engine.frames` runs the event loop and hands out the frames captured
on the network (:class:`~tcpview.sim.network.Network`, which the engine extends).

Simulated time is kept in integer microseconds (the resolution of a pcap), so it never drifts.
The capture ends when the scenario's main ``steps`` have finished.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterator

from ..engine.core.tcp import CLOSED, SYN
from .loop import SECOND
from .network import Network, SimFrame
from .scenario import Scenario
from .segments import Seg
from .steps import Abort, Close, Connect, Lose, RawSegment, Read, Repeat, Run, Scan, Send, StopReading, Wait
from .tcb import Tcb

FULL, WIRE = 0, 1
_FILLER = bytes(range(97, 123)) * 2521 + b"\n"  # 65547 bytes of a-z: readable in a hex dump


class SimConn:
    """A connection (one 4-tuple) as the simulator knows it: both endpoints and the wire."""

    __slots__ = ("engine", "id", "cip", "cport", "sip", "sport", "tcbs", "inflight", "waiting", "lose", "tx")

    def __init__(self, engine: Engine, cid: int, cip: str, cport: int, sip: str, sport: int) -> None:
        self.engine = engine
        self.id = cid
        self.cip, self.cport, self.sip, self.sport = cip, cport, sip, sport
        self.tcbs: list[Tcb | None] = [None, None]
        self.inflight = 0
        self.waiting: set[Task] = set()
        self.lose: list[set[int]] = [set(), set()]
        self.tx = [0, 0]

    def attach(self, tcb: Tcb) -> None:
        """Make ``tcb`` this connection's client or server endpoint (by its address)."""
        side = 0 if (tcb.host.ip, tcb.lport) == (self.cip, self.cport) else 1
        self.tcbs[side] = tcb

    def changed(self) -> None:
        """Something happened to it: re-check the scripts waiting for it to settle."""
        if self.waiting:
            self.engine.dirty.add(self)

    def states(self) -> tuple[int, int]:
        """(client, server) RFC 9293 states now (CLOSED where there is no endpoint)."""
        c, s = self.tcbs
        return (c.state if c is not None else CLOSED, s.state if s is not None else CLOSED)

    @property
    def key(self) -> tuple[str, int, str, int]:
        """(client ip, client port, server ip, server port)."""
        return (self.cip, self.cport, self.sip, self.sport)


class Task:
    """A running script: a generator of waits, with a parent waiting for it to finish."""

    __slots__ = ("gen", "parent", "pending", "joined")

    def __init__(self, gen: Iterator, parent: Task | None) -> None:
        self.gen = gen
        self.parent = parent
        self.pending = 0
        self.joined = False


class Ctx:
    """What a script instance acts on: its current connection."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: SimConn | None = None

class Engine(Network):
    """Runs one scenario with one seed; :meth:`frames` yields the captured frames in order.

    Args:
        scenario: the validated scenario.
        seed: seeds the one ``random.Random`` behind ISNs, ports, sizes and picks.
        record: keep every connection for :meth:`truth` (off for endless scenarios).
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, record: bool | None = None) -> None:
        m = scenario.model
        super().__init__(m, m.seed if seed is None else seed)
        self.scenario = scenario
        self.think = round(m.network.think * SECOND)
        self.record = scenario.finite if record is None else record
        self.conns: list[SimConn] = []
        self.by_key: dict[tuple, SimConn] = {}
        self.nconns = 0
        self.dirty: set[SimConn] = set()
        self.waiting: dict[Task, tuple[list[SimConn], int]] = {}
        self.main: Task | None = None
        self.done = False

    # -- the event loop ---------------------------------------------------------------------------
    def frames(self, max_packets: int | None = None, max_seconds: float | None = None) -> Iterator[SimFrame]:
        """Run the scenario, yielding each frame as it is captured (in capture order).

        Endless scenarios run until ``max_packets`` frames or ``max_seconds`` of simulated
        time (or forever, for a paced live demo).
        """
        limit_us = None if max_seconds is None else round(max_seconds * SECOND)
        self.main = Task(self._steps(Ctx(), self.model.steps), None)
        self._advance(self.main)
        n = 0
        heap = self.heap
        out = self.out
        while True:
            while out:
                f = out.popleft()
                if limit_us is not None and f.t_us > limit_us:
                    return
                yield f
                n += 1
                if max_packets is not None and n >= max_packets:
                    return
            if self.done or not heap:
                return
            t, _, fn, args = heapq.heappop(heap)
            if limit_us is not None and t > limit_us:
                return
            self.now = t
            fn(*args)
            if self.dirty:
                self._wake()

    def _wake(self) -> None:
        dirty = self.dirty
        self.dirty = set()
        for conn in dirty:
            for task in list(conn.waiting):
                entry = self.waiting.get(task)
                if entry is not None and self._settled(*entry):
                    del self.waiting[task]
                    for c in entry[0]:
                        c.waiting.discard(task)
                    self.schedule(self.now + self.think, self._advance, task)

    @staticmethod
    def _settled(conns: list[SimConn], mode: int) -> bool:
        for c in conns:
            if c.inflight:
                return False
            if mode == FULL:
                for t in c.tcbs:
                    if t is not None and not t.quiet():
                        return False
        return True

    # -- connections ------------------------------------------------------------------------------
    def _new_conn(self, cip: str, cport: int, sip: str, sport: int) -> SimConn:
        c = SimConn(self, self.nconns, cip, cport, sip, sport)
        self.nconns += 1
        if self.record:
            self.conns.append(c)
        self.by_key[c.key] = c
        if not self.record and self.nconns % 1024 == 0:
            # forget connections whose endpoints are all gone (endless scenarios)
            for k, old in list(self.by_key.items()):
                if not old.inflight and not old.waiting and all(
                        t is None or t.state == CLOSED for t in old.tcbs):
                    del self.by_key[k]
        return c

    def truth(self) -> list[tuple[tuple[str, int, str, int], int, int]]:
        """Each recorded connection's 4-tuple and its endpoints' states now (ground truth)."""
        return [(c.key, *c.states()) for c in self.conns]

    # -- scripts --------------------------------------------------------------------------------------
    def _advance(self, task: Task) -> None:
        gen = task.gen
        while True:
            try:
                req = next(gen)
            except StopIteration:
                self._finished(task)
                return
            kind = req[0]
            if kind == "sleep":
                self.schedule(self.now + max(0, req[1]), self._advance, task)
                return
            if kind == "settle":
                conns, mode = req[1], req[2]
                if self._settled(conns, mode):
                    self.schedule(self.now + self.think, self._advance, task)
                else:
                    self.waiting[task] = (conns, mode)
                    for c in conns:
                        c.waiting.add(task)
                return
            if kind == "spawn":
                child = Task(req[1], task)
                task.pending += 1
                self._advance(child)
                continue
            if kind == "join":
                if task.pending:
                    task.joined = True
                    return
                continue

    def _finished(self, task: Task) -> None:
        if task is self.main:
            self.done = True
            return
        p = task.parent
        if p is not None:
            p.pending -= 1
            if p.pending == 0 and p.joined:
                p.joined = False
                self.schedule(self.now, self._advance, p)

    def _steps(self, ctx: Ctx, steps: list) -> Iterator:
        for st in steps:
            yield from self._step(ctx, st)

    def _payload(self, st: Send | RawSegment) -> bytes:
        if st.data is not None:
            return st.data.encode("utf-8")
        assert st.size is not None  # the model's validator: one of data and size
        lo, hi = st.size
        n = lo if lo == hi else self.rng.randint(lo, hi)
        if n <= len(_FILLER):
            return _FILLER[:n]
        return (_FILLER * (n // len(_FILLER) + 1))[:n]

    def _tcb(self, ctx: Ctx, by: str) -> Tcb | None:
        conn = ctx.conn
        if conn is None:
            return None
        t = conn.tcbs[0 if by == "client" else 1]
        if t is None or t.state == CLOSED:
            return None
        return t

    def _step(self, ctx: Ctx, st) -> Iterator:
        rng = self.rng
        tcb: Tcb | None
        if isinstance(st, Connect):
            ip = self._client_ip()
            host = self._client_host(ip)
            sport = st.port or self.model.server.listen[0]
            cport = host.ephemeral_port()
            conn = self._new_conn(ip, cport, self.server.ip, sport)
            ctx.conn = conn
            tcb = Tcb(host, cport, self.server.ip, sport, conn)
            if st.simultaneous:
                peer = Tcb(self.server, sport, ip, cport, conn)
                tcb.active_open()
                peer.active_open()
            else:
                tcb.active_open()
            yield ("settle", [conn], FULL)
        elif isinstance(st, Send):
            tcb = self._tcb(ctx, st.by)
            if tcb is not None:
                tcb.app_send(self._payload(st))
                yield ("settle", [ctx.conn], FULL)
        elif isinstance(st, Close):
            sides = ("client", "server") if st.by == "both" else (st.by,)
            tcbs = [t for t in (self._tcb(ctx, s) for s in sides) if t is not None]
            for t in tcbs:
                t.app_close(orphan=st.op == "close")
            if tcbs:
                yield ("settle", [ctx.conn], FULL)
        elif isinstance(st, Abort):
            tcb = self._tcb(ctx, st.by)
            if tcb is not None:
                tcb.app_abort()
                yield ("settle", [ctx.conn], FULL)
        elif isinstance(st, Lose):
            if ctx.conn is not None:
                d = 0 if st.by == "client" else 1
                ctx.conn.lose[d].update(ctx.conn.tx[d] + w for w in st.which)
        elif isinstance(st, Wait):
            lo, hi = st.seconds
            s = lo if lo == hi else rng.uniform(lo, hi)
            yield ("sleep", round(s * SECOND))
        elif isinstance(st, StopReading):
            tcb = self._tcb(ctx, st.by)
            if tcb is not None:
                tcb.app_stop_reading()
        elif isinstance(st, Read):
            tcb = self._tcb(ctx, st.by)
            if tcb is not None:
                tcb.app_read()
                yield ("settle", [ctx.conn], FULL)
        elif isinstance(st, RawSegment):
            yield from self._raw(ctx, st)
        elif isinstance(st, Scan):
            yield from self._scan(ctx, st)
        elif isinstance(st, Repeat):
            yield from self._repeat(st)
        elif isinstance(st, Run):
            yield from self._steps(ctx, self.model.scripts[st.script])

    def _raw(self, ctx: Ctx, st: RawSegment) -> Iterator:
        rng = self.rng
        sender = self._client_host(self._client_ip())
        port = st.port or self.model.server.listen[0]
        if st.src is not None:
            net = ipaddress.ip_network(st.src, strict=False)
            for _ in range(100):  # a fresh 4-tuple: a repeated one would not be a new half-open
                ip = self._random_ip(net)
                sport = st.sport or rng.randint(1024, 65535)
                if (ip, sport, self.server.ip, port) not in self.by_key:
                    break
        else:
            ip = sender.ip
            sport = st.sport or sender.ephemeral_port()
        conn = self._new_conn(ip, sport, self.server.ip, port)
        ctx.conn = conn
        seq = st.seq if st.seq is not None else rng.getrandbits(32)
        payload = self._payload(st) if (st.data is not None or st.size is not None) else b""
        opts = [("MSS", 1460)] if st.flags & SYN else []
        self.transmit(sender, Seg(ip, sport, self.server.ip, port, seq, st.ack, st.flags, st.window, opts,
                                  payload, "", conn, sender.cfg.ttl))
        yield ("settle", [conn], WIRE)

    def _scan(self, ctx: Ctx, st: Scan) -> Iterator:
        rng = self.rng
        host = self._client_host(self._client_ip())
        sport = st.sport or host.ephemeral_port()
        conns = []
        gap = round(st.every * SECOND)
        for i, port in enumerate(st.ports):
            if i and gap:
                yield ("sleep", gap)
            conn = self._new_conn(host.ip, sport, self.server.ip, port)
            conns.append(conn)
            ctx.conn = conn
            opts = [("MSS", 1460)] if st.flags & SYN else []
            self.transmit(host, Seg(host.ip, sport, self.server.ip, port, rng.getrandbits(32), 0, st.flags, 1024,
                                    opts, b"", "", conn, host.cfg.ttl))
        yield ("settle", conns, WIRE)

    def _repeat(self, st: Repeat) -> Iterator:
        rng = self.rng
        forever = st.count == "forever"
        count = 0 if forever else int(st.count)
        if st.pick:
            names = list(st.pick)
            weights = list(st.pick.values())

        def body() -> list:
            if st.pick:
                return self.model.scripts[rng.choices(names, weights)[0]]
            assert st.steps is not None  # Repeat's validator: one of steps and pick
            return st.steps

        i = 0
        if st.every is None:
            while forever or i < count:
                start = self.now
                yield from self._steps(Ctx(), body())
                if self.now == start:
                    yield ("sleep", 1000)  # an iteration that takes no time must not spin
                i += 1
            return
        mean = round(st.every * SECOND)
        while forever or i < count:
            if i:
                gap = round(rng.expovariate(1.0 / mean)) if st.poisson and mean else mean
                yield ("sleep", max(gap, 1) if forever else gap)
            yield ("spawn", self._steps(Ctx(), body()))
            i += 1
        yield ("join",)
