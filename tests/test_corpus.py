"""Every capture of the shared corpus of public captures (normal, odd and damaged) gives
either exit 0 with valid JSON, or a clean exit 2: one line on stderr and no traceback. A
capture that ``summary`` rejects (exit 2 with nothing on stdout) must be one in which tshark
finds no TCP frame either: damage part-way keeps what was read before it, and every link type tshark
reads TCP from is one tcpview reads.

The command line runs in this process (``helpers.cli_here``): hundreds of interpreters would
spend most of their time starting up. ``test_cli.py`` runs damaged and foreign files through
``python -m tcpview`` itself.

The corpus is found through TCPVIEW_PCAP_CORPUS, else ../shared/pcaps beside the repository;
the tests are skipped when it is absent.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess

import pytest
from helpers import cli_here, corpus_dir

CORPUS = corpus_dir()
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap")) if CORPUS else []

COMMANDS = {
    "summary": lambda p: ["summary", str(p), "--json"],
    "ladder": lambda p: ["ladder", str(p), "--conn", "0", "--format", "json"],
    "export": lambda p: ["export", str(p), "--format", "jsonl"],
}


def check_clean(rc: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    assert rc in (0, 2), (rc, err[-2000:])
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err[-2000:]
        assert lines[0].startswith("tcpview: ")


@functools.cache
def tshark_tcp_frames(path) -> int:
    """How many frames tshark decodes as TCP in ``path`` (it reads up to any damage)."""
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, timeout=300, check=False)
    return sum(1 for line in p.stdout.splitlines() if line.strip())


@pytest.mark.skipif(CORPUS is None, reason="corpus of public captures not found")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_corpus_capture(path, command):
    rc, out, err = cli_here(*COMMANDS[command](path))
    check_clean(rc, out, err)
    if command == "summary" and rc == 2 and not out:  # the capture itself rejected
        if shutil.which("tshark") is None:
            pytest.skip("tshark is not installed: cannot tell whether the rejected capture holds TCP")
        assert tshark_tcp_frames(path) == 0, f"tshark reads TCP frames in a capture tcpview rejects: {err}"
    if rc != 0:
        return
    if command == "export":
        rows = [json.loads(line) for line in out.splitlines()]
        assert all(r["frame"] >= 1 for r in rows)
        frames = [r["frame"] for r in rows]
        assert frames == sorted(frames) and len(set(frames)) == len(frames)
    else:
        data = json.loads(out)
        if command == "summary":
            assert data["packets"] >= data["tcp_packets"] >= 0
            assert data["packets"] == data["tcp_packets"] + data["fragments"] + sum(data["skipped"].values())
            assert [c["id"] for c in data["connections"]] == list(range(len(data["connections"])))
        else:
            assert data["connection"]["id"] == 0
            assert len(data["segments"]) == data["connection"]["packets"]


def test_corpus_is_found_or_skipped():
    # without the corpus every parametrised test above is skipped, never an error
    if CORPUS is None:
        pytest.skip("corpus of public captures not found")
    assert FILES, "the corpus directory holds no captures"
