"""The engine's core tests once more with ``NUMBA_DISABLE_JIT=1``: the kernels run as the plain
Python they are written in, so there is one implementation, and it can be stepped through in
a debugger. Numpy warnings (a scalar that overflows, where compiled code wraps silently) are
errors there, so both modes compute the same thing the same way.

The chosen tests run in a subprocess (numba reads the variable when it is imported): the
tracker's, the decoder's, the store's and the capture reader's, the golden built captures,
the batching property (fewer examples), the reader/writer interleaving and Zeek's view. The big
concurrency load and the corpus goldens stay compiled only: as Python they take minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO
from numba.core.registry import CPUDispatcher

from tcpview import jit
from tcpview.engine.core import loop
from tcpview.sources import scan

CORE = [
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_tracker_*.py")),
    "tests/test_decode.py",
    "tests/test_store.py",
    "tests/test_pcap_reader.py",
    "tests/test_golden.py::test_built_capture",
    "tests/test_engine_batches.py",
    "tests/test_engine_concurrency.py::test_reader_keeps_its_view_while_a_batch_is_published",
    "tests/test_engine_nojit.py::test_kernels_are_compiled_unless_jit_is_disabled",
    "tests/test_zeek.py::test_every_conn_state",
    "tests/test_zeek.py::test_retransmissions_zero_windows_and_gaps_are_logarithmic",
    "tests/test_zeek.py::test_role_flips",
]


def test_kernels_are_compiled_unless_jit_is_disabled():
    # in the subprocess below this says the variable took effect; the names the engine calls
    # the kernels by (the test session chose compiled kernels, see conftest.py)
    for kernel in (loop.track, scan.scan_pcap):
        assert isinstance(kernel, CPUDispatcher) is not jit.JIT_DISABLED, kernel
    assert jit.mode() == ("python" if jit.JIT_DISABLED else "compiled")


def test_core_tests_pass_without_jit():
    assert len(CORE) > 10
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NUMBA_"))}
    env["NUMBA_DISABLE_JIT"] = "1"
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::RuntimeWarning",
         *CORE],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    tail = "\n".join((p.stdout + p.stderr).splitlines()[-60:])
    assert p.returncode == 0, f"the core tests fail with NUMBA_DISABLE_JIT=1:\n{tail}"
    assert " passed" in p.stdout and " skipped" not in p.stdout, tail
