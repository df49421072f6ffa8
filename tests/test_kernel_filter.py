"""``--kernel`` beside a capture filter keeps only the kernel's events of the sockets the filter
is about: a file meant for one service carries no other socket's events.

The capture is real: ``tcpview summary -i lo -f 'tcp port A' --kernel -w FILE --json`` run as
a user runs it while the test talks to two loopback services, on ports A and B; the file's
custom blocks are read back as a replay reads them. The selection itself (events held until
their socket names its 4-tuple) is checked on built events, and the filter's test of a
4-tuple against libpcap's own compiled filters.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, reap, wait_until
from livehelp import env_with_repo, need_root, read_until, ss_rows, ss_state, tcpview_cmd
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)

from tcpview.sources.linktypes import LINKTYPE_ETHERNET, LINKTYPE_RAW
from tcpview.sources.live.tuplefilter import TupleFilter
from tcpview.sources.tracefs.decode import kevent_array
from tcpview.sources.tracefs.formats import K_DESTROY, K_PROBE, K_STATE
from tcpview.sources.tracefs.sockselect import SocketSelect

LO = "127.0.0.1"
LO4 = socket.inet_aton(LO)


def _talk(listener: socket.socket) -> tuple[int, int]:
    """One connection to ``listener``: a few bytes each way, the client closes first, then the
    server; (client port, server port)."""
    port = listener.getsockname()[1]
    c = socket.create_connection((LO, port))
    s, _ = listener.accept()
    c.sendall(b"ping")
    assert s.recv(4) == b"ping"
    s.sendall(b"pong")
    assert c.recv(4) == b"pong"
    ends = (c.getsockname()[1], port)
    c.close()
    assert s.recv(1) == b""
    s.close()
    return ends


def _closed_in_file(path: Path, ends: tuple[int, int]) -> bool:
    """Whether the capture file being written holds a packet of the client after the
    server's FIN (loopback: Ethernet, IPv4, TCP)."""
    from tcpview.sources.pcap import CaptureError, CaptureReader

    server_fin = False
    with CaptureReader(str(path)) as reader:
        try:
            for rec in reader.records():
                if rec is None:
                    continue
                sport, dport = struct.unpack_from("!HH", rec[3], rec[4] + 34)
                flags = rec[3][rec[4] + 47]
                if (sport, dport) == (ends[1], ends[0]) and flags & 0x01:
                    server_fin = True
                elif server_fin and (sport, dport) == ends:
                    return True
        except CaptureError:  # the writer is in the middle of a block
            pass
    return False


def _file_events(path: Path) -> np.ndarray:
    """Every kernel event the pcapng's custom blocks hold, as a replay reads them."""
    from tcpview.sources.pcap import CaptureReader

    got: list[np.ndarray] = []
    with CaptureReader(str(path)) as reader:
        reader.kernel = lambda ev, _lost: got.append(ev.copy())
        for _rec in reader.records():
            pass
    return np.concatenate(got) if got else kevent_array(0)


def test_a_filtered_capture_saves_only_its_sockets_events(tmp_path: Path) -> None:
    need_root()
    path = tmp_path / "one.pcapng"
    wanted, other = socket.socket(), socket.socket()
    for sk in (wanted, other):
        sk.bind((LO, 0))
        sk.listen()
    pa, pb = wanted.getsockname()[1], other.getsockname()[1]
    proc = subprocess.Popen(tcpview_cmd("summary", "-i", "lo", "-f", f"tcp port {pa}", "--kernel", "--json",
                                        "-w", str(path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_with_repo())
    try:
        read_until(proc.stderr, "capturing on lo", timeout=120)
        b_ends = _talk(other)
        a_ends = _talk(wanted)
        b2_ends = _talk(other)  # after A's too: the other service's events come on both sides of it

        def closed() -> bool:
            rows = ss_rows()
            return all(ss_state(rows, (LO, c), (LO, s)) == "TIME_WAIT" for c, s in (a_ends, b_ends, b2_ends))
        assert wait_until(closed, timeout=10)
        # the capture has A's last packet (the client's ACK of the server's FIN) before Ctrl-C
        assert wait_until(lambda: _closed_in_file(path, a_ends), timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
        wanted.close()
        other.close()
    assert proc.returncode == 0, err.decode()
    ev = _file_events(path)
    ports = set(zip(ev["sport"].tolist(), ev["dport"].tolist(), strict=True))
    assert ports and all(pa in p for p in ports), ports  # only sockets of port A (a connect's first: no local port yet)
    assert not any(pb in p or b_ends[0] in p or b2_ends[0] in p for p in ports)
    assert {(a_ends[0], pa), (pa, a_ends[0])} <= ports  # both ends of A's connection
    states = ev[ev["kind"] == K_STATE]
    assert ((states["sport"] == 0) & (states["dport"] == pa) & (states["new"] == 2)).sum() == 1  # its SYN_SENT
    # the live run's report and the file's give A's connection the kernel's states, and no others
    summary = json.loads(out)
    (conn,) = [c for c in summary["connections"] if c["client"]["port"] == a_ends[0]]
    assert [s["state"] for s in conn["kernel"]["client"]][:2] == ["SYN_SENT", "ESTABLISHED"]
    assert [s["state"] for s in conn["kernel"]["server"]][:2] == ["SYN_RECEIVED", "ESTABLISHED"]
    rc, replay, rerr = cli("summary", str(path), "--json")
    assert rc == 0, rerr
    assert [c["kernel"] for c in json.loads(replay)["connections"]] == [c["kernel"] for c in summary["connections"]]
    assert b"of sockets outside the capture filter left out" in err, err.decode()


# -- the selection, on built events ------------------------------------------------------------
A, B = 8080, 9090


def _ev(rows: list[tuple]) -> np.ndarray:
    """Events (ts, kind, sk, old, new, local port, remote port), IPv4 on loopback."""
    ev = kevent_array(len(rows))
    for i, (ts, kind, sk, old, new, sport, dport) in enumerate(rows):
        ev[i].ts, ev[i].kind, ev[i].sk, ev[i].old, ev[i].new = ts, kind, sk, old, new
        ev[i].fam, ev[i].sport, ev[i].dport = 4, sport, dport
        ev.saddr[i, :4] = ev.daddr[i, :4] = list(LO4)
    return ev


def _ports_filter() -> SocketSelect:
    return SocketSelect(TupleFilter(f"tcp port {A}", LINKTYPE_ETHERNET).accepts)


def test_an_event_without_its_4_tuple_waits_for_its_socket_to_name_it() -> None:
    sel = _ports_filter()
    # two connects: CLOSE -> SYN_SENT names no local port; the socket to A says its 4-tuple
    # only in the next batch, the one to B in this one
    first = sel(_ev([(1.0, K_STATE, 0xA, 7, 2, 0, A), (1.1, K_STATE, 0xB, 7, 2, 0, B),
                     (1.2, K_STATE, 0xB, 2, 1, 40001, B), (1.3, K_PROBE, 0xB, 0, 0, 40001, B)]))
    assert len(first) == 0
    second = sel(_ev([(2.0, K_STATE, 0xC, 10, 3, A, 40002), (2.1, K_STATE, 0xA, 2, 1, 40000, A)]))
    assert second["ts"].tolist() == [1.0, 2.0, 2.1]  # the SYN_SENT that waited, in time order
    assert sel.left_out == 3
    # the address of socket A is a new socket's: its event waits for that socket, which is B's
    third = sel(_ev([(3.0, K_STATE, 0xA, 1, 7, 40000, A), (3.1, K_DESTROY, 0xA, 0, 0, 40000, A),
                     (3.2, K_STATE, 0xA, 7, 2, 0, B)]))
    assert third["ts"].tolist() == [3.0, 3.1]
    fourth = sel(_ev([(4.0, K_STATE, 0xA, 2, 7, 40003, B)]))
    assert len(fourth) == 0 and sel.left_out == 5


def test_an_address_two_sockets_had_in_one_batch_keeps_each_ones_decision() -> None:
    """A socket of port A ends and its address is a new socket's, of port B, within one batch
    (what loopback connections one after another do): each one's probes go with it."""
    sel = _ports_filter()
    got = sel(_ev([(1.0, K_STATE, 0xA, 7, 2, 0, A), (1.1, K_STATE, 0xA, 2, 1, 40000, A),
                   (1.2, K_PROBE, 0xA, 0, 0, 40000, A), (1.3, K_STATE, 0xA, 1, 7, 40000, A),
                   (2.0, K_STATE, 0xA, 7, 2, 0, B), (2.1, K_STATE, 0xA, 2, 1, 40001, B),
                   (2.2, K_PROBE, 0xA, 0, 0, 40001, B), (2.3, K_PROBE, 0xA, 0, 0, 40001, B)]))
    assert got["ts"].tolist() == [1.0, 1.1, 1.2, 1.3] and sel.left_out == 4


def test_an_event_no_socket_names_is_dropped_when_its_address_starts_anew() -> None:
    sel = _ports_filter()
    assert len(sel(_ev([(1.0, K_STATE, 0xA, 7, 2, 0, A)]))) == 0
    # the connect never said its local port; the address now is a listener's, on A
    got = sel(_ev([(2.0, K_STATE, 0xA, 7, 10, A, 0), (2.5, K_STATE, 0xA, 10, 7, A, 0)]))
    assert got["ts"].tolist() == [2.0, 2.5] and sel.left_out == 1


@pytest.mark.parametrize("linktype", [LINKTYPE_ETHERNET, LINKTYPE_RAW])
@pytest.mark.parametrize(("expr", "kept4", "kept6"), [
    (f"tcp port {A}", True, True),
    (f"tcp src port {A}", True, True),  # the server's packets only: some of the 4-tuple's
    # only the SYNs, only the FINs (libpcap reads tcp[...] of IPv4 only, or of IPv6 too: its version's)
    (f"tcp[tcpflags] & tcp-syn != 0 and dst port {A}", True, None),
    (f"tcp port {A} and tcp[tcpflags] & tcp-fin != 0", True, None),
    (f"tcp port {B}", False, False),
    ("host 10.1.2.3", False, False),
    ("ip6", False, True),
])
def test_the_filters_test_of_a_4_tuple(linktype: int, expr: str, kept4: bool, kept6: bool | None) -> None:
    f = TupleFilter(expr, linktype)
    assert f.accepts(4, LO4, 40000, LO4, A) is kept4
    assert f.accepts(4, LO4, 40000, LO4, 40001) is False
    six = socket.inet_pton(socket.AF_INET6, "::1")
    if kept6 is not None:
        assert f.accepts(6, six, 40000, six, A) is kept6
