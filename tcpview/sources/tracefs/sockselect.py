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

import numpy as np

from .formats import K_PROBE, K_STATE

_K_CLOSE, _K_LISTEN, _K_SYN_RECV = 7, 10, 3

HOLD_FOR = 300.0
"""Seconds an event that names no 4-tuple waits for its socket to name one (a connect
retried that long has said its 4-tuple long before, by a retransmission)."""

_MAX_KNOWN = 1 << 17  # decisions kept (sockets, 4-tuples): the oldest half leaves past it

Accepts = Callable[[int, bytes, int, bytes, int], bool]
"""(family, local address, local port, remote address, remote port) -> kept."""


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
        kinds, sks, olds, news = ev["kind"].tolist(), ev["sk"].tolist(), ev["old"].tolist(), ev["new"].tolist()
        fams, sports, dports = ev["fam"].tolist(), ev["sport"].tolist(), ev["dport"].tolist()
        probes = ev["kind"] == K_PROBE
        for i in np.flatnonzero(~probes).tolist():
            kind, sk = kinds[i], sks[i]
            if kind == K_STATE and (olds[i] == _K_CLOSE or (olds[i] == _K_LISTEN and news[i] == _K_SYN_RECV)):
                self._start(sk)
            listener = kind == K_STATE and news[i] == _K_LISTEN
            if fams[i] and sports[i] and (dports[i] or listener):
                keep[i] = self._decide(ev, i, keep, released)
            elif sk in self._life:
                keep[i] = self._life[sk]
            elif sk:
                self._held.setdefault(sk, []).append(i)
            # else: no socket and no 4-tuple, nothing to tell whose it is
        if probes.any():  # many of one socket: each 4-tuple asked once
            for i in np.flatnonzero(probes).tolist():
                if fams[i] and sports[i] and dports[i]:
                    keep[i] = self._decide(ev, i, keep, released)
                else:
                    keep[i] = self._life.get(sks[i], False)
        held = self._hold_on(ev)
        out = ev[keep]
        self.left_out += len(ev) - len(out) - held
        if released:
            out = np.concatenate([*released, out])
            out = out[np.argsort(out["ts"], kind="stable")]
        return out

    def _decide(self, ev: np.ndarray, i: int, keep: np.ndarray, released: list[np.ndarray]) -> bool:
        """Event i names its 4-tuple: its decision, which is its socket life's too (the
        events of the life that waited are kept with it, or left out)."""
        fam = int(ev["fam"][i])
        n = 16 if fam == 6 else 4
        key = (fam, ev["saddr"][i][:n].tobytes(), int(ev["sport"][i]), ev["daddr"][i][:n].tobytes(), int(ev["dport"][i]))
        ok = self._tuples.get(key)
        if ok is None:
            ok = self._tuples[key] = bool(self.accepts(*key))
            _bound(self._tuples)
        sk = int(ev["sk"][i])
        if sk:
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
