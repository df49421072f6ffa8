"""Analysis flags (retransmission, keep-alive, zero-window probe...) agree with tshark's.

The captures come from the simulator (``tcpview simulate``); tshark reads them independently
and its expert messages are the oracle.
"""

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

# tshark expert message -> tcpview analysis name
EXPERT = {
    "TCP keep-alive segment": "keep_alive",
    "ACK to a TCP keep-alive segment": "keep_alive_ack",
    "TCP Zero Window Probe": "window_probe",
    "TCP Zero Window segment": "zero_window",
    "This frame is a (suspected) retransmission": "retransmission",
    "Duplicate ACK": "dup_ack",
}


def _tshark_flags(pcap) -> dict[int, set[str]]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.analysis.flags", "-T", "fields",
         "-e", "frame.number", "-e", "_ws.expert.message"],
        capture_output=True, text=True, check=True,
    ).stdout
    flags: dict[int, set[str]] = {}
    for line in out.splitlines():
        frame, _, msgs = line.partition("\t")
        names = set()
        for msg in msgs.split(","):
            for text, name in EXPERT.items():
                if msg.startswith(text):
                    names.add(name)
        if names:
            flags[int(frame)] = names
    return flags


def _ours(pcap) -> dict[int, set[str]]:
    out = subprocess.run([sys.executable, "-m", "tcpview", "export", str(pcap)],
                         capture_output=True, text=True, check=True).stdout
    flags = {}
    for line in out.splitlines():
        seg = json.loads(line)
        names = set(seg["analysis"]) & set(EXPERT.values())
        if names:
            flags[seg["frame"]] = names
    return flags


@pytest.mark.parametrize("scenario", ["zero-window", "keepalive", "retransmit-timeout", "lost-fin"])
def test_analysis_flags_equal_tsharks(scenario, tmp_path) -> None:
    pcap = tmp_path / f"{scenario}.pcap"
    subprocess.run([sys.executable, "-m", "tcpview", "simulate", scenario, "-w", str(pcap)],
                   capture_output=True, check=True)
    theirs = _tshark_flags(pcap)
    ours = _ours(pcap)
    assert theirs, "the scenario should make tshark flag something"
    assert ours == theirs
