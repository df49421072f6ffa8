"""Without capture privileges: one clear line naming what is needed, exit 2, no traceback.

Two real ways of lacking the privilege: the unprivileged user ``nobody``, and root with every
capability dropped (what a container without CAP_NET_RAW looks like). Neither may capture
through dumpcap either (not in its group, or it runs without its capabilities): the line says
to use sudo or join the wireshark group. ``tcpview sockets`` needs no privileges and works
for nobody.

Running as nobody needs an interpreter and packages that nobody can read. When the test
interpreter lives somewhere nobody cannot enter (e.g. under /root), a system Python of the
same version is used, with tcpview and its pure-Python/compiled dependencies copied to a
world-readable temporary directory on PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import REPO

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
DEPS = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection")


def _need_setpriv() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")


def _copy_module(name: str, dest: Path) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        shutil.copytree(origin.parent, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(origin, dest / origin.name)


@pytest.fixture(scope="module")
def as_nobody():
    """A command prefix and environment that run ``python -m tcpview`` as nobody."""
    _need_setpriv()
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [sys.executable, shutil.which(f"python{want}"), f"/usr/bin/python{want}",
                  f"/usr/local/bin/python{want}"]
    interp = None
    for c in candidates:
        if not c or not os.path.exists(c):
            continue
        r = subprocess.run([*NOBODY, c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, cwd="/", timeout=60)
        if r.returncode == 0 and r.stdout.strip() == want:
            interp = c
            break
    if interp is None:
        pytest.skip(f"no Python {want} interpreter that the user nobody can run")
    tmp = Path(tempfile.mkdtemp(prefix="tcpview-nobody-", dir="/tmp"))
    try:
        import tcpview

        shutil.copytree(Path(tcpview.__file__).parent, tmp / "tcpview", ignore=shutil.ignore_patterns("__pycache__"))
        for name in DEPS:
            _copy_module(name, tmp)
        for root, dirs, files in os.walk(tmp):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(tmp), "HOME": "/nonexistent",
               "PYTHONDONTWRITEBYTECODE": "1"}
        r = subprocess.run([*NOBODY, interp, "-c", "import tcpview.cli, tcpview.kernel.history, tcpview.kernel.compare, pydantic"],
                           capture_output=True, text=True, env=env, cwd="/", timeout=60)
        if r.returncode != 0:
            pytest.skip(f"tcpview cannot be imported by nobody with {interp}: {r.stderr.strip().splitlines()[-1:]}")
        yield [*NOBODY, interp, "-m", "tcpview"], env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_message(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    line = p.stderr
    assert line.startswith("tcpview: error: live capture needs root")
    # sudo, or the one capture program's group (how to join it), or what needs nothing; never
    # capabilities on an interpreter, which every Python program would then have
    for needed in ("sudo", "sudo dpkg-reconfigure wireshark-common", "sudo usermod -aG wireshark $USER",
                   "log in again", "tcpview sockets", "tcpview demo"):
        assert needed in line, needed
    assert "setcap" not in line and "python" not in line
    assert p.stdout == ""


@pytest.mark.parametrize("args", [("live", "-i", "lo"), ("live", "-i", "lo", "-f", "tcp port 80"),
                                  ("summary", "-i", "lo", "--duration", "1"), ("live",)])
def test_nobody_gets_one_line_naming_the_privilege(as_nobody, args):
    cmd, env = as_nobody
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd="/", timeout=60,
                       stdin=subprocess.DEVNULL)
    _check_message(p)


def test_root_without_capabilities_gets_the_same_line():
    _need_setpriv()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([*NO_CAPS, sys.executable, "-m", "tcpview", "live", "-i", "lo"], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    _check_message(p)


def test_nobody_can_read_the_kernel_table(as_nobody):
    cmd, env = as_nobody
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    try:
        p = subprocess.run([*cmd, "sockets", "--once", "--json"], capture_output=True, text=True, env=env,
                           cwd="/", timeout=60)
    finally:
        ls.close()
    assert p.returncode == 0, p.stderr
    import json

    s = json.loads(p.stdout)
    # the listener only: an earlier user of this port may still have connections in TIME_WAIT on it
    mine = [c for c in s["connections"] if c["server"]["port"] == port and c["server"]["state"] == "LISTEN"]
    assert [(c["server"]["ip"], c["client"]["port"]) for c in mine] == [("127.0.0.1", 0)]
    assert s["counters"]["LISTEN"] >= 1
    # sock_diag answers nobody too, tcp_info included; root's process cannot be looked into:
    # its pid and command are unknown, its user known, and stderr says why in one line
    assert s["table_source"] == "sock_diag" and s["processes_hidden"] >= 1
    assert mine[0]["server"]["process"] == {"pid": None, "comm": None, "user": "root"}
    assert mine[0]["server"]["info"]["cwnd"] >= 1
    assert "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("tcpview: ") and "run as root" in p.stderr, p.stderr
