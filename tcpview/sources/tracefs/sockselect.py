"""Only the kernel's events of the sockets a capture filter is about.

The tracepoints fire for every TCP socket of the host. Beside a capture with a filter
(``live -i IFACE --kernel -f 'tcp port 8080'``), :class:`SocketSelect` keeps the events of the
sockets whose 4-tuple the filter lets packets of through, so the view, the summary and the
pcapng ``-w`` writes hold those sockets' events only, not every other service's.

The decision is made per socket life (one ``sk`` from the state change that starts a socket,
as :class:`~tcpview.engine.timeline.kernel_log.KernelLog` counts lives): by the first event
that names its 4-tuple (both ports; a listener's local port alone). An event that names no
4-tuple (a connecting socket's ``CLOSE -> SYN_SENT``: no local port yet) takes its life's
decision, or waits for it: it is handed out, in time order among the events of that later
batch, once a later event of the socket names it; dropped when the socket's address starts
another life first, or after :data:`HOLD_FOR` seconds. The test of a 4-tuple is the
filter's own (a callable, :class:`~tcpview.sources.live.tuplefilter.TupleFilter`), asked once
per 4-tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .formats import K_PROBE, K_STATE

_K_CLOSE, _K_LISTEN, _K_SYN_RECV = 7, 10, 3

HOLD_FOR = 300.0
"""Seconds an event that names no 4-tuple waits for its socket to name one (a connect
retried that long has said its 4-tuple long before, by a retransmission)."""

_MAX_KNOWN = 1 << 17  # decisions kept (sockets, 4-tuples): the oldest half leaves past it

Accepts = Callable[[int, bytes, int, bytes, int], bool]
"""(family, local address, local port, remote address, remote port) -> kept."""


class _Batch(NamedTuple):
    """A batch's columns the selection reads, as lists (reading a record's fields one by one
    costs a microsecond each), and its addresses."""

    kind: list
    sk: list
    old: list
    new: list
    fam: list
    sport: list
    dport: list
    saddr: np.ndarray
    daddr: np.ndarray

    @classmethod
    def of(cls, ev: np.ndarray) -> _Batch:
        """The columns of ``ev``."""
        return cls(ev["kind"].tolist(), ev["sk"].tolist(), ev["old"].tolist(), ev["new"].tolist(),
                   ev["fam"].tolist(), ev["sport"].tolist(), ev["dport"].tolist(), np.asarray(ev["saddr"]),
                   np.asarray(ev["daddr"]))

    def named(self, i: int, listener: bool = False) -> bool:
        """Whether event i names its 4-tuple (a listener: its local end)."""
        return bool(self.fam[i] and self.sport[i] and (self.dport[i] or listener))


class SocketSelect:
    """Selects, batch by batch, the events of the sockets ``accepts`` keeps.

    Args:
        accepts: the test of a 4-tuple.

    Only the thread that adds the events calls it (its state is the sockets seen so far).
    """

    def __init__(self, accepts: Accepts) -> None:
        self.accepts = accepts
        self._life: dict[int, bool] = {}  # sk -> its current life's decision
        self._tuples: dict[tuple, bool] = {}
        self._held: dict[int, list] = {}  # sk -> its events waiting: rows of this batch (int) or earlier ones
        self.left_out = 0
        """Events not kept (other sockets', and those whose socket never named its 4-tuple)."""

    def __call__(self, ev: np.ndarray) -> np.ndarray:
        """The events of ``ev`` (a batch in time order) to keep, with those of earlier
        batches whose socket this one decided, in time order."""
        if not len(ev):
            return ev
        keep = np.zeros(len(ev), dtype=bool)
        released: list[np.ndarray] = []
        b = _Batch.of(ev)
        probes = ev["kind"] == K_PROBE
        restarted: dict[int, float] = {}  # sockets whose address began a new life in this batch: when, last
        for i in np.flatnonzero(~probes).tolist():
            kind, sk = b.kind[i], b.sk[i]
            if kind == K_STATE and (b.old[i] == _K_CLOSE or (b.old[i] == _K_LISTEN and b.new[i] == _K_SYN_RECV)):
                self._start(sk)
                restarted[sk] = float(ev["ts"][i])
            if b.named(i, listener=kind == K_STATE and b.new[i] == _K_LISTEN):
                keep[i] = self._decide(b, i, keep, released)
            elif sk in self._life:
                keep[i] = self._life[sk]
            elif sk:
                self._held.setdefault(sk, []).append(i)
            # else: no socket and no 4-tuple, nothing to tell whose it is
        if probes.any():
            self._probes(ev, b, np.flatnonzero(probes), keep, released, restarted)
        held = self._hold_on(ev)
        out = ev[keep]
        self.left_out += len(ev) - len(out) - held
        if released:
            out = np.concatenate([*released, out])
            out = out[np.argsort(out["ts"], kind="stable")]
        return out

    def _probes(self, ev: np.ndarray, b: _Batch, rows: np.ndarray, keep: np.ndarray, released: list[np.ndarray],
                restarted: dict[int, float]) -> None:
        """The probes (one per ACK: most of a busy socket's events) take their socket's
        decision, found once per socket of the batch; those of an earlier life of an address
        that began a new one in this batch are decided one by one, by their own 4-tuple."""
        if restarted:
            ts, sks = ev["ts"][rows], ev["sk"][rows]
            since = np.array([restarted.get(sk, -np.inf) for sk in sks.tolist()])
            earlier = ts < since
            for k in rows[earlier].tolist():  # (not the decision of the life the address has now)
                keep[k] = self._decide(b, k, keep, released, life=False) if b.named(k) else False
            rows = rows[~earlier]
        uniq, first, inv = np.unique(ev["sk"][rows], return_index=True, return_inverse=True)
        decided = np.zeros(len(uniq), dtype=bool)
        for j, (sk, i) in enumerate(zip(uniq.tolist(), rows[first].tolist(), strict=True)):
            ok = self._life.get(sk) if sk else None
            if ok is None:
                ok = self._decide(b, i, keep, released) if b.named(i) else False
            decided[j] = ok
        keep[rows] = decided[inv]

    def _decide(self, b: _Batch, i: int, keep: np.ndarray, released: list[np.ndarray], life: bool = True) -> bool:
        """Event i names its 4-tuple: its decision, which is (``life``) its socket's current
        life's too (the events of the life that waited are kept with it, or left out)."""
        fam = b.fam[i]
        n = 16 if fam == 6 else 4
        key = (fam, b.saddr[i, :n].tobytes(), b.sport[i], b.daddr[i, :n].tobytes(), b.dport[i])
        ok = self._tuples.get(key)
        if ok is None:
            ok = self._tuples[key] = bool(self.accepts(*key))
            _bound(self._tuples)
        sk = b.sk[i]
        if sk and life:
            self._life[sk] = ok
            _bound(self._life)
            waiting = self._held.pop(sk, None)
            for w in waiting or ():
                if isinstance(w, int):
                    keep[w] = ok
                elif ok:
                    released.append(w)
                else:
                    self.left_out += len(w)
        return ok

    def _start(self, sk: int) -> None:
        """A new socket at address ``sk``: what its previous life left undecided is dropped."""
        self._life.pop(sk, None)
        for w in self._held.pop(sk, ()):
            if not isinstance(w, int):  # (this batch's are counted with the batch)
                self.left_out += len(w)

    def _hold_on(self, ev: np.ndarray) -> int:
        """This batch's events still waiting are kept aside (copies; how many is returned);
        those waiting longer than :data:`HOLD_FOR` are dropped."""
        now, held = float(ev["ts"][-1]), 0
        for sk in list(self._held):
            rows = self._held[sk]
            mine = [w for w in rows if isinstance(w, int)]
            older = [w for w in rows if not isinstance(w, int) and float(w["ts"][-1]) >= now - HOLD_FOR]
            self.left_out += sum(len(w) for w in rows if not isinstance(w, int)) - sum(len(w) for w in older)
            if mine:
                older.append(ev[mine])
                held += len(mine)
            if older:
                self._held[sk] = older
            else:
                del self._held[sk]
        return held


def _bound(known: dict) -> None:
    """Past :data:`_MAX_KNOWN` entries the oldest half leaves (dicts keep insertion order)."""
    if len(known) > _MAX_KNOWN:
        for k in list(known)[: len(known) // 2]:
            del known[k]
