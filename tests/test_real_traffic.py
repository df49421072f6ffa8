"""Real TCP on 127.0.0.1, captured with tcpdump: every endpoint's state from
``tcpview summary --json`` must be what ``ss -tan`` showed for that socket (CLOSED when the
kernel had no socket), and the counters must equal ss's counts. Needs root."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

import pytest
from helpers import REPO, cli
from livehelp import TCPDUMP_OPTS, can_capture, read_until, ss_sockets, wait_settled, wait_tcpdump_wrote

pytestmark = pytest.mark.skipif(can_capture() is not None, reason=str(can_capture()))

# what each scenario leaves behind, by the TCP rules (client, server)
EXPECTED = {
    "time_wait": ("TIME_WAIT", "CLOSED"),
    "close_wait": ("FIN_WAIT_2", "CLOSE_WAIT"),
    "refused": ("CLOSED", "CLOSED"),
    "abort": ("CLOSED", "CLOSED"),
    "half_close": ("TIME_WAIT", "CLOSED"),
    "server_first": ("CLOSED", "TIME_WAIT"),
    "established": ("ESTABLISHED", "ESTABLISHED"),
    "reuse": ("ESTABLISHED", "ESTABLISHED"),  # the second connection on the 4-tuple
    "server_abort": ("CLOSED", "CLOSED"),
}
# and as Zeek names how each ended (its conn.log conn_state)
ZEEK = {"time_wait": "SF", "close_wait": "S2", "refused": "REJ", "abort": "RSTO", "half_close": "SF",
        "server_first": "SF", "established": "S1", "reuse": "S1", "server_abort": "RSTR"}


@pytest.fixture(scope="module")
def summary(loopback_capture):
    rc, out, err = cli("summary", str(loopback_capture.pcap), "--json")
    assert rc == 0, err
    return json.loads(out)


def ss_state(ss, local: tuple[str, int], peer: tuple[str, int]) -> str:
    found = [st for st, lo, pe in ss if lo == local and pe == peer]
    assert len(found) <= 1, found
    return found[0] if found else "CLOSED"


def by_server_port(summary) -> dict[int, dict]:
    """The newest connection of each server port."""
    return {c["server"]["port"]: c for c in summary["connections"]}


def ends(c: dict) -> tuple[tuple[str, int], tuple[str, int]]:
    return (c["client"]["ip"], c["client"]["port"]), (c["server"]["ip"], c["server"]["port"])


def test_one_connection_per_scenario(loopback_capture, summary):
    conns = by_server_port(summary)
    assert set(conns) == set(loopback_capture.ports.values())
    # two on the reused 4-tuple, one for every other scenario
    assert len(summary["connections"]) == len(loopback_capture.ports) + 1
    assert summary["skipped"] == {}
    assert summary["tcp_packets"] == summary["packets"]
    for c in summary["connections"]:
        assert c["client"]["ip"] == c["server"]["ip"] == "127.0.0.1"
        assert c["partial"] is False


def test_every_endpoint_state_equals_ss(loopback_capture, summary):
    ss = loopback_capture.ss
    newest = {}
    for c in summary["connections"]:
        newest[ends(c)] = c
    for c in summary["connections"]:
        cl, sv = ends(c)
        if newest[(cl, sv)] is not c:
            # an older connection on a reused 4-tuple: its sockets are gone
            assert (c["client"]["state"], c["server"]["state"]) == ("CLOSED", "CLOSED"), c
            continue
        assert c["client"]["state"] == ss_state(ss, cl, sv), c
        assert c["server"]["state"] == ss_state(ss, sv, cl), c


def test_reused_four_tuple(loopback_capture, summary):
    port = loopback_capture.ports["reuse"]
    old, new = [c for c in summary["connections"] if c["server"]["port"] == port]
    assert ends(old) == ends(new)
    assert new["id"] > old["id"]
    # in ss only the new connection: the server's TIME_WAIT socket was taken over
    cl, sv = ends(new)
    assert ss_state(loopback_capture.ss, sv, cl) == "ESTABLISHED"
    rc, out, err = cli("ladder", str(loopback_capture.pcap), "--conn", str(old["id"]), "--format", "json")
    assert rc == 0, err
    server_moves = [t["new"] for t in json.loads(out)["transitions"] if t["side"] == "server"]
    assert server_moves[-2:] == ["TIME_WAIT", "CLOSED"]


def test_scenarios_end_as_tcp_says(loopback_capture, summary):
    # the scenarios really produced the situations they are named after (in ss and in tcpview)
    conns = by_server_port(summary)
    ss = loopback_capture.ss
    for name, (cs, sv) in EXPECTED.items():
        c = conns[loopback_capture.ports[name]]
        assert (c["client"]["state"], c["server"]["state"]) == (cs, sv), name
        cl = (c["client"]["ip"], c["client"]["port"])
        srv = (c["server"]["ip"], c["server"]["port"])
        assert (ss_state(ss, cl, srv), ss_state(ss, srv, cl)) == (cs, sv), name


def test_counters_equal_ss_counts(loopback_capture, summary):
    ss_counts = Counter(st for st, _l, peer in loopback_capture.ss if st != "LISTEN")
    assert ss_counts["TIME_WAIT"] == summary["counters"]["TIME_WAIT"] == 3
    assert ss_counts["CLOSE_WAIT"] == summary["counters"]["CLOSE_WAIT"] == 1
    for state, n in summary["counters"].items():
        if state != "LISTEN":
            assert n == ss_counts[state], state


def test_refused_and_abort_notes(loopback_capture, summary):
    conns = by_server_port(summary)
    assert "refused" in conns[loopback_capture.ports["refused"]].get("notes", [])
    abort = conns[loopback_capture.ports["abort"]]
    assert "reset" in abort.get("notes", []) and "refused" not in abort.get("notes", [])
    assert abort["bytes"] == 100


def test_half_close_ladder(loopback_capture, summary):
    conns = by_server_port(summary)
    cid = conns[loopback_capture.ports["half_close"]]["id"]
    rc, out, err = cli("ladder", str(loopback_capture.pcap), "--conn", str(cid), "--format", "json")
    assert rc == 0, err
    segs = json.loads(out)["segments"]
    fin = next(i for i, s in enumerate(segs) if "FIN" in s["flags"])
    assert segs[fin]["dir"] == "c2s"
    # after the client's FIN the server still sends its 60000 bytes
    after = [s for s in segs[fin + 1:] if s["dir"] == "s2c" and s["len"] > 0]
    assert sum(s["len"] for s in after) == 60000
    # (the last chunk may ride on the server's FIN, which moves the states on)
    assert all(s["client_state"] == "FIN_WAIT_2" and s["server_state"] == "CLOSE_WAIT"
               for s in after if "FIN" not in s["flags"])
    assert any("FIN" not in s["flags"] for s in after)
    assert sum(s["len"] for s in segs if s["dir"] == "c2s") == len(b"request")


def test_live_stream_on_stdin():
    """``tcpdump -w - | tcpview summary -``: the stream is read as tcpdump writes it."""
    base = None
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base < 65000 and not ss_sockets(base, base + 1):
            break
    lo, hi = base, base + 1
    env = dict(os.environ, PYTHONPATH=str(REPO))
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", *TCPDUMP_OPTS, "-w", "-",
         f"tcp and host 127.0.0.1 and portrange {lo}-{hi}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    view = subprocess.Popen([sys.executable, "-m", "tcpview", "summary", "-", "--json"], stdin=dump.stdout,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    dump.stdout.close()
    keep = []
    try:
        read_until(dump.stderr, "listening on", 20)
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", lo))
        ls.listen()
        keep.append(ls)
        a = socket.create_connection(("127.0.0.1", lo))
        sa, _ = ls.accept()
        b = socket.create_connection(("127.0.0.1", lo))
        sb, _ = ls.accept()
        a.sendall(b"one")
        sa.recv(8)
        a.close()
        sa.recv(8)
        sa.close()  # a: client TIME_WAIT
        b.close()  # b: server CLOSE_WAIT (sb kept open)
        keep.append(sb)
        wait_settled(range(lo, hi + 1))  # the last ACKs are sent
        ss = ss_sockets(lo, hi)
        wait_tcpdump_wrote(dump)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        out, err = view.communicate(timeout=60)
        for s in keep:
            s.close()
    assert view.returncode == 0, err
    s = json.loads(out)
    assert s["source"] == "-"
    assert len(s["connections"]) == 2
    for c in s["connections"]:
        cl = (c["client"]["ip"], c["client"]["port"])
        sv = (c["server"]["ip"], c["server"]["port"])
        assert c["client"]["state"] == ss_state(ss, cl, sv)
        assert c["server"]["state"] == ss_state(ss, sv, cl)
    assert s["counters"]["TIME_WAIT"] == 1 and s["counters"]["CLOSE_WAIT"] == 1


def test_zeek_conn_states_of_the_real_scenarios(loopback_capture, summary):
    conns = by_server_port(summary)
    got = {name: conns[port]["conn_state"] for name, port in loopback_capture.ports.items()}
    assert got == ZEEK
    # histories: the handshake, data both ways, both FINs; refused: a SYN and the peer's RST
    assert conns[loopback_capture.ports["refused"]]["history"] == "Sr"
    assert conns[loopback_capture.ports["time_wait"]]["history"].startswith("ShAD")
    assert sorted(conns[loopback_capture.ports["time_wait"]]["history"]) == sorted("ShADadFf")
    assert conns[loopback_capture.ports["established"]]["history"] == "ShADa"
    assert conns[loopback_capture.ports["abort"]]["history"].endswith("R")
    assert conns[loopback_capture.ports["server_abort"]]["history"].endswith("r")
    # the first connection on the reused 4-tuple: closed by both, no data (the last ACK is the server's a)
    first = next(c for c in summary["connections"] if c["server"]["port"] == loopback_capture.ports["reuse"])
    assert (first["conn_state"], sorted(first["history"])) == ("SF", sorted("ShAfFa"))
