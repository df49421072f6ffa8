"""Live capture on lo with real sockets: states and counters against ``ss -tan``, each loopback
packet counted once, kernel drops reported, saving with -w, and the one-line errors (the
headless ``summary -i``: tests/test_live_summary.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import wait_until
from livehelp import (
    env_with_repo,
    need_root,
    read_until,
    ss_rows,
    ss_state,
    tcpview_cmd,
    wait_fed,
    wait_settled,
    wait_tcpdump_wrote,
)

from tcpview.engine.core.tcp import STATE_NAMES
from tcpview.engine.pump import PumpThread, load
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources.live.capture import LiveSource
from tcpview.sources.live.ifaces import default_interface
from tcpview.sources.live.ring import LiveError, compile_filter, drop_loopback_outgoing


@pytest.fixture(autouse=True)
def _root():
    need_root()


def _capture(bpf: str, **kw) -> tuple[LiveSource, Tracker, PumpThread]:
    src = LiveSource("lo", bpf, **kw)
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    return src, tr, cap


def _finish(src: LiveSource, cap: PumpThread) -> None:
    cap.wait_idle(5)
    cap.stop()
    src.close()


# -- states and counters equal ss -tan ---------------------------------------------------------
def test_live_states_and_counters_equal_ss(lo_traffic):
    t = lo_traffic
    for name in ("time_wait", "close_wait", "established", "server_first", "abort"):
        t.listener(name)
    t.reserve("refused")
    src, tr, cap = _capture(t.bpf())
    try:
        ends = {
            "time_wait": t.time_wait(),
            "close_wait": t.close_wait(),
            "refused": t.refused(),
            "established": t.established(),
            "server_first": t.server_first(),
            "abort": t.abort(),
        }
        wait_settled(t.ports.values())  # the last ACKs are sent
        wait_fed(src, cap)
        assert cap.wait_idle(5)
        rows = ss_rows()
    finally:
        _finish(src, cap)
    tl = tr.tl
    assert src.status()["dropped"] == 0
    assert len(tl.conns) == len(ends)
    by_ends = {((tl.conns[i].client_text()), tl.conns[i].server_text()): i for i in range(len(tl.conns))}
    expected = {}
    for name, (c, s) in ends.items():
        cid = by_ends[(f"{c[0]}:{c[1]}", f"{s[0]}:{s[1]}")]
        sniffed = tuple(STATE_NAMES[x] for x in tl.conns[cid].state)
        kernel = (ss_state(rows, c, s), ss_state(rows, s, c))
        assert sniffed == kernel, name
        expected[name] = kernel
    # the scenarios did what they say (so the comparison above covers these states)
    assert expected["time_wait"] == ("TIME_WAIT", "CLOSED")
    assert expected["close_wait"] == ("FIN_WAIT_2", "CLOSE_WAIT")
    assert expected["refused"] == ("CLOSED", "CLOSED")
    assert expected["established"] == ("ESTABLISHED", "ESTABLISHED")
    assert expected["server_first"] == ("CLOSED", "TIME_WAIT")
    assert tl.conns[by_ends[tuple(f"{a}:{p}" for a, p in ends["refused"])]].refused
    # counters: the capture's endpoints per state equal ss's connected sockets on these ports
    ports = set(t.ports.values())
    ss_counts: dict[str, int] = {}
    for st, local, peer in rows:
        if st != "LISTEN" and (local[1] in ports or peer[1] in ports):
            ss_counts[st] = ss_counts.get(st, 0) + 1
    got = {k: v for k, v in tl.counters_at().items() if v}
    assert got == ss_counts


def test_loopback_packets_are_counted_once(lo_traffic):
    """lo gives packet sockets two copies of each packet; tcpdump (libpcap) shows one. Compare
    the two captures of the same traffic packet by packet."""
    t = lo_traffic
    port = t.listener("time_wait")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "256", "-n", "-w", "-",
                             f"tcp port {port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(dump.stderr, "listening on", 20)
        src, tr, cap = _capture(f"tcp port {port}")
        try:
            t.time_wait()
            wait_settled([port])
            wait_fed(src, cap)
            wait_tcpdump_wrote(dump)
            cap.wait_idle(5)
        finally:
            _finish(src, cap)
    finally:
        dump.terminate()
        out, _err = dump.communicate(timeout=10)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(out)
        f.flush()
        ref = load(f.name).timeline
    mine = tr.tl
    assert ref.packets >= 8  # handshake, data both ways, two FINs with their ACKs
    assert mine.packets == ref.packets
    segs = [(s.dir, tuple(s.flags), s.seq, s.ack, s.len) for s in mine.segments(0)]
    assert segs == [(s.dir, tuple(s.flags), s.seq, s.ack, s.len) for s in ref.segments(0)]
    assert len(set(segs)) == len(segs)  # no packet twice


def test_any_interface_counts_loopback_once(lo_traffic):
    t = lo_traffic
    port = t.listener("time_wait")
    src = LiveSource("any", f"tcp port {port}")
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    try:
        t.time_wait()
        wait_settled([port])
        wait_fed(src, cap)
        cap.wait_idle(5)
    finally:
        _finish(src, cap)
    assert src.linktype == 101  # cooked: raw IP
    c = tr.tl.conns[0]
    assert (STATE_NAMES[c.state[0]], STATE_NAMES[c.state[1]]) == ("TIME_WAIT", "CLOSED")
    segs = [(s.dir, tuple(s.flags), s.seq, s.ack) for s in tr.tl.segments(0)]
    assert len(set(segs)) == len(segs)


def test_kernel_drops_are_reported(lo_traffic):
    """A small ring nobody reads fills up; the drops show in status()."""
    t = lo_traffic
    port = t.listener("flood")
    src = LiveSource("lo", f"tcp port {port}", buffer_mb=2)  # two 1 MiB blocks
    try:
        cli, srv = t.pair("flood")
        cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = 0
        for _ in range(25000):
            cli.send(b"x")
            srv.send(b"y")  # keeps each write its own segment
            got += len(srv.recv(64)) if _ % 50 == 0 else 0
        st = src.status()
        assert st["dropped"] > 0
        assert st["captured"] == 0  # nothing was read yet
        # what is in the ring still comes out, then capture goes on
        stop = threading.Event()
        n = 0
        for rec in src.frames(stop):
            if rec is None:
                break
            n += 1
        assert 1000 < n < 50000 + 3
        assert src.status()["captured"] == n
    finally:
        src.close()


# -- saving with -w ----------------------------------------------------------------------------
def test_write_saves_what_is_captured(lo_traffic, tmp_path):
    t = lo_traffic
    t.listener("time_wait")
    out = tmp_path / "saved.pcap"
    src, tr, cap = _capture(t.bpf(), write=str(out))
    try:
        t.time_wait()
        wait_settled(t.ports.values())
        wait_fed(src, cap)
        cap.wait_idle(5)
        # the file is usable while capture goes on (flushed per block)
        assert wait_until(lambda: load(str(out)).timeline.packets == tr.tl.packets, 5)
    finally:
        _finish(src, cap)
    assert src.status()["saved"] == tr.tl.packets
    saved = load(str(out))
    assert saved.error is None
    assert [s.model_dump() for s in saved.timeline.segments(0)] == [s.model_dump() for s in tr.tl.segments(0)]
    # a real tool reads it too: tshark sees the same TCP flags in order
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "tcp.flags.str"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == tr.tl.packets
    assert "S" in r.stdout.splitlines()[0] and "F" in r.stdout


def test_write_refuses_to_overwrite(tmp_path):
    out = tmp_path / "keep.pcap"
    out.write_bytes(b"precious")
    with pytest.raises(LiveError, match="file exists"):
        LiveSource("lo", "tcp port 9", write=str(out))
    assert out.read_bytes() == b"precious"
    p = subprocess.run(tcpview_cmd("live", "-i", "lo", "-w", str(out)), capture_output=True, text=True,
                       env=env_with_repo(), timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "file exists" in p.stderr and "--force" in p.stderr
    assert out.read_bytes() == b"precious"
    src = LiveSource("lo", "tcp port 9", write=str(out), force=True)
    src.close()
    with pytest.raises(LiveError, match="standard output"):
        LiveSource("lo", "tcp port 9", write="-")
    assert out.read_bytes()[:4] == bytes.fromhex("4d3cb2a1")  # nanosecond pcap


def test_write_to_a_ring_keeps_the_newest_packets(lo_traffic, tmp_path):
    """A real capture saved to a ring of small files: every packet was saved, only the newest
    files stay, and together they hold the capture's last packets, in order."""
    t = lo_traffic
    t.listener("ring")
    src, tr, cap = _capture(t.bpf(), write=str(tmp_path / "cap.pcap"), ring_size=30_000, ring_files=3)
    try:
        for _ in range(12):  # 12 connections, ~10 KB each way: many files' worth
            cli, srv = t.pair("ring")
            cli.sendall(b"q" * 10_000)
            got = b""
            while len(got) < 10_000:
                got += srv.recv(65536)
            srv.sendall(b"r" * 10_000)
            srv.close()
            assert len(t.read_to_eof(cli)) == 10_000
            cli.close()
        wait_settled(t.ports.values())
        wait_fed(src, cap)
        cap.wait_idle(5)
    finally:
        _finish(src, cap)
    sink = src.sink
    assert sink.count == tr.tl.packets > 0 and sink.error is None
    kept = sorted(tmp_path.glob("cap_*.pcap"))
    assert [str(p) for p in kept] == list(sink.made) and len(kept) == 3
    assert sink.removed == sink.number - 3 > 0
    # what they hold is the tail of what the tracker saw: the same time stamps, in order
    stamps = []
    for p in kept:
        r = subprocess.run(["tshark", "-r", str(p), "-T", "fields", "-e", "frame.time_epoch"],
                           capture_output=True, text=True, timeout=60, check=True)
        stamps += [float(x) for x in r.stdout.split()]
    seen = sorted(s.ts for c in range(len(tr.tl.conns)) for s in tr.tl.segments(c))
    assert stamps == pytest.approx(seen[-len(stamps):], abs=2e-6)
    assert all(p.stat().st_size <= 30_000 for p in kept)


# -- user errors: one line, exit 2 -------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("live", "-i", "nosuchif0"), "no such interface"),
        (("live", "-i", "lo", "-f", "tcp port"), "bad capture filter"),
        (("live", "-i", "lo", "tcp", "portt", "80"), "bad capture filter"),
        (("summary", "-i", "nosuchif0", "--duration", "1"), "no such interface"),
        (("summary", "-i", "lo", "-f", "tcp and ((", "--duration", "1"), "bad capture filter"),
        (("live", "-i", "lo", "-f", "tcp", "udp"), "either with -f"),
        (("live", "-i", "lo", "-f", "ip6 and tcp[13] & 2 != 0"), "rejects all packets"),
    ],
)
def test_bad_interface_and_filter(args, fragment):
    p = subprocess.run(tcpview_cmd(*args), capture_output=True, text=True, env=env_with_repo(), timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert p.stderr.startswith("tcpview: error:") and p.stderr.count("\n") == 1, p.stderr
    assert fragment in p.stderr
    assert "Traceback" not in p.stderr


def test_compiled_filter_equals_tcpdump():
    """libpcap through ctypes gives exactly the program tcpdump -ddd prints for lo."""
    for expr in ("tcp port 80", "tcp and host 127.0.0.1 and portrange 1000-2000", "tcp[tcpflags] & tcp-syn != 0", "ip6 and tcp port 443"):
        r = subprocess.run(["tcpdump", "-i", "lo", "-ddd", expr], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        ref = [tuple(int(x) for x in line.split()) for line in lines[1:int(lines[0]) + 1]]
        assert compile_filter(expr) == ref


def test_loopback_prefix_keeps_program_jumps():
    prog = compile_filter("tcp port 80")
    assert drop_loopback_outgoing(prog)[3:] == prog
    with_if = drop_loopback_outgoing(prog, 1)
    assert with_if[5:] == prog and with_if[1][2] == 3  # not lo: jump over the pkttype check


def test_default_interface_from_route_table(tmp_path):
    hdr = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    f = tmp_path / "route"
    f.write_text(hdr + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                 "eth1\t00000000\t010010AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                 "eth1\t000010AC\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n")
    assert default_interface(str(f)) == "eth1"
    f.write_text(hdr + "eth1\t000010AC\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n")
    assert default_interface(str(f)) == "lo"
    assert default_interface(str(tmp_path / "missing")) == "lo"
    # this host: the same answer as ip route
    r = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.split():
        f = r.stdout.split()
        assert default_interface() == f[f.index("dev") + 1]


def test_status_counts_frames_the_decoder_skips():
    """A UDP datagram let through by the filter is captured but not TCP: status says so."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    src = LiveSource("lo", f"udp port {port}")
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    try:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(3):
            tx.sendto(b"not tcp", ("127.0.0.1", port))
        tx.close()
        assert wait_until(lambda: src.status()["captured"] == 3, 5)
        cap.wait_idle(5)
    finally:
        cap.stop()
        src.close()
        rx.close()
    st = src.status()
    assert st["captured"] == 3 and st["skipped"] == 3 and st["dropped"] == 0
    assert tr.tl.skipped == {"not tcp": 3}
    assert abs(src.now() - time.time()) < 1


def test_close_while_another_thread_reads(lo_traffic):
    """Quitting the UI closes the source while its worker may still be in frames(): the
    worker stops by itself, without touching the released ring."""
    t = lo_traffic
    port = t.listener("x")
    src = LiveSource("lo", f"tcp port {port}")
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    t.established("x")
    assert wait_until(lambda: tr.tl.packets >= 5, 5)
    closer = threading.Thread(target=src.close, daemon=True)
    closer.start()
    closer.join(10)  # a deadline, so a close() that blocks fails instead of hanging
    assert not closer.is_alive()  # close() returned
    # ... after the worker had stopped: close() did not give up waiting for it (its 2 s limit)
    assert not src.reading
    assert wait_until(lambda: cap.pump.done, 2)  # the pump's thread ran to its end
    assert cap.error is None
    cap.stop()  # nothing to re-raise


def test_ipv6_on_loopback():
    try:
        ls = socket.socket(socket.AF_INET6)
        ls.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    ls.listen(2)
    port = ls.getsockname()[1]
    src, tr, cap = _capture(f"ip6 and tcp port {port}")
    try:
        cli = socket.create_connection(("::1", port))
        srv, _ = ls.accept()
        cli.sendall(b"v6")
        assert srv.recv(8) == b"v6"
        cli.close()
        srv.recv(8)
        srv.close()
        wait_settled([port])
        wait_fed(src, cap)
        cap.wait_idle(5)
        rows = ss_rows()
    finally:
        _finish(src, cap)
        ls.close()
    c = tr.tl.connection(0)
    assert (c.client.ip, c.server.ip, c.server.port) == ("::1", "::1", port)
    assert (c.client.state, c.server.state) == (
        ss_state(rows, ("::1", c.client.port), ("::1", port)), ss_state(rows, ("::1", port), ("::1", c.client.port)))
    assert (c.client.state, c.server.state) == ("TIME_WAIT", "CLOSED")


_IFDOWN = r"""
import subprocess, sys, threading, time
from tcpview.sources.live.capture import LiveSource
subprocess.run(["ip", "link", "add", "tv0", "type", "veth", "peer", "name", "tv1"], check=True)
subprocess.run(["ip", "link", "set", "tv0", "up"], check=True)
src = LiveSource("tv0")
stop = threading.Event()
idle = [0]
def run():
    for r in src.frames(stop):
        if r is None:
            idle[0] += 1
th = threading.Thread(target=run)
th.start()
for _ in range(200):  # the reader is polling the ring
    if idle[0]:
        break
    time.sleep(0.05)
subprocess.run(["ip", "link", "set", "tv0", "down"], check=True)
for _ in range(200):  # the reader notices (at once, unless the machine is busy)
    if src.error:
        break
    time.sleep(0.05)
before = idle[0]
time.sleep(0.5)  # a measuring window: how often the reader polls (its rate is printed)
stop.set()
th.join(2)
print(src.error, (idle[0] - before) / 0.5, sep="|")
src.close()
"""


def test_interface_going_down_is_reported_without_spinning():
    """In a network namespace of its own (nothing on this host is touched): a veth the
    capture is bound to goes down; the error is kept and the reader keeps polling calmly."""
    import shutil

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a network namespace here")
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", _IFDOWN], capture_output=True, text=True,
                       env=env_with_repo(), timeout=60)
    if p.returncode != 0 and "veth" in p.stderr:
        pytest.skip(f"no veth support: {p.stderr.strip().splitlines()[-1:]}")
    assert p.returncode == 0, p.stderr
    error, rate = p.stdout.strip().split("|")
    assert error == "interface tv0 went down"
    assert float(rate) < 100  # about 10 idle wake-ups a second, not a busy loop
