"""The resident engine (tcpview/resident): a real engine process of each test's own (its own
socket directory), started as a user's command starts it, and real commands handed to it.
A served command answers as it does run on its own (output, errors, exit status, relative
paths); Ctrl-C reaches it; a caller that is killed takes its command with it; commands that
are live or read standard input are not served; an engine ends when idle and when tcpview's
sources change."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, wait_until

from tcpview.jitcache import CACHE_BASE


def _env(run_dir: Path, path: Path = REPO, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(path), TCPVIEW_RESIDENT_DIR=str(run_dir), NUMBA_CACHE_DIR=CACHE_BASE)
    env.pop("TCPVIEW_RESIDENT", None)
    env.pop("TCPVIEW_RESIDENT_IDLE", None)
    env.update(extra)
    return env


def _tcpview(env: dict, *args: str, cwd: Path = REPO, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpview", *args], env=env, cwd=cwd, capture_output=True,
                          input=stdin, timeout=120)


class Engine:
    """A resident engine a test started, and what it logged."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def files(self, suffix: str) -> list[Path]:
        return sorted(self.run_dir.glob(f"resident-*{suffix}"))

    @property
    def socket(self) -> Path | None:
        found = self.files(".sock")
        return found[0] if found else None

    @property
    def pid(self) -> int | None:
        locks = self.files(".sock.lock")
        text = locks[0].read_text().strip() if locks else ""
        return int(text) if text else None

    def served(self) -> list[str]:
        logs = self.files(".sock.log")
        return logs[0].read_text().splitlines() if logs else []

    def alive(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]

    def stop(self) -> None:
        pid = self.pid
        if pid is not None and self.alive():
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not self.alive(), timeout=10)


def _start(env: dict, capture: Path, cwd: Path = REPO) -> Engine:
    engine = Engine(Path(env["TCPVIEW_RESIDENT_DIR"]))
    p = _tcpview(dict(env, TCPVIEW_RESIDENT="1"), "summary", str(capture), cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert wait_until(lambda: engine.socket is not None, timeout=60), "no resident engine started"
    return engine


@pytest.fixture
def engine(tmp_path, loopback_capture):
    env = _env(tmp_path / "run")
    e = _start(env, loopback_capture.pcap)
    e.env = env  # type: ignore[attr-defined]
    try:
        yield e
    finally:
        e.stop()


def test_a_served_command_answers_as_one_run_on_its_own(engine, loopback_capture, tmp_path):
    env = engine.env
    for args in (["summary", "--json"], ["expert"], ["ladder", "--conn", "0"]):
        before = len(engine.served())
        served = _tcpview(env, *args, str(loopback_capture.pcap))
        alone = _tcpview(dict(env, TCPVIEW_RESIDENT="0"), *args, str(loopback_capture.pcap))
        assert len(engine.served()) == before + 1  # it was the engine's
        assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
        assert served.returncode == 0 and served.stdout


def test_errors_exit_status_and_relative_paths_are_the_callers(engine, loopback_capture, tmp_path):
    env = engine.env
    p = _tcpview(env, "summary", str(tmp_path / "missing.pcap"))
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode().count("\n") == 1 and p.stderr.startswith(b"tcpview: error:")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(loopback_capture.pcap, work / "in.pcap")
    before = len(engine.served())
    p = _tcpview(env, "export", "in.pcap", "--format", "csv", "-o", "out.csv", cwd=work)
    assert p.returncode == 0, p.stderr
    assert len(engine.served()) == before + 1
    assert (work / "out.csv").read_text().startswith("frame,")


def test_live_and_standard_input_are_not_served(engine, loopback_capture):
    before = len(engine.served())
    p = _tcpview(engine.env, "summary", "-", stdin=loopback_capture.pcap.read_bytes())
    assert p.returncode == 0, p.stderr
    assert len(engine.served()) == before


def _blocked_export(engine: Engine, capture: Path) -> tuple[subprocess.Popen, int]:
    """A served export writing into a pipe nobody reads (it blocks), and its process id."""
    before = len(engine.served())
    p = subprocess.Popen([sys.executable, "-m", "tcpview", "export", str(capture), "--format", "jsonl"],
                         env=engine.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: len(engine.served()) > before, timeout=30)
    child = int(engine.served()[-1].split()[1])
    assert Path(f"/proc/{child}").exists()
    return p, child


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (its SigCgt mask in /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] == "Z"
    except OSError:
        return True


def test_ctrl_c_reaches_the_served_command(engine, loopback_capture):
    p, child = _blocked_export(engine, loopback_capture.pcap)
    try:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)  # (what it had written goes out as it ends)
        # it is interrupted where it writes: status 130, as a command on its own gives
        assert p.returncode == 130
        assert wait_until(lambda: _gone(child), timeout=10)
    finally:
        p.kill()
        p.wait()


def test_ctrl_c_as_the_command_starts_ends_it_and_not_the_engine(engine, loopback_capture):
    """A Ctrl-C at once, while the command is handed over: held by the caller until the
    command's process is known, blocked in the engine until the copy has its handlers."""
    for _ in range(5):
        p = subprocess.Popen([sys.executable, "-m", "tcpview", "export", str(loopback_capture.pcap), "--format", "jsonl"],
                             env=engine.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # as soon as the caller catches SIGHUP (Python does not: its forwarding is set)
        assert wait_until(lambda: _catches(p.pid, signal.SIGHUP) or p.poll() is not None, timeout=30, interval=0)
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=30)
        assert p.returncode in (0, 130), err  # done before the signal came, or stopped by it
        assert b"Traceback" not in err
        assert engine.alive() and engine.socket is not None


def test_a_killed_caller_takes_its_command_with_it(engine, loopback_capture):
    p, child = _blocked_export(engine, loopback_capture.pcap)
    p.kill()
    p.wait()
    assert wait_until(lambda: _gone(child), timeout=10)
    assert engine.alive()  # the engine itself goes on


def test_an_idle_engine_ends(tmp_path, loopback_capture):
    env = _env(tmp_path / "run", TCPVIEW_RESIDENT_IDLE="1")
    e = _start(env, loopback_capture.pcap)
    try:
        assert wait_until(lambda: e.socket is None and not e.alive(), timeout=30)
    finally:
        e.stop()


def test_an_engine_of_older_sources_is_not_used(tmp_path, loopback_capture):
    """A copy of tcpview whose engine runs, then one of its sources changes (a reinstall, an
    edit): the next command runs on its own, and the old engine ends."""
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "tcpview", copy / "tcpview", ignore=shutil.ignore_patterns("__pycache__"))
    # (a copy elsewhere has a cache of its own, cold: its kernels run as plain Python here,
    # so that no compile of them starts beside the other tests)
    env = _env(tmp_path / "run", path=copy, NUMBA_DISABLE_JIT="1")
    e = _start(env, loopback_capture.pcap, cwd=copy)
    try:
        before = len(e.served())
        assert _tcpview(env, "summary", str(loopback_capture.pcap), cwd=copy).returncode == 0
        assert len(e.served()) == before + 1
        changed = copy / "tcpview" / "errors.py"
        changed.write_text(changed.read_text() + "\n")
        p = _tcpview(env, "summary", str(loopback_capture.pcap), cwd=copy)
        assert p.returncode == 0 and p.stdout
        assert len(e.served()) == before + 1
        assert wait_until(lambda: not e.alive(), timeout=10)
    finally:
        e.stop()


def test_a_second_engine_for_the_same_socket_gives_up(engine):
    sock = engine.socket
    assert sock is not None
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "tcpview.resident.server", str(sock)], env=engine.env, cwd=REPO,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and time.monotonic() - started < 30
    assert engine.alive() and engine.socket == sock


def test_a_socket_directory_that_is_not_the_users_alone_is_not_used(tmp_path, loopback_capture):
    """A directory others may write, or a link planted where the directory would be: no
    engine is asked or started there, and the command runs on its own."""
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(other)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    for folder in (link, loose):
        p = _tcpview(_env(folder, TCPVIEW_RESIDENT="1"), "summary", str(loopback_capture.pcap))
        assert p.returncode == 0 and p.stdout
        # (an engine would have been started before the command ran: it would be there now)
        assert not _engines_in(folder) and not _engines_in(other)
        assert not list(other.iterdir()) and not list(loose.iterdir())


def _engines_in(folder: Path) -> list[int]:
    """Resident engines whose socket is in ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"tcpview.resident.server" in cmdline and str(folder).encode() in cmdline:
            found.append(int(entry.name))
    return found
