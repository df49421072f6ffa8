"""The fixtures shared by the tests. The helpers they use live in helper modules, which tests
import directly: helpers.py (capture writers, Flow, cli, wait_until), livehelp.py (real traffic
on lo), simhelp.py, trackhelp.py, uihelp.py and enginecheck.py (traffic and from-scratch
answers for the engine's consistency tests).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, write_frames_pcap
from livehelp import Lo, LoopbackCapture, can_capture, make_loopback_capture


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """Compile the engine's kernels once, before any test runs (in the controlling process, so
    the test workers only load them): a first run compiles for a minute, and tests that
    capture live traffic must not spend their wait on it.

    And Ctrl-C reaches the programs the tests start: a suite started in the background by a
    shell without job control (``nohup bash .ci/run &`` in a script) inherits SIGINT ignored,
    and an ignored signal stays ignored in every program started after, so each tcpview a test
    stops as Ctrl-C does (SIGINT) would go on until the test's timeout."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (a handler: programs start with the default)
    if hasattr(config, "workerinput"):
        return
    subprocess.run([sys.executable, "-m", "tcpview.engine.warm"], check=True)


@pytest.fixture(scope="session", autouse=True)
def _engine_loaded() -> None:
    """Each test process loads the compiled kernels once, up front."""
    from tcpview.engine.warm import ready

    ready()


@pytest.fixture
def run_cli():
    """The :func:`helpers.cli` helper as a fixture."""
    return cli


@pytest.fixture
def write_pcap(tmp_path: Path):
    """Write a pcap from Flow frames: ``write_pcap(frames, name="x.pcap", nano=..., endian=...)``."""

    def _write(frames, name: str = "capture.pcap", **kw) -> Path:
        return write_frames_pcap(tmp_path / name, frames, **kw)

    return _write


@pytest.fixture(scope="session")
def loopback_capture(tmp_path_factory) -> LoopbackCapture:
    """One real loopback capture per test session (see :func:`livehelp.make_loopback_capture`)."""
    why = can_capture()
    if why:
        pytest.skip(why)
    return make_loopback_capture(tmp_path_factory.mktemp("lo") / "loopback.pcap")


@pytest.fixture
def lo_traffic():
    """A :class:`livehelp.Lo`; every socket it made is closed afterwards."""
    t = Lo()
    yield t
    t.close()


@pytest.fixture(scope="module")
def runs():
    """Every finite built-in scenario, run once with its default seed (one set per test module)."""
    from simhelp import FINITE, Run

    return {name: Run(name) for name in FINITE}
