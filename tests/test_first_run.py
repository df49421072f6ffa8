"""The first run after an install, when no compiled kernel is cached yet, and how each command
gets its kernels afterwards.

A small capture is answered at once as plain Python (numba is not even imported), a large
one compiled; the first command on a cold cache starts the compile in a process of its own
that outlives it; two commands at once start one compile; a compile killed half-way leaves
a cache that is still cold (not half-made), and the next command answers and compiles again;
an input that turns out large switches to the compiled kernels once they are published.

Each case runs in fresh interpreters whose ``NUMBA_CACHE_DIR`` is a new empty directory
(numba reads it at import), so nothing this suite compiled is found. Compiles a case starts
and does not wait for are killed when it ends.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, cli_here, many_connections, pcapng_bytes, wait_until, write_frames_pcap

from tcpview.engine.warm import BACKGROUND_NICE, PYTHON_MAX_PACKETS
from tcpview.jitcache import READY, sources_digest

APP = """
import asyncio, json, sys
from tcpview.engine.warm import cache_is_warm
from tcpview.sources.base import open_source
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.player_bar import PlayerBar

async def main():
    assert not cache_is_warm()
    want_rows, want_preparing = int(sys.argv[2]), sys.argv[3] == "1"
    app = TcpviewApp(open_source(sys.argv[1]))  # as `tcpview replay` opens it: the file is checked first
    seen = {"preparing_at_first": None, "rows": 0, "preparing": None, "bar": "", "cold": None, "numba": None}
    async with app.run_test(size=(120, 40)) as pilot:
        bar, table = app.query_one(PlayerBar), app.query_one(ConnectionTable)
        for _ in range(1200):  # the table fills long before the kernels are compiled
            await pilot.pause(0.05)
            if seen["preparing_at_first"] is None:
                seen["preparing_at_first"] = bar.preparing
            rows = len(table.rows)
            if (rows == want_rows) if want_rows else (rows > 0 and bar.preparing == want_preparing):
                seen.update(rows=rows, preparing=bar.preparing, bar=bar.build().plain, cold=not cache_is_warm(),
                            numba="numba" in sys.modules)
                break
    print(json.dumps(seen))

asyncio.run(main())
"""


def fresh_cache_env(base: Path) -> dict:
    """The environment of a tcpview process whose kernel cache is ``base`` (empty at first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NUMBA_"))}
    env["NUMBA_CACHE_DIR"] = str(base)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def compilers(base: Path) -> dict[int, str]:
    """The processes compiling the kernels into the cache under ``base``: pid -> command line."""
    found = {}
    mark = f"NUMBA_CACHE_DIR={base}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if b"tcpview.engine.warm" in cmd and mark in env:
            found[int(d.name)] = " ".join(c.decode() for c in cmd if c)
    return found


def niceness(pid: int) -> int | None:
    """A process's nice value (the background one once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return BACKGROUND_NICE  # gone: it was what it was
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19; the command name may hold spaces


def compiles(base: Path) -> list[int]:
    """The compiles under way (a compile's second process, ``--part``, not counted)."""
    return [pid for pid, cmd in compilers(base).items() if "--part" not in cmd]


@pytest.fixture
def cold(tmp_path):
    """A new empty kernel cache and the environment that uses it; the compiles left running
    in it are killed at the end."""
    base = tmp_path / "numba-cache"
    yield base, fresh_cache_env(base)
    for pid in compilers(base):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert wait_until(lambda: not compilers(base), timeout=30)


def imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` listed."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def summary(path: Path, env: dict) -> subprocess.Popen:
    """``tcpview summary PATH --json`` started, its imports listed on stderr."""
    return subprocess.Popen([sys.executable, "-X", "importtime", "-m", "tcpview", "summary", str(path), "--json"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answered(p: subprocess.Popen, want: dict, timeout: float = 300) -> str:
    """Wait for a summary started by :func:`summary`: it succeeded with ``want``; returns its
    stderr."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    assert json.loads(out) == want
    return err


def records_end(pcap: bytes, n: int) -> int:
    """Where the first ``n`` records of a little-endian pcap end."""
    pos = 24
    for _ in range(n):
        pos += 16 + struct.unpack_from("<I", pcap, pos + 8)[0]
    return pos


def run_app(path: Path, env: dict, rows: int, preparing: bool, cwd: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", APP, str(path), str(rows), "1" if preparing else "0"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=cwd, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_first_run_viewer_lists_a_small_capture_at_once(cold, tmp_path):
    base, env = cold
    path = write_frames_pcap(tmp_path / "c.pcap", many_connections(20))
    seen = run_app(path, env, 20, False, tmp_path)
    assert seen["rows"] == 20 and seen["cold"]  # every connection, long before a compile could end
    assert not seen["numba"] and not seen["preparing_at_first"]  # plain Python: nothing to wait for
    assert compiles(base)  # the compile it started goes on after the viewer closed, for the next run
    # at a lower priority than the user's commands (its helper process too)
    assert wait_until(lambda: all(niceness(pid) == BACKGROUND_NICE for pid in compilers(base)), timeout=30)


def test_first_run_viewer_reads_a_large_capture_while_it_prepares(cold, tmp_path):
    _base, env = cold
    frames = many_connections(400)
    assert len(frames) > PYTHON_MAX_PACKETS
    seen = run_app(write_frames_pcap(tmp_path / "c.pcap", frames), env, 0, True, tmp_path)
    assert seen["preparing_at_first"] is True  # up at once, not after compiling
    assert seen["rows"] > 0 and seen["preparing"] and not seen["numba"]
    assert "preparing the engine" in seen["bar"]


def test_first_commands_compile_once_and_survive_a_killed_compile(cold, tmp_path):
    base, env = cold
    cache = base / f"tcpview-{sources_digest()}"
    small = write_frames_pcap(tmp_path / "small.pcap", many_connections(20))
    frames = many_connections(400)
    assert len(frames) > PYTHON_MAX_PACKETS
    large = write_frames_pcap(tmp_path / "large.pcap", frames)
    want_small = json.loads(cli_here("summary", str(small), "--json")[1])  # this process: compiled
    want_large = json.loads(cli_here("summary", str(large), "--json")[1])

    # two commands at once on a cold cache: both answer as plain Python, one compile starts
    both = [summary(small, env), summary(small, env)]
    for p in both:
        err = answered(p, want_small)
        assert "numba" not in imported(err) and "preparing" not in err
    (pid,) = compiles(base)  # and it outlived both commands
    # the lock's file names its holder: the command that took it, until the compile it handed
    # the lock to writes its own pid there
    assert wait_until(lambda: Path(f"{cache}.lock").read_text().split() == [str(pid)], timeout=60)

    # killed half-way, once it has compiled something: nothing half-made is published
    staging = Path(f"{cache}.tmp-{pid}")
    assert wait_until(lambda: staging.is_dir() and any(staging.rglob("*.nbi")), timeout=300)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not compilers(base), timeout=60)  # its second process goes with it
    assert not (cache / READY).exists()

    # the next command answers, and compiles again (the lock the killed one held is free)
    answered(summary(small, env), want_small)
    (again,) = compiles(base)
    assert again != pid

    # a large capture meanwhile is answered as plain Python: a command does not wait for it
    err = answered(summary(large, env), want_large)
    assert "preparing the engine" in err and "numba" not in imported(err)
    assert compiles(base) == [again]

    # a stream that grows large waits for it, as plain Python, and goes on compiled once it is
    # published (the rest of the stream comes after that)
    data = large.read_bytes()
    part = records_end(data, PYTHON_MAX_PACKETS + 100)
    p = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "tcpview", "summary", "-", "--json"], env=env,
                         cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdin is not None
    p.stdin.write(data[:part])
    p.stdin.flush()
    assert wait_until(lambda: (cache / READY).exists(), timeout=900)
    out, err_bytes = p.communicate(data[part:], timeout=300)
    err = err_bytes.decode()
    assert p.returncode == 0, err[-2000:]
    assert dict(json.loads(out), source=str(large)) == want_large
    assert "preparing the engine" in err and "numba" in imported(err)
    assert not list(base.glob("*.tmp-*"))  # what the killed compile left was removed
    assert wait_until(lambda: not compilers(base), timeout=60)

    # and the next command is warm: compiled at once, nothing compiled again
    files = sorted((p.name, p.stat().st_mtime_ns) for p in cache.rglob("*"))
    err = answered(summary(large, env), want_large)
    assert "preparing" not in err and "numba" in imported(err)
    assert not compilers(base)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in cache.rglob("*")) == files


LOADED = """
import json, sys
from tcpview import jit
from tcpview.cli import main
from numba.core import event

compiled = []

class Count(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
if sys.argv[1] == "ready":
    from tcpview.engine.warm import ready
    ready()
    sys.argv[1:] = sys.argv[2:]
main(sys.argv[1:])
from tcpview.sources import scan
read_only = {name: any(not sig[0].mutable for sig in getattr(scan, name).signatures)
             for name in ("scan_pcap", "scan_pcapng", "scan_tpacket")}
print(json.dumps({"loaded": jit.loaded(), "not_loaded": jit.not_loaded(), "entries": jit.entries(),
                  "compiled": compiled, "read_only": read_only}), file=sys.stderr)
"""


def loaded(*args: str) -> dict:
    """What ``tcpview ARGS`` loaded (the warm cache of this checkout): its kernels, those it
    did not load, every kernel, and what numba compiled (nothing, the cache being warm)."""
    p = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=600,
                       cwd=REPO, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stderr.strip().splitlines()[-1])


def test_ready_loads_every_kernel_and_the_types_the_readers_pass(tmp_path):
    """What :func:`ready` (and the compiling process of a first run) prepares is every kernel
    Python calls, for the types of arrays the readers pass: reading a pcap and a pcapng file
    after it compiles nothing (a live capture would drop packets while a kernel compiles)."""
    frames = many_connections(20)
    pcap = write_frames_pcap(tmp_path / "c.pcap", frames)
    ng = tmp_path / "c.pcapng"
    ng.write_bytes(pcapng_bytes([(1, 6)], [(0, t, b) for t, _lt, b in frames]))
    for path in (pcap, ng):
        got = loaded("ready", "summary", str(path), "--json")
        # all but the kernel group (the tracepoints' decoder: only with --kernel)
        assert len(got["entries"]) > 20 and got["not_loaded"] == ["tcpview.sources.tracefs.decode.decode_pages"]
        assert got["compiled"] == []
    # the packet ring's blocks are bytes too (a live capture is not run here: it needs a link)
    assert all(got["read_only"].values()), got["read_only"]


def test_a_command_loads_only_the_kernels_it_needs(tmp_path):
    frames = many_connections(400)
    assert len(frames) > PYTHON_MAX_PACKETS  # compiled
    path = str(write_frames_pcap(tmp_path / "c.pcap", frames))
    plain = set(loaded("summary", path)["loaded"])
    with_json = set(loaded("summary", path, "--json")["loaded"])
    ladder = set(loaded("ladder", path, "--conn", "3")["loaded"])
    reading = {"tcpview.engine.core.loop.track", "tcpview.sources.scan.scan_pcap"}
    connection = {"tcpview.engine.core.passes.seg_fields", "tcpview.engine.core.rtt.conn_numbers"}
    assert reading <= plain and reading <= ladder
    assert not plain & connection and not with_json & connection  # nor the graphs' or the export's
    assert not any("json_rows" in k for k in plain) and any("json_rows" in k for k in with_json)
    assert "tcpview.engine.core.passes.seg_fields" in ladder and not any("zeek" in k for k in ladder)
    assert len(plain) < len(set(loaded("summary", path)["entries"])) / 2
