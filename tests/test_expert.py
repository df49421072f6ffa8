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


@pytest.mark.parametrize("name", ["arkime__retransmissions.pcap", "chrissanders__tcp-zerowindow-recovery.pcapng",
                                  "chrissanders__tcp-dupack.pcapng"])
def test_the_expert_command_counts_what_tshark_flags(name: str) -> None:
    import json

    from helpers import cli_here

    path = CORPUS / name
    theirs = tshark_analysis(path)
    rc, out, err = cli_here("expert", str(path), "--json")
    assert rc == 0, err
    report = json.loads(out)
    for flag in FLAGS:
        assert report["flags"][flag] == sum(flag in f.flags for f in theirs.values()), flag
    # per connection, the counts add up to the totals
    for flag in FLAGS:
        assert sum(c["flags"].get(flag, 0) for c in report["connections"]) == report["flags"][flag]
    rtts = [f.ack_rtt for f in theirs.values() if f.ack_rtt is not None]
    if not rtts:
        assert report["ack_rtt"] is None
    else:
        assert report["ack_rtt"]["samples"] == len(rtts)
        assert report["ack_rtt"]["avg"] == pytest.approx(sum(rtts) / len(rtts), abs=2e-6)
        assert report["ack_rtt"]["max"] == pytest.approx(max(rtts), abs=2e-6)
    rc, text, _err = cli_here("expert", str(path))
    assert rc == 0
    top = max(report["flags"], key=report["flags"].get)
    assert f"{top} " in text and str(report["flags"][top]) in text


def test_the_expert_command_on_bad_input(tmp_path) -> None:
    from helpers import cli_here

    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    rc, out, err = cli_here("expert", str(junk))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    rc, _out, err = cli_here("expert", str(tmp_path / "missing.pcap"))
    assert rc == 2 and "Traceback" not in err


def test_real_linux_tcp_under_loss_agrees_with_tshark(tmp_path) -> None:
    """Made here: namespaces, random drops both sides of the capture point, a rate limit, a slow
    receiver with a tiny buffer, keep-alives, resets, refusals (see lossnet). Every flag tshark
    reports agrees >= 99%; the kinds this traffic always makes are there."""
    import lossnet

    why = lossnet.missing()
    if why:
        pytest.skip(why)
    pcap = lossnet.capture(tmp_path / "lossy.pcap", seconds=8.0)
    theirs = tshark_analysis(pcap)
    agreement = Agreement()
    agreement.add("lossy", theirs, tcpview_analysis(pcap, here=True))
    print("\n" + agreement.table())
    assert agreement.undecoded == 0
    for name in ("retransmission", "dup_ack", "zero_window", "window_full", "window_update", "keep_alive",
                 "keep_alive_ack", "ack_rtt", "bytes_in_flight"):
        assert agreement.both[name] + agreement.missed[name] > 0, f"the traffic made no {name}"
    for name in (*FLAGS, "dup_ack_num", "ack_rtt", "bytes_in_flight"):
        assert agreement.ratio(name) >= 0.99, (name, agreement.examples.get(name))
