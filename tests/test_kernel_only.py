"""Kernel-only mode: ``tcpview summary --kernel`` (no ``-i``) watches every TCP socket of the
host from the tracepoints alone, no packet capture.

Under a load of 5,000 new connections a second on the loopback of a network namespace made
by the test (its own ports and TIME_WAIT table, apart from the rest of the host) for a few
seconds: no event lost, and the TIME_WAIT sockets it counts on the load's port are exactly
those ``ss`` lists in that namespace. The summary runs as a user runs it and is ended with
Ctrl-C once the load is over; the namespace is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from helpers import REPO, reap
from livehelp import env_with_repo, need_root, read_until, tcpview_cmd
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)

PORT = 47111


@pytest.fixture
def netns():
    need_root()
    name = f"tcpview-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _ss_time_wait(ns: str, port: int) -> set[int]:
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tanH", "state", "time-wait", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return {int(line.split()[-1].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


def test_time_wait_count_equals_ss_under_load_with_no_event_lost(netns):
    proc = subprocess.Popen(tcpview_cmd("summary", "--kernel", "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_with_repo())
    try:
        read_until(proc.stderr, "reading the kernel's TCP events", timeout=120)
        load = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(REPO / "tests" / "loadgen.py"),
                               str(PORT), "4", "5000"], capture_output=True, text=True, timeout=120, check=True)
        made = int(load.stdout)
        ss = _ss_time_wait(netns, PORT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        reap(proc)
    err_text = err.decode()
    assert proc.returncode == 0, err_text
    assert made > 15_000, f"the load made only {made} connections"
    assert "none lost" in err_text, err_text
    summary = json.loads(out)
    traced = set()
    for c in summary["connections"]:
        for side, other in (("client", "server"), ("server", "client")):
            if c[side]["port"] == PORT and c[side]["state"] == "TIME_WAIT":
                traced.add(c[other]["port"])
    assert len(ss) > 1000
    assert traced == ss, (len(traced), len(ss), sorted(traced - ss)[:5], sorted(ss - traced)[:5])
    assert summary["counters"]["TIME_WAIT"] >= len(ss)


def test_kernel_only_is_not_offered_with_a_capture_file():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(tcpview_cmd("summary", "--kernel", "x.pcap"), capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("tcpview: error: summary --kernel without -i reads no packets")


async def test_the_sockets_view_from_the_tracepoints():
    """``live --kernel`` without ``-i``: the sockets view (Pilot) on the traced table shows a
    real connection's states as the kernel set them, and its title says where they come from."""
    need_root()
    import socket

    from helpers import wait_until

    from tcpview.engine.timeline.kernel_feed import KernelFeed
    from tcpview.kernel.traced import TracedTable
    from tcpview.ui.sockets_app import SocketsApp

    feed = KernelFeed().start()
    ls = socket.socket()
    try:
        app = SocketsApp(TracedTable(feed.log), interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            ls.bind(("127.0.0.1", 0))
            ls.listen()
            port = ls.getsockname()[1]
            c = socket.create_connection(("127.0.0.1", port))
            s, _ = ls.accept()
            c.close()  # client FIN_WAIT_2, server CLOSE_WAIT

            def shown():
                for _cid, k in app.table.conns:
                    if k.server[1] == port and k.client[1] == c_port:
                        return (k.state_text(0), k.state_text(1))
                return None
            c_port = s.getpeername()[1]
            assert await wait_until(lambda: shown() == ("FIN_WAIT_2", "CLOSE_WAIT"), 20, 0.05, pilot.pause), shown()
            assert app.table.counters_at()["CLOSE_WAIT"] >= 1
            s.close()
            assert await wait_until(lambda: shown() == ("TIME_WAIT", "CLOSED"), 20, 0.05, pilot.pause), shown()
            await pilot.press("q")
    finally:
        ls.close()
        feed.stop()
    assert not feed.inst.path.exists()
