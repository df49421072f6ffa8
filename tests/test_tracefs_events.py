"""Real kernel events through tcpview's instance and reader: the states of real loopback
sockets as the kernel set them, resets, cwnd and srtt per ACK, the time stamps within a
millisecond of a packet captured at the same moment, and ring overruns counted.

Other processes on the host make TCP events too: each test picks its own sockets' events by
their kernel address or ports.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import numpy as np
import pytest
from helpers import wait_until
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)

from tcpview.sources.tracefs import formats as fm
from tcpview.sources.tracefs.instance import TraceInstance
from tcpview.sources.tracefs.reader import KernelEvents

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a trace instance")

# the kernel's TCP state numbers (include/net/tcp_states.h)
EST, SYN_SENT, SYN_RECV, FW1, FW2, TW, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN = range(1, 11)


@pytest.fixture
def events():
    with TraceInstance.open(buffer_kb=1024) as inst, KernelEvents(inst) as ke:
        inst.start()
        got: list[np.ndarray] = []

        def until(pred, timeout: float = 10.0) -> np.ndarray:
            def more():
                got.append(ke.poll())
                ev = np.concatenate(got).view(np.recarray)
                return (ev,) if pred(ev) else None
            found = wait_until(more, timeout=timeout)
            assert found is not None, "the events awaited did not come"
            return found[0]

        ke.until = until  # type: ignore[attr-defined]
        yield ke


def _mine(ev, port: int):
    return ev[(ev.sport == port) | (ev.dport == port)]


def _states(ev, sk: int) -> list[tuple[int, int]]:
    e = ev[(ev.kind == fm.K_STATE) & (ev.sk == sk)]
    return list(zip(e.old.tolist(), e.new.tolist(), strict=True))


def test_the_kernels_states_of_a_loopback_connection(events):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = ls.accept()
    cport = c.getsockname()[1]
    c.sendall(b"x" * 50_000)
    s.recv(100_000)
    c.shutdown(socket.SHUT_WR)
    s.close()
    ls.close()
    ev = events.until(lambda e: ((e.kind == fm.K_DESTROY) & (e.sport == port) & (e.dport == 0)).any())
    c.close()
    mine = _mine(ev, port)
    assert (np.diff(mine.mono) >= 0).all(), "merged in time order"
    client = mine[(mine.kind == fm.K_STATE) & (mine.new == SYN_SENT)].sk[0]
    server = mine[(mine.kind == fm.K_STATE) & (mine.old == LISTEN) & (mine.new == SYN_RECV)].sk[0]
    assert _states(mine, client) == [(CLOSE, SYN_SENT), (SYN_SENT, EST), (EST, FW1), (FW1, FW2), (FW2, CLOSE)]
    assert _states(mine, server) == [(LISTEN, SYN_RECV), (SYN_RECV, EST), (EST, CLOSE_WAIT), (CLOSE_WAIT, LAST_ACK),
                                     (LAST_ACK, CLOSE)]
    est = mine[(mine.sk == server) & (mine.new == EST)][0]
    assert (est.fam, bytes(est.saddr[:4]), est.sport, bytes(est.daddr[:4]), est.dport) == \
        (4, bytes([127, 0, 0, 1]), port, bytes([127, 0, 0, 1]), cport)
    probes = mine[(mine.kind == fm.K_PROBE) & (mine.sk == client)]
    assert len(probes) > 0 and (probes.sport == cport).all()
    assert probes.cwnd[0] >= 10 and (probes.srtt > 0).all()
    assert ((mine.kind == fm.K_DESTROY) & (mine.sk == server)).any()
    assert events.stats[1] == 0


def test_resets_both_ways(events):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = ls.accept()
    cport = c.getsockname()[1]
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # an abortive close: the server sends RST, the client receives it
    ev = events.until(lambda e: ((e.kind == fm.K_RECV_RST) & (e.dport == port)).any())
    c.close()
    ls.close()
    mine = _mine(ev, port)
    sent = mine[mine.kind == fm.K_SEND_RST]
    assert len(sent) == 1 and sent.sport[0] == port and sent.old[0] == CLOSE  # closed, then the RST sent
    got = mine[mine.kind == fm.K_RECV_RST]
    assert len(got) == 1 and (got.sport[0], got.dport[0]) == (cport, port)


def test_event_times_are_within_a_millisecond_of_a_captured_packet(events):
    """The client's CLOSE -> SYN_SENT is set just before its SYN leaves: the SYN's capture
    time stamp (the kernel's, as every capture on Linux takes it) is the same moment."""
    ETH_P_ALL = 3
    SO_TIMESTAMPNS = 35  # asm-generic/socket.h: the socket module does not name it
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind(("lo", 0))
    cap.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    try:
        c = socket.create_connection(("127.0.0.1", port))
        syn_ts = None
        deadline = time.monotonic() + 5
        while syn_ts is None and time.monotonic() < deadline:
            data, anc, _f, _a = cap.recvmsg(256, 256)
            tcp = data[14 + 20:]  # Ethernet (lo), IPv4 without options
            if len(tcp) >= 14 and struct.unpack("!H", tcp[2:4])[0] == port and tcp[13] & 0x12 == 0x02:
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, ns = struct.unpack("qq", raw[:16])
                        syn_ts = sec + ns * 1e-9
        assert syn_ts is not None
        ev = events.until(lambda e: ((e.kind == fm.K_STATE) & (e.dport == port) & (e.new == SYN_SENT)).any())
        c.close()
    finally:
        cap.close()
        ls.close()
    k = ev[(ev.kind == fm.K_STATE) & (ev.dport == port) & (ev.new == SYN_SENT)][0]
    assert abs(k.ts - syn_ts) < 1e-3, (k.ts, syn_ts, k.ts - syn_ts)


def test_overruns_are_counted_like_drops():
    """A buffer of one page per CPU and many connections on one CPU, read only afterwards:
    the kernel overwrote events, and both the stats file and the pages say so."""
    with TraceInstance.open(buffer_kb=4) as inst, KernelEvents(inst) as ke:
        inst.start()
        was = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(was)})
        try:
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            ls.listen(512)
            port = ls.getsockname()[1]
            for _ in range(200):
                c = socket.create_connection(("127.0.0.1", port))
                s, _a = ls.accept()
                s.close()
                c.close()
            ls.close()
        finally:
            os.sched_setaffinity(0, was)
        ev = ke.poll(final=True)
        assert ke.lost() > 0
        assert ke.stats[0] > 0, "a page read after an overrun says events were missed"
        assert len(ev) > 0
