"""tcpview's trace instance: made with the TCP tracepoints this kernel has, and gone after
every way its owner can end (exit, SIGINT, SIGTERM, SIGKILL, a crash), and at the next start
when even its watchdog could not remove it. Without privileges: one line, exit 2.

Each case runs a real owner process (``python -c``) that opens the instance, prints its path
and waits; the test ends it one way and waits for the directory to go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, wait_until
from test_live_privileges import as_nobody  # noqa: F401  (a fixture)
from tracefshelp import tracefs_as_found  # noqa: F401  (autouse: tracefs left as found)

from tcpview.errors import PrivilegeError  # noqa: F401  (the owner raises it as nobody)
from tcpview.sources.tracefs import instance as ti

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a trace instance")

OWNER = """
import os, signal, sys, time
from tcpview.sources.tracefs.instance import TraceInstance
inst = TraceInstance.open(buffer_kb=64, watchdog={watchdog})
print(inst.path, flush=True)
try:
    sys.stdin.readline()  # the test looks at the instance first
    if sys.argv[1] == "exit":
        sys.exit(0)
    if sys.argv[1] == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)  # what a crash in a compiled reader does
    while True:  # not signal.pause(): a signal that comes just before it would leave it waiting
        time.sleep(0.05)
finally:
    inst.close()
"""


def _owner(how: str, watchdog: bool = True) -> tuple[subprocess.Popen, Path]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-c", OWNER.format(watchdog=watchdog), how], stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE, text=True, env=env, cwd=REPO)
    line = p.stdout.readline().strip()  # type: ignore[union-attr]
    assert line, "the owner did not open an instance"
    return p, Path(line)


def _cleanup(path: Path) -> None:
    """Whatever the test found, no instance of it stays."""
    ti.remove_instance(path)


@pytest.mark.parametrize("how,sig", [("exit", None), ("wait", signal.SIGINT), ("wait", signal.SIGTERM),
                                     ("wait", signal.SIGKILL), ("crash", None)])
def test_the_instance_is_gone_however_its_owner_ends(how, sig):
    p, path = _owner(how)
    try:
        assert path.is_dir()
        assert path.name == ti.instance_name(p.pid)
        assert (path / "events/sock/inet_sock_set_state/enable").read_text().strip() == "1"
        assert (path / "events/sock/inet_sock_set_state/filter").read_text().strip() == "protocol == 6"
        assert "[mono]" in (path / "trace_clock").read_text()
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        if sig is not None:
            p.send_signal(sig)
        p.wait(30)
        assert wait_until(lambda: not path.exists(), timeout=15), f"{path} left after {how} {sig}"
    finally:
        p.kill()
        p.wait()
        _cleanup(path)


def test_a_stale_instance_is_removed_at_the_next_start():
    """The owner and its watchdog both died (here: no watchdog, SIGKILL): the next start
    removes the instance, and leaves one of a live process alone."""
    p, path = _owner("wait", watchdog=False)
    root = path.parent.parent
    other = root / "instances" / ti.instance_name(os.getppid())  # a live process's name
    other.mkdir()
    try:
        p.kill()
        p.wait()
        assert path.is_dir(), "nothing removed it: the case this checks"
        with ti.TraceInstance.open(buffer_kb=64, watchdog=False) as inst:
            assert not path.exists()
            assert other.is_dir()
            assert inst.path.is_dir()
        assert not inst.path.exists()
    finally:
        _cleanup(path)
        _cleanup(other)


def test_a_missing_tracepoint_is_named_and_the_rest_work():
    events = (*ti.EVENTS, ("tcp", "tcp_no_such_event", ""))
    with ti.TraceInstance.open(buffer_kb=64, events=events, watchdog=False) as inst:
        assert inst.missing == ["tcp:tcp_no_such_event"]
        assert inst.has("sock:inet_sock_set_state")
        assert (inst.path / "events/tcp/tcp_probe/enable").read_text().strip() == "1"
    with pytest.raises(ti.TraceError, match="none of the TCP tracepoints"):
        ti.TraceInstance.open(events=(("tcp", "tcp_no_such_event", ""),), watchdog=False)
    assert not any(p.name == ti.instance_name() for p in (inst.root / "instances").iterdir())


def test_tracefs_is_mounted_when_it_is_not():
    """In a mount namespace of its own where tracefs is unmounted, opening mounts it."""
    code = ("import os; from tcpview.sources.tracefs.instance import TraceInstance, find_tracefs\n"
            "inst = TraceInstance.open(buffer_kb=64, watchdog=False)\n"
            "print(inst.root, inst.mounted); inst.close()\n"
            "print(os.path.exists(inst.path))")
    script = f"umount -a -t tracefs; exec {sys.executable} -c '{code}'"
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/sys/kernel/tracing", "True", "False"]


def test_nobody_gets_one_line_naming_what_is_needed(as_nobody):  # noqa: F811
    cmd, env = as_nobody
    code = ("import sys\nfrom tcpview.errors import UserError\nfrom tcpview.sources.tracefs.instance import TraceInstance\n"
            "try:\n    TraceInstance.open()\nexcept UserError as e:\n    print(e); sys.exit(2)")
    r = subprocess.run([*cmd[:-2], "-c", code], capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout.startswith("kernel events (--kernel) needs root"), r.stdout
    assert "run it with sudo" in r.stdout and "without --kernel" in r.stdout
    assert r.stdout.count("\n") == 1
