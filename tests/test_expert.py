"""Wireshark's TCP analysis, frame by frame: every expert flag, the duplicate-ACK number,
``ack_rtt`` and ``bytes_in_flight`` from ``tcpview export`` beside tshark's on every capture of
the shared corpus. Each must agree on at least 99% of the frames that flag it (agreement =
both / (both + only tshark + only tcpview)); the table is printed.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from expertcheck import FLAGS, Agreement, tcpview_analysis, tshark_analysis
from helpers import corpus_dir

CORPUS = corpus_dir()
pytestmark = [pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
              pytest.mark.skipif(CORPUS is None, reason="corpus of public captures not found")]


def test_every_flag_and_number_agrees_with_tshark_over_the_corpus() -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap"))
    with ThreadPoolExecutor(2) as pool:  # tshark in two children while tcpview reads here
        theirs = list(pool.map(tshark_analysis, files))
    agreement = Agreement()
    for path, t in zip(files, theirs, strict=True):
        agreement.add(path.name, t, tcpview_analysis(path, here=True))
    print("\n" + agreement.table())
    for name in (*FLAGS, "dup_ack_num", "ack_rtt", "bytes_in_flight"):
        assert agreement.both[name] + agreement.missed[name] > 0, f"the corpus has no {name}"
        assert agreement.ratio(name) >= 0.99, (name, agreement.examples.get(name))
