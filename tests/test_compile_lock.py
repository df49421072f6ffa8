"""The one compile of a version of the kernels: a compile never removes what another live
process is compiling, and a compile started for a version of the kernels that is no longer the
installed one does not compile (the lock its starter took is not this version's)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO

from tcpview.jitcache import staging_dir


def test_a_compile_removes_only_what_dead_compiles_left(tmp_path):
    directory = str(tmp_path / "tcpview-0123456789abcdef")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = tmp_path / f"tcpview-0123456789abcdef.tmp-{dead.pid}"
        compiling = tmp_path / f"tcpview-0123456789abcdef.tmp-{live.pid}"
        aside = tmp_path / f"tcpview-0123456789abcdef.old-{dead.pid}"
        other = tmp_path / f"tcpview-fedcba9876543210.tmp-{dead.pid}"  # another version's: not this one's business
        for d in (left, compiling, aside, other):
            d.mkdir()
        mine = staging_dir(directory)
        assert not left.exists() and not aside.exists()
        assert compiling.is_dir() and other.is_dir()
        assert mine == f"{directory}.tmp-{os.getpid()}"
    finally:
        live.kill()
        live.wait()


def test_a_compile_for_other_kernels_than_these_does_not_run(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tcpview.engine.warm", "--cache", str(tmp_path / "tcpview-0")],
                       capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert p.returncode == 1
    assert "the kernels changed" in p.stderr and "not compiled" in p.stderr
    assert list(tmp_path.iterdir()) == []
