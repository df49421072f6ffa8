"""Starting the viewer from the command line: bad input, no terminal or no pipe give one line
and exit status 2 before any UI is drawn; the key table in the docs follows the bindings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_replay_of_a_file_that_is_not_a_capture_exits_2_before_the_ui(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a capture\n" * 10)
    r = subprocess.run([sys.executable, "-m", "tcpview", "replay", str(garbage)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stdout == ""  # no UI was drawn
    assert len(r.stderr.strip().splitlines()) == 1 and "not a pcap or pcapng capture" in r.stderr
    r = subprocess.run([sys.executable, "-m", "tcpview", "replay", str(tmp_path / "missing.pcap")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["replay", "summary"])
def test_a_stream_from_stdin_needs_a_pipe(command: str) -> None:
    """With a terminal on stdin there is no capture to read: one line, exit 2 (a headless
    command would otherwise wait for a capture nobody can type)."""
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: stdin is the pty
        os.execv(sys.executable, [sys.executable, "-m", "tcpview", command, "-"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert b"stdin is a terminal" in out


def test_live_without_a_terminal_says_so_before_saving_anything(tmp_path: Path) -> None:
    """``tcpview live -w FILE`` from a script (no terminal): one line, exit 2, and no file, not
    an empty capture or a UI drawn into a pipe."""
    import os

    if os.geteuid() != 0:
        pytest.skip("opening a capture on lo needs root")
    out = tmp_path / "saved.pcap"
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    r = subprocess.run([sys.executable, "-m", "tcpview", "live", "-i", "lo", "-w", str(out)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "needs a terminal" in r.stderr
    assert not out.exists()


def test_docs_key_table_is_current() -> None:
    """docs/keys.md is generated from the bindings; regenerate it when they change."""
    from tcpview.ui.screens.help import keys_markdown

    doc = Path(__file__).resolve().parent.parent / "docs" / "keys.md"
    assert doc.read_text() == keys_markdown(), "run: python -m tcpview.ui.screens.help.keys > docs/keys.md"


def test_what_the_viewer_loaded_is_kept_out_of_the_collectors_passes() -> None:
    """Before the viewer runs, every object made so far is frozen (its collector's full passes
    walk only what the viewer makes after), and new objects are still collected."""
    import gc

    from tcpview.ui.run import keep_what_is_loaded

    before = gc.get_freeze_count()
    try:
        keep_what_is_loaded()
        assert gc.get_freeze_count() > before
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # (this test process goes on with other tests)
