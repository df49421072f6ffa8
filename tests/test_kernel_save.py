"""``-w`` with ``--kernel`` keeps the kernel's events in the pcapng it writes (tcpview's custom
blocks), and a file read later shows them as the live run did: summary JSON's ``"kernel"``,
the replay's ladder rows and ``cwnd`` / ``srtt`` graphs. Other readers skip the blocks.

The capture is real: ``tcpview summary -i lo --kernel -w FILE --json`` run as a user runs it
(a subprocess, ended with Ctrl-C) while the test makes loopback connections; its JSON is the
live run's answer, which the file's must equal. tshark and capinfos read the same file.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import Flow, cli, ng_block, pcapng_bytes, reap, wait_until
from livehelp import env_with_repo, need_root, read_until, ss_rows, ss_state, tcpview_cmd
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)

from tcpview.sources import kblocks
from tcpview.sources.tracefs.decode import kevent_array
from tcpview.sources.tracefs.formats import K_STATE

LO = "127.0.0.1"
BULK = 400_000


class Saved:
    """The capture the module's tests read: the file, the live run's JSON, the ports."""

    def __init__(self, path: Path, live: dict, bulk: tuple[int, int], waiting: tuple[int, int],
                 hidden: tuple[int, int]) -> None:
        self.path, self.live, self.bulk, self.waiting, self.hidden = path, live, bulk, waiting, hidden

    def conn(self, summary: dict, ends: tuple[int, int]) -> dict:
        found = [c for c in summary["connections"] if (c["client"]["port"], c["server"]["port"]) == ends]
        assert len(found) == 1, found
        return found[0]


def _sent_by(path: Path, port: int) -> int:
    """Packets from ``port`` in the capture file being written (loopback: Ethernet, IPv4)."""
    from tcpview.sources.pcap import CaptureError, CaptureReader

    n = 0
    with CaptureReader(str(path)) as reader:
        try:
            for rec in reader.records():
                if rec is not None and struct.unpack_from("!H", rec[3], rec[4] + 34)[0] == port:
                    n += 1
        except CaptureError:  # the writer is in the middle of a block
            pass
    return n


def _drain(s: socket.socket) -> None:
    while s.recv(65536):
        pass
    s.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Saved:
    """A bulk transfer the client closes first (TIME_WAIT / CLOSED), a connection whose
    client closed while its server did not (FIN_WAIT_2 / CLOSE_WAIT), and one closed by both
    whose server FIN the capture filter hides (the inference is wrong there: the kernel is
    right), captured with ``summary -i lo --kernel -w``."""
    need_root()
    path = tmp_path_factory.mktemp("ksave") / "kernel.pcapng"
    ls, hl = socket.socket(), socket.socket()
    for sk in (ls, hl):
        sk.bind((LO, 0))
        sk.listen()
    port, hport = ls.getsockname()[1], hl.getsockname()[1]
    bpf = f"tcp port {port} or (tcp port {hport} and not (src port {hport} and tcp[tcpflags] & tcp-fin != 0))"
    proc = subprocess.Popen(tcpview_cmd("summary", "-i", "lo", "-f", bpf, "--kernel", "--json", "-w", str(path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_with_repo())
    socks: list[socket.socket] = [ls, hl]
    try:
        read_until(proc.stderr, "capturing on lo", timeout=120)
        c = socket.create_connection((LO, port))
        bulk = (c.getsockname()[1], port)
        s, _ = ls.accept()
        reader = threading.Thread(target=_drain, args=(s,))
        reader.start()
        c.sendall(b"x" * BULK)
        c.close()
        reader.join(10)
        c2 = socket.create_connection((LO, port))
        s2, _ = ls.accept()
        socks += [c2, s2]
        waiting = (c2.getsockname()[1], port)
        c2.shutdown(socket.SHUT_WR)
        c3 = socket.create_connection((LO, hport))
        s3, _ = hl.accept()
        hidden = (c3.getsockname()[1], hport)
        c3.close()
        assert wait_until(lambda: ss_state(ss_rows(), (LO, hport), (LO, hidden[0])) == "CLOSE_WAIT", timeout=10)
        # the server's ACK of that FIN on its own, captured, before its FIN (which the filter
        # hides): an ACK still delayed when it closes rides on the FIN, and the capture would
        # see the client's FIN unacknowledged (FIN_WAIT_1; seen once under load)
        assert wait_until(lambda: _sent_by(path, hport) == 2, timeout=10)  # SYN-ACK, ACK
        s3.close()

        def shown():
            rows = ss_rows()
            return ss_state(rows, (LO, waiting[0]), (LO, port)) == "FIN_WAIT_2" and \
                ss_state(rows, (LO, port), (LO, waiting[0])) == "CLOSE_WAIT" and \
                ss_state(rows, (LO, hidden[0]), (LO, hport)) == "TIME_WAIT"
        assert wait_until(shown, timeout=10)
        # the last packet (the hidden client's ACK of the FIN not captured) is in the file:
        # every packet reached the capture before Ctrl-C
        assert wait_until(lambda: _sent_by(path, hidden[0]) == 4, timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
        for sk in socks:
            sk.close()
    assert proc.returncode == 0, err.decode()
    assert b" kernel event" in err and b"to " + str(path).encode() in err, err.decode()
    return Saved(path, json.loads(out), bulk, waiting, hidden)


def test_summary_of_the_file_gives_the_live_runs_kernel_states(saved: Saved) -> None:
    rc, out, err = cli("summary", str(saved.path), "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert len(got["connections"]) == len(saved.live["connections"])
    for ends in (saved.bulk, saved.waiting, saved.hidden):
        live, file = saved.conn(saved.live, ends), saved.conn(got, ends)
        assert set(live["kernel"]) == {"client", "server"}, live["kernel"]
        assert file["kernel"] == live["kernel"]  # every state, every time stamp
        assert (file["client"]["state"], file["server"]["state"]) == (live["client"]["state"], live["server"]["state"])
    waiting = saved.conn(got, saved.waiting)["kernel"]
    assert (waiting["client"][-1]["state"], waiting["server"][-1]["state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")
    bulk = saved.conn(got, saved.bulk)["kernel"]
    assert [s["state"] for s in bulk["client"]][:2] == ["SYN_SENT", "ESTABLISHED"]
    hidden = saved.conn(got, saved.hidden)
    assert hidden["kernel"]["client"][-1]["state"] == "TIME_WAIT"
    assert hidden["client"]["state"] == "FIN_WAIT_2"  # the server's FIN was not captured: the kernel is right


def _kernel_rows_of_text(text: str) -> list[tuple[str, str]]:
    """(side, state) of each ``(kernel set STATE)`` row of a text ladder, read from the column
    the state is written in."""
    lines = text.splitlines()
    server_at = lines[1].index("server")
    out = []
    for line in lines[2:]:
        if "(kernel set " not in line:
            continue
        state = line.split("(kernel set ")[1].split(")")[0]
        client, server = line[12:26].strip(), line[server_at:].strip()
        assert (client, server) in ((state, ""), ("", state)), line
        out.append(("client" if client else "server", state))
    return out


def test_text_and_json_ladder_show_the_kernels_rows(saved: Saved) -> None:
    """``tcpview ladder FILE --conn N`` shows the kernel's own state changes as the viewer's
    ladder does: a ``kernel set STATE`` row in the endpoint's column, in time order among
    the segments; ``--format json`` gives them as summary does."""
    for ends, want_client, want_server in (
            (saved.bulk, ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"],
             ["SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
            (saved.waiting, ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2"],
             ["SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT"])):
        live = saved.conn(saved.live, ends)
        rc, out, err = cli("ladder", str(saved.path), "--conn", str(live["id"]))
        assert rc == 0, err
        shown = _kernel_rows_of_text(out)
        want = [(side, s["state"]) for _ts, side, s in
                sorted((s["ts"], side, s) for side in ("client", "server") for s in live["kernel"][side])]
        assert shown == want, out
        assert [st for side, st in shown if side == "client"] == want_client
        assert [st for side, st in shown if side == "server"] == want_server
        segments = [line for line in out.splitlines()[2:] if "(kernel set " not in line]
        assert len(segments) == live["packets"]  # every segment still has its row
        rc, out, err = cli("ladder", str(saved.path), "--conn", str(live["id"]), "--format", "json")
        assert rc == 0, err
        assert json.loads(out)["kernel"] == live["kernel"]


def test_tshark_and_capinfos_read_every_packet(saved: Saved) -> None:
    """Other readers skip the blocks: every TCP packet is read, with the frame numbers
    tcpview gives them (Wireshark counts a custom block as a frame of its own; so does tcpview)."""
    p = subprocess.run(["tshark", "-r", str(saved.path), "-Y", "tcp", "-T", "fields", "-e", "frame.number",
                        "-e", "tcp.stream"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "error" not in p.stderr.lower() and "cut short" not in p.stderr, p.stderr
    rows = [tuple(map(int, line.split("\t"))) for line in p.stdout.splitlines()]
    rc, out, _err = cli("summary", str(saved.path), "--json")
    summary = json.loads(out)
    assert len(rows) == summary["tcp_packets"] > 0
    for c in summary["connections"]:
        rc, out, err = cli("ladder", str(saved.path), "--conn", str(c["id"]), "--format", "json")
        assert rc == 0, err
        frames = [s["frame"] for s in json.loads(out)["segments"]]
        assert frames == [f for f, stream in rows if stream == c["id"]]
    info = subprocess.run(["capinfos", "-c", "-M", str(saved.path)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "error" not in info.stderr.lower(), info.stderr


def test_graph_cwnd_and_srtt_from_the_file(saved: Saved) -> None:
    rc, out, _err = cli("summary", str(saved.path), "--json")
    cid = saved.conn(json.loads(out), saved.bulk)["id"]
    for kind, word in (("cwnd", "congestion window"), ("srtt", "smoothed RTT")):
        rc, out, err = cli("graph", str(saved.path), "--conn", str(cid), "--kind", kind)
        assert rc == 0, err
        assert word in out and "client" in out, out[:400]


async def test_replay_shows_the_kernel_rows_and_graphs(saved: Saved) -> None:
    from tcpview.engine.output.ladder import KERNEL_ROW
    from tcpview.sources.base import FileSource
    from tcpview.ui.app import TcpviewApp
    from tcpview.ui.widgets.graph_pane import GraphPane
    from tcpview.ui.widgets.ladder import Ladder

    app = TcpviewApp(FileSource(str(saved.path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        assert await wait_until(lambda: app.loaded, 30, 0.02, pilot.pause)
        await pilot.pause()
        ladder = app.query_one(Ladder)
        assert "cwnd" in app.query_one(GraphPane).kinds()
        live = saved.conn(saved.live, saved.waiting)
        ladder.show(app.tl, live["id"], None)
        rows = [r for r in (ladder.row(i) for i in range(ladder.count)) if r is not None and r.seg == KERNEL_ROW]
        assert all(r.label.startswith("kernel set ") for r in rows)
        shown = [(r.ts, "client" if r.client_state else "server", r.client_state or r.server_state) for r in rows]
        want = sorted((s["ts"], side, s["state"]) for side in ("client", "server") for s in live["kernel"][side])
        assert shown == want and len(want) >= 4


async def test_replay_k_and_d_compare_with_the_files_kernel_events(saved: Saved) -> None:
    from tcpview.engine.core.tcp import TcpState
    from tcpview.sources.base import FileSource
    from tcpview.ui.kernel_replay import KernelReplayApp
    from tcpview.ui.widgets.conn_table import ConnectionTable
    from tcpview.ui.widgets.kernel_pane import KernelPane

    assert kblocks.holds_kernel_events(str(saved.path))
    hid = saved.conn(saved.live, saved.hidden)["id"]
    app = KernelReplayApp(FileSource(str(saved.path)))
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_until(lambda: app.loaded, 30, 0.02, pilot.pause)
        pane = app.query_one(KernelPane)
        await pilot.press("K")
        assert await wait_until(lambda: hid in pane.results, 10, 0.05, pilot.pause)
        r = pane.results[hid]
        # at the last packet (the client's ACK of the server's FIN) the server had yet to take it in
        assert r.disagree and r.kernel[0] == TcpState.TIME_WAIT and r.kernel[1] in (TcpState.LAST_ACK, TcpState.CLOSED)
        assert r.sniffed == (TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
        assert pane.differing() == [hid]
        text = pane.build().plain
        assert "the file's kernel events at the cursor: 1 of 3 local connections differ: #" + str(hid) in text
        await pilot.press("D")
        await pilot.pause()
        assert app.query_one(ConnectionTable).model.query.text == f"id:{hid}"


def test_graph_of_a_file_without_kernel_events_says_so(tmp_path: Path) -> None:
    f = Flow()
    f.handshake()
    path = tmp_path / "plain.pcapng"
    path.write_bytes(pcapng_bytes([(1, 9)], [(0, ts, data) for ts, _lt, data in f.frames]))
    rc, out, err = cli("graph", str(path), "--conn", "0", "--kind", "cwnd")
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"tcpview: error: {path} holds no kernel events: --kind cwnd needs a pcapng saved by "
                                "tcpview live (or summary -i) with --kernel -w"]


def _with_block(frames: list, block: bytes, at: int) -> bytes:
    """A pcapng of ``frames`` with ``block`` after the first ``at`` of them."""
    whole = pcapng_bytes([(1, 9)], [(0, ts, data) for ts, _lt, data in frames])
    head = pcapng_bytes([(1, 9)], [(0, ts, data) for ts, _lt, data in frames[:at]])
    return head + block + whole[len(head):]


def _connect_event(ts: float = 100.0) -> np.ndarray:
    """The kernel's event of 10.0.0.1:40000 connecting to 10.0.0.2:80 (CLOSE -> SYN_SENT)."""
    ev = kevent_array(1)
    ev.ts, ev.kind, ev.fam, ev.old, ev.new, ev.sk, ev.sport, ev.dport = ts, K_STATE, 4, 7, 2, 1, 40000, 80
    ev.saddr[0, :4] = [10, 0, 0, 1]
    ev.daddr[0, :4] = [10, 0, 0, 2]
    return ev


def _ours(n_claimed: int | None = None) -> bytes:
    block = kblocks.encode(_connect_event(), 0)
    if n_claimed is not None:  # the count says more events than the block holds
        block = block[:20] + struct.pack("<I", n_claimed) + block[24:]
    return block


def test_foreign_custom_blocks_are_skipped(tmp_path: Path) -> None:
    f = Flow()
    f.handshake()
    f.c("PA", b"hello")
    plain, foreign = tmp_path / "plain.pcapng", tmp_path / "foreign.pcapng"
    plain.write_bytes(pcapng_bytes([(1, 9)], [(0, ts, data) for ts, _lt, data in f.frames]))
    blocks = (ng_block("<", 0x00000BAD, struct.pack("<I", 32473) + b"TVKE" + b"\x01\x00" * 20)  # another PEN
              + ng_block("<", 0x40000BAD, struct.pack("<I", kblocks.PEN) + b"ELSE" + bytes(40)))  # ours, not our magic
    foreign.write_bytes(_with_block(f.frames, blocks, 2))
    rc, out, err = cli("summary", str(foreign), "--json")
    assert rc == 0 and err == "", err
    got = json.loads(out)
    rc, out, _err = cli("summary", str(plain), "--json")
    want = json.loads(out)
    assert "kernel" not in got["connections"][0]
    assert got["connections"][0]["client"] == want["connections"][0]["client"]
    assert got["tcp_packets"] == want["tcp_packets"] == 4
    p = subprocess.run(["tshark", "-r", str(foreign), "-Y", "tcp"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 4, p.stderr
    rc, _out, err = cli("graph", str(foreign), "--conn", "0", "--kind", "srtt")
    assert rc == 2 and "holds no kernel events" in err


def test_a_damaged_kernel_block_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """As other damage: the packets before it are read, then one line, exit 2."""
    f = Flow()
    f.handshake()
    f.c("PA", b"hello")
    good = tmp_path / "good.pcapng"
    good.write_bytes(_with_block(f.frames, _ours(), 2))
    rc, out, err = cli("summary", str(good), "--json")
    assert rc == 0, err
    assert json.loads(out)["connections"][0]["kernel"] == {"client": [{"ts": 100.0, "state": "SYN_SENT"}]}
    rc, out, err = cli("summary", str(good), "--json", "--at", "0")  # as of the first packet: set then
    assert json.loads(out)["connections"][0]["kernel"] == {"client": [{"ts": 100.0, "state": "SYN_SENT"}]}
    late = tmp_path / "late.pcapng"
    late.write_bytes(_with_block(f.frames, kblocks.encode(_connect_event(ts=100.5), 0), 2))
    rc, out, err = cli("summary", str(late), "--json", "--at", "0.001")  # before the kernel set it
    assert json.loads(out)["connections"][0]["kernel"] == {"client": []}

    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(_with_block(f.frames, _ours(n_claimed=1000), 2))
    rc, out, err = cli("summary", str(bad))
    assert rc == 2
    assert err.splitlines() == [f"tcpview: error: {bad}: corrupt pcapng block after frame 2 "
                                "(kernel-event block cut short)"]
    assert "2 packets" in out  # what came before the damage

    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(_with_block(f.frames[:2], _ours(), 2)[:-12])  # the file ends inside the block
    rc, out, err = cli("summary", str(cut))
    assert rc == 2 and err.splitlines() == [f"tcpview: error: {cut}: capture cut short after frame 2"]


def test_the_background_compile_covers_the_trace_decoder() -> None:
    """The warm-up set has the decoder: loading it (what ``live --kernel`` does first) finds
    it in the cache the whole compile made, not compiled on its first use."""
    code = ("from tcpview.engine.warm import ready; ready(groups=('kernel',)); "
            "from tcpview.sources.tracefs import decode; s = decode.decode_pages.stats; "
            "print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_with_repo(), timeout=300)
    assert p.returncode == 0, p.stderr
    hits, misses = map(int, p.stdout.split())
    assert (hits, misses) == (1, 0)


def test_a_ring_of_pcapng_files_keeps_the_events_in_the_file_being_written(tmp_path: Path) -> None:
    """``--ring-size`` with ``--kernel``: each file is a pcapng of its own (it starts with an
    empty block of events), the events go to the file being written, and tshark reads each."""
    from tcpview.sources.live.sink import RingSink
    from tcpview.sources.pcap import CaptureReader

    f = Flow()
    f.handshake()
    for _ in range(6):
        f.c("PA", b"x" * 400)
    ring = RingSink(str(tmp_path / "k.pcapng"), 1, 65535, False, 1500, kernel=True)
    try:
        for i, (ts, _lt, data) in enumerate(f.frames):
            ring.write_block(data, [(int(ts), int(ts % 1 * 1e9), 0, len(data), len(data))])
            if i == 4:
                ring.write_kernel(kevent_array(0), 0)
                ring.write_kernel(_connect_event(), 5)
    finally:
        ring.close()
    assert ring.number > 2 and ring.count == len(f.frames) and ring.events == 1
    seen = []
    for name in ring.made:
        reader = CaptureReader(name)
        reader.kernel = lambda ev, lost: seen.append((len(ev), lost))
        before = len(seen)
        assert len([r for r in reader.records() if r is not None]) >= 1
        assert len(seen) > before  # each file starts with a block of events, empty or not
        p = subprocess.run(["tshark", "-r", name], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    assert (1, 5) in seen
    assert "k_00001_" in ring.made[0] and ring.made[0].endswith(".pcapng")
