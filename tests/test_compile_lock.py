"""The one compile of a version of the kernels: a compile never removes what another live
process is compiling, and a compile started for a version of the kernels that is no longer the
installed one does not compile (the lock its starter took is not this version's). Another
install of the same sources has a cache of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from helpers import REPO

from tcpview.jitcache import READY, staging_dir


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


_SAYS_CACHE = "from tcpview.jitcache import CACHE_DIR, is_whole; print(CACHE_DIR, is_whole())"


def test_another_install_of_the_same_sources_has_a_cache_of_its_own(tmp_path):
    """numba files a kernel under its module's folder: a second install sharing the cache
    directory with a whole compile of the first would find none of it, and compile kernel by
    kernel inside its commands (50 s here), so it is not told the cache is whole."""
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "tcpview", copy / "tcpview", ignore=shutil.ignore_patterns("__pycache__"))
    shared = tmp_path / "cache"

    def cache_of(top):
        env = dict(os.environ, PYTHONPATH=str(top), NUMBA_CACHE_DIR=str(shared))
        out = subprocess.run([sys.executable, "-c", _SAYS_CACHE], env=env, cwd=top, capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
        return out[0], out[1] == "True"

    first, whole = cache_of(REPO)
    assert not whole and os.path.dirname(first) == str(shared)
    os.makedirs(first)
    open(os.path.join(first, READY), "w").close()  # the first install's compile, published
    assert cache_of(REPO) == (first, True)
    second, whole = cache_of(copy)
    assert os.path.dirname(second) == str(shared) and second != first
    assert not whole
