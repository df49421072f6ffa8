"""``tcpview summary -i lo`` as a user runs it, on real loopback connections: the states
and counters it prints, what ``-w`` saved, and the last packets kept when it is stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from livehelp import Lo, live_summary_json, need_root

from tcpview.engine.pump import load


@pytest.fixture(autouse=True)
def _root():
    need_root()


def test_summary_from_live_interface(lo_traffic: Lo, tmp_path: Path):
    t = lo_traffic
    t.listener("close_wait")
    t.reserve("refused")
    saved = tmp_path / "saved.pcap"
    s, err, (cw, rf) = live_summary_json(["-f", t.bpf(), "--duration", "2.5", "-w", str(saved)],
                                lambda: (t.close_wait(), t.refused()))
    conns = {(c["client"]["port"], c["server"]["port"]): c for c in s["connections"]}
    c = conns[(cw[0][1], cw[1][1])]
    assert (c["client"]["state"], c["server"]["state"]) == ("FIN_WAIT_2", "CLOSE_WAIT")
    r = conns[(rf[0][1], rf[1][1])]
    assert (r["client"]["state"], r["server"]["state"]) == ("CLOSED", "CLOSED") and "refused" in r["notes"]
    assert s["counters"]["CLOSE_WAIT"] == 1 and s["counters"]["FIN_WAIT_2"] == 1
    assert s["source"].startswith("live lo")
    assert "dropped by the kernel" in err  # the last line, after "capturing on"
    # -w saved what it captured: the same packets, read back
    assert f"saved {s['packets']} packets to {saved}" in err
    again = load(str(saved)).timeline
    assert again.packets == s["packets"] and again.counters_at(None)["CLOSE_WAIT"] == 1


def test_ctrl_c_right_after_the_last_packets_keeps_them(lo_traffic: Lo):
    """tcpdump's Ctrl-C: the packets of the last milliseconds are in the ring's block being
    filled, which the kernel hands over within the block timeout; they are read, not lost
    (before, a Ctrl-C a few milliseconds after a connection gave 0 packets)."""
    t = lo_traffic
    t.reserve("refused")

    def refused_at_once():
        time.sleep(0.3)  # (the ring's first, empty blocks pass)
        return t.refused()  # a SYN and its RST, then at once Ctrl-C

    s, err, rf = live_summary_json(["-f", t.bpf()], refused_at_once, stop=True)
    assert s["packets"] == 2, err
    (c,) = s["connections"]
    assert (c["client"]["port"], c["server"]["port"]) == (rf[0][1], rf[1][1])
    assert (c["client"]["state"], c["server"]["state"]) == ("CLOSED", "CLOSED")
