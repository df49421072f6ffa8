"""Live capture without privileges of tcpview's own, through Wireshark's dumpcap, as Debian sets
it up: dumpcap ``root:wireshark``, mode 0750, ``cap_net_raw,cap_net_admin=eip``.

A real unprivileged user in the ``wireshark`` group runs ``tcpview summary -i lo`` while real
loopback connections are made: they appear with the states ``ss`` shows, the summary says it
captured through dumpcap, and ``-w`` saves what it read. A user outside the group gets the
one line (exit 2): sudo, the commands that join the group, or the views that need nothing;
never setcap on an interpreter. As root, :class:`DumpcapSource` itself feeds the viewer,
whose status line names dumpcap and shows ``dropped ?`` until dumpcap tells its drops.

The users, the group (when the test made it) and dumpcap's owner, mode and capabilities are
put back on every exit path.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, wait_until
from livehelp import need_root, read_until, ss_rows, ss_state

from tcpview.sources.live.dumpcap import find_dumpcap

GROUP = "wireshark"
USERS_GID = "users"


def _need_dumpcap() -> str:
    need_root()
    dumpcap = find_dumpcap()
    if dumpcap is None:
        pytest.skip("dumpcap is not installed (Debian: wireshark-common)")
    return dumpcap


def _need_tools() -> str:
    dumpcap = _need_dumpcap()
    for tool in ("useradd", "userdel", "groupadd", "runuser", "setcap", "getcap", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    return dumpcap


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass
class Users:
    """Who runs tcpview in the test, and how."""

    member: str
    """A user in the wireshark group."""
    outsider: str
    """A user in no such group."""
    python: str
    """An interpreter both may run."""
    env: dict[str, str]
    """The environment that runs this checkout's tcpview (PYTHONPATH, a numba cache of theirs)."""
    base: Path
    """A directory the member owns (for -w)."""

    def argv(self, user: str, *args: str) -> list[str]:
        """``python -m tcpview ARGS`` as ``user``, with the groups /etc/group gives that user."""
        return ["runuser", "-u", user, "--", self.python, "-m", "tcpview", *args]


def _link_tree(src: Path, dest: Path) -> None:
    """``src`` under ``dest``: hard links where the file system allows, copies elsewhere."""
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dest / src.name, copy_function=link, ignore=shutil.ignore_patterns("__pycache__"))


def _python_for(user: str) -> str:
    """A Python of this version that ``user`` may run (this one may live in a private place)."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for c in (os.path.realpath(sys.executable), shutil.which(f"python{want}"), f"/usr/bin/python{want}",
              f"/usr/local/bin/python{want}"):
        if not c or not os.path.exists(c):
            continue
        version = "import sys; print('%d.%d' % sys.version_info[:2])"
        r = subprocess.run(["runuser", "-u", user, "--", c, "-c", version],
                           capture_output=True, text=True, cwd="/", timeout=60, check=False)
        if r.returncode == 0 and r.stdout.strip() == want:
            return c
    pytest.fail(f"no Python {want} that an unprivileged user may run")


def _user_env(user: str, base: Path) -> dict[str, str]:
    """PYTHONPATH: this checkout (a copy of its package when the user cannot read it), and the
    compiled dependencies linked into a place the user can read (the test's virtual
    environment may be private). The numba cache: this process's compiled kernels, copied to
    a directory the user owns."""
    import numba
    import numpy

    from tcpview.jitcache import CACHE_DIR

    site = base / "site"
    site.mkdir()
    packages = Path(numpy.__file__).parent.parent
    # the compiled engine's, and pydantic's (the kernel's table, read for the processes)
    for name in ("numpy", "numpy.libs", "numba", "llvmlite", "pydantic", "pydantic_core", "annotated_types",
                 "typing_inspection"):
        if (packages / name).is_dir():
            _link_tree(packages / name, site)
    shutil.copy2(packages / "typing_extensions.py", site)
    assert Path(numba.__file__).parent.parent == packages
    cache = base / "numba"
    cache.mkdir()
    # the same sources at the same path load the same kernels: no minute of compiling
    shutil.copytree(CACHE_DIR, cache / os.path.basename(CACHE_DIR))
    home = base / "home"
    home.mkdir()
    for path in (cache, home):
        for root, _dirs, files in os.walk(path):
            shutil.chown(root, user)
            for f in files:
                shutil.chown(os.path.join(root, f), user)
    path = f"{REPO}{os.pathsep}{site}"
    if subprocess.run(["runuser", "-u", user, "--", "test", "-r", str(REPO / "tcpview" / "__init__.py")],
                      check=False).returncode:
        # a checkout the user cannot read (under /root, say): a copy, whose kernels compile once
        _link_tree(REPO / "tcpview", site)
        path = str(site)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "NUMBA_CACHE_DIR": str(cache),
            "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}


@pytest.fixture
def users() -> Iterator[Users]:
    """dumpcap set up as Debian does, a member of the wireshark group and a user outside it.

    One test at a time changes dumpcap (a lock beside the other tests' temporary files); its
    owner, mode and capabilities are restored, the users removed, and the group too when
    this fixture made it, whatever happens.
    """
    dumpcap = _need_tools()
    tag = f"{os.getpid() % 100000}"
    member, outsider = f"tvcap{tag}", f"tvnocap{tag}"
    base = Path(tempfile.mkdtemp(prefix="tcpview-dumpcap-"))
    os.chmod(base, 0o755)
    lock = open(os.path.join(tempfile.gettempdir(), "tcpview-dumpcap-test.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    st = os.stat(dumpcap)
    caps = _run("getcap", dumpcap).split(maxsplit=1)[1:]  # "" when it has none
    made_group = False
    made: list[str] = []
    try:
        try:
            _run("getent", "group", GROUP)
        except subprocess.CalledProcessError:
            _run("groupadd", "--system", GROUP)
            made_group = True
        for name, groups in ((member, ["-G", GROUP]), (outsider, [])):
            _run("useradd", "--no-create-home", "--home-dir", str(base / "home"), "--shell", "/usr/sbin/nologin",
                 "-N", "-g", USERS_GID, *groups, name)
            made.append(name)
        # Debian's wireshark-common, answered yes: only the group may run it, with the capabilities
        shutil.chown(dumpcap, "root", GROUP)
        os.chmod(dumpcap, 0o750)
        _run("setcap", "cap_net_raw,cap_net_admin=eip", dumpcap)
        python = _python_for(member)
        env = _user_env(member, base)
        shutil.chown(base, member)
        yield Users(member, outsider, python, env, base)
    finally:
        os.chown(dumpcap, st.st_uid, st.st_gid)  # clears the capabilities set above
        os.chmod(dumpcap, stat.S_IMODE(st.st_mode))
        if caps:
            _run("setcap", caps[0].strip(), dumpcap)
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        if made_group:
            subprocess.run(["groupdel", GROUP], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _check_refusal(p: subprocess.CompletedProcess, *needed: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("tcpview: error: live capture needs root"), p.stderr
    for words in ("sudo", "tcpview sockets", "tcpview demo", *needed):
        assert words in p.stderr, words
    assert "setcap" not in p.stderr and "python" not in p.stderr


def test_wireshark_group_captures_through_dumpcap_and_others_are_told_how(users, lo_traffic):
    t = lo_traffic
    t.listener("close_wait")
    t.listener("time_wait")
    t.reserve("refused")
    saved = users.base / "saved.pcap"
    argv = users.argv(users.member, "summary", "-i", "lo", "-f", t.bpf(), "--duration", "4", "--json",
                      "-w", str(saved))
    p = subprocess.Popen(argv,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=users.env, cwd="/", text=True)
    try:
        # loading the kernels is part of the start: a missed cache would compile (minutes)
        said = read_until(p.stderr, "capturing on lo", 300)
        cw, tw, rf = t.close_wait(), t.time_wait(), t.refused()
        # the kernel's view once the FINs' ACKs are out (one may come a delayed-ACK later)
        kernel = wait_until(lambda: (rows := ss_rows()) and ss_state(rows, tw[0], tw[1]) == "TIME_WAIT"
                            and ss_state(rows, cw[0], cw[1]) == "FIN_WAIT_2" and rows, 5)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = said + err
    assert p.returncode == 0, err
    assert "through dumpcap" in err and "packet ring" not in err
    assert "dropped (as dumpcap says)" in err  # its drops, told when it stopped
    s = json.loads(out)
    conns = {(c["client"]["port"], c["server"]["port"]): c for c in s["connections"]}
    assert len(conns) == 3, (err, s)
    for c_end, s_end in (cw, tw):
        c = conns[(c_end[1], s_end[1])]
        assert (c["client"]["state"], c["server"]["state"]) == (ss_state(kernel, c_end, s_end),
                                                               ss_state(kernel, s_end, c_end))
    assert (conns[(cw[0][1], cw[1][1])]["client"]["state"], conns[(cw[0][1], cw[1][1])]["server"]["state"]) == (
        "FIN_WAIT_2", "CLOSE_WAIT")
    assert (conns[(tw[0][1], tw[1][1])]["client"]["state"], conns[(tw[0][1], tw[1][1])]["server"]["state"]) == (
        "TIME_WAIT", "CLOSED")
    r = conns[(rf[0][1], rf[1][1])]
    assert (r["client"]["state"], r["server"]["state"]) == ("CLOSED", "CLOSED") and "refused" in r["notes"]
    # -w saved what came through dumpcap: read back, the same packets and states
    from tcpview.engine.pump import load

    assert f"saved {s['packets']} packets to {saved}" in err
    again = load(str(saved)).timeline
    assert again.packets == s["packets"] and again.counters_at(None)["CLOSE_WAIT"] == 1
    assert pwd.getpwuid(saved.stat().st_uid).pw_name == users.member

    # outside the group: dumpcap may not be run, and the line says how to join
    env = {k: v for k, v in users.env.items() if k != "NUMBA_CACHE_DIR"}  # that cache is the member's
    p = subprocess.run(users.argv(users.outsider, "summary", "-i", "lo", "--duration", "1"), capture_output=True,
                       text=True, env=env, cwd="/", timeout=120, stdin=subprocess.DEVNULL, check=False)
    _check_refusal(p, "sudo dpkg-reconfigure wireshark-common", "sudo usermod -aG wireshark $USER", "log in again")
    # in the group since a moment (usermod), not yet in this session (no new login): log in again
    uid = pwd.getpwnam(users.member).pw_uid
    p = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={USERS_GID}", "--clear-groups", users.python, "-m",
                        "tcpview", "live", "-i", "lo"], capture_output=True, text=True, env=users.env, cwd="/",
                       timeout=120, stdin=subprocess.DEVNULL, check=False)
    _check_refusal(p, "you are in the wireshark group, but this session is not yet", "log in again",
                   "newgrp wireshark")


# -- as root: the source itself, its errors, and the viewer's status line ------------------------
def _states_by_client_port(tl) -> dict[int, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    from tcpview.engine.core.tcp import STATE_NAMES

    return {c.cport: tuple(STATE_NAMES[x] for x in c.state) for c in tl.conns}


def test_dumpcap_source_feeds_the_tracker_and_tells_its_drops_when_it_stops(lo_traffic):
    _need_dumpcap()
    from tcpview.engine.pump import PumpThread
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sources.linktypes import LINKTYPE_ETHERNET
    from tcpview.sources.live.dumpcap import DumpcapSource

    t = lo_traffic
    t.listener("close_wait")
    t.reserve("refused")
    src = DumpcapSource("lo", t.bpf())
    tr = Tracker()
    cap = PumpThread(src, tr).start()
    try:
        assert src.method == "dumpcap" and src.linktype == LINKTYPE_ETHERNET
        cw, rf = t.close_wait(), t.refused()
        tl = tr.tl
        want = {cw[0][1]: ("FIN_WAIT_2", "CLOSE_WAIT"), rf[0][1]: ("CLOSED", "CLOSED")}
        assert wait_until(lambda: _states_by_client_port(tl) == want, 10), _states_by_client_port(tl)
        st = src.status()
        assert st["captured"] == tl.packets and "dropped" not in st  # dumpcap has not said yet
    finally:
        cap.stop()
        src.close()
    assert src.status()["dropped"] == 0 and src.error is None
    assert any(line.startswith("Packets received/dropped") for line in src.said)


def test_dumpcap_errors_are_one_line(lo_traffic):
    """A bad filter in dumpcap's own words; an interface that goes away ends the capture with
    dumpcap's reason; a dumpcap that cannot be run is a privilege problem, said as one."""
    _need_dumpcap()
    from tcpview.engine.pump import PumpThread
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sources.live.dumpcap import DumpcapSource, refusal
    from tcpview.sources.live.ring import CapturePrivilegeError, LiveError

    with pytest.raises(LiveError, match=r"^dumpcap: Invalid capture filter .tcp prt 1. for interface 'lo'\.$"):
        DumpcapSource("lo", "tcp prt 1")
    with pytest.raises(LiveError, match="no such interface: 'nosuchif0'"):
        DumpcapSource("nosuchif0")
    # a dumpcap this user may not run (root may run any program with an x bit: none here)
    plain = Path(tempfile.mkdtemp()) / "dumpcap"
    try:
        plain.write_text("")
        with pytest.raises(CapturePrivilegeError, match="join the wireshark group.*log in again"):
            DumpcapSource("lo", dumpcap=str(plain))
    finally:
        shutil.rmtree(plain.parent)
    assert re.fullmatch(r"live capture needs root \(Wireshark's dumpcap, .* is not installed\): run it with "
                        r"sudo, or install it and join its group: sudo apt install wireshark-common, then sudo "
                        r"dpkg-reconfigure wireshark-common \(answer yes\), then sudo usermod -aG wireshark \$USER "
                        r"and log in again; without privileges try `tcpview sockets` .* or `tcpview demo`",
                        refusal(None))

    name = f"tvd{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"], check=True)
    try:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        src = DumpcapSource(name)
        cap = PumpThread(src, Tracker()).start()
        try:
            subprocess.run(["ip", "link", "del", name], check=True)
            assert wait_until(lambda: src.error, 20), src.said
            assert src.error.startswith(f'dumpcap stopped capturing: The network adapter "{name}" is no longer '
                                        "attached")
            assert cap.wait(10)  # the pump ended with the stream
        finally:
            with pytest.raises(RuntimeError, match="^dumpcap stopped capturing"):
                cap.stop()
            src.close()
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


async def test_status_line_names_the_way_of_capture(lo_traffic):
    """``lo via dumpcap ... dropped ?`` (dumpcap tells its drops when it stops), and ``lo via
    packet ring ... dropped 0`` for tcpview's own ring; the same traffic fills both viewers."""
    _need_dumpcap()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.sources.live.dumpcap import DumpcapSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.capture_status import CaptureStatus

    t = lo_traffic
    for kind, way, dropped in ((DumpcapSource, "dumpcap", "?"), (LiveSource, "packet ring", "0")):
        port = t.listener(way)
        src = kind("lo", f"tcp port {port}")
        app = LiveApp(src)
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                t.time_wait(way)
                line = app.query_one(CaptureStatus)
                def shown(a=app, s=line) -> bool:  # type: ignore[no-untyped-def]
                    return len(a.tl.conns) == 1 and "captured 0" not in s.plain()

                assert await wait_until(shown, 10, 0.05, pilot.pause)
                text = line.plain()
                assert text.startswith(f"lo via {way}  captured ") and f"dropped {dropped} " in text, text
                assert not line.has_class("-dropped")
                await pilot.press("q")
        finally:
            src.close()


def test_dumpcap_clock_never_runs_ahead_of_a_packet_on_its_way(lo_traffic):
    """The live clock (what idle and TIME_WAIT timers are judged by) never passes the time
    stamp of a packet dumpcap has not handed over yet: libpcap holds packets for up to its
    read timeout before dumpcap writes them to the pipe. Fails with the wall clock unheld."""
    _need_dumpcap()
    import threading
    import time

    from tcpview.sources.live.dumpcap import DumpcapSource

    t = lo_traffic
    t.listener("established")
    src = DumpcapSource("lo", t.bpf())
    stop, ahead, seen = threading.Event(), [], 0

    def talk() -> None:  # a few connections, a little apart, after the capture is up
        for _ in range(6):
            t.established()
            time.sleep(0.15)

    talker = threading.Thread(target=talk)
    try:
        clock, deadline = src.now(), time.monotonic() + 15
        talker.start()
        for rec in src.frames(stop):
            if rec is not None:
                seen += 1
                if rec[1] < clock:
                    ahead.append(clock - rec[1])
            if seen >= 18 or time.monotonic() > deadline:
                break
            clock = max(clock, src.now())
    finally:
        stop.set()
        talker.join()
        src.close()
    assert seen >= 18  # six handshakes on lo at least
    assert not ahead, f"the clock passed {len(ahead)} packets still on their way, by up to {max(ahead):.3f} s"
