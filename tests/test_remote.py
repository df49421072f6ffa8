"""``--remote``: capture on other hosts over ssh, against the test's own sshds (real ssh, real
tcpdump on the "hosts", real TCP on their loopbacks).

Two hosts (remotehelp.py): this one, through an sshd on 127.0.0.1, and a network namespace
with its own sshd and loopback, reached over a veth pair. The same filter on both; the
connections tcpview shows, with their hosts, are those tcpdump captures locally on each.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import cli, wait_until
from livehelp import env_with_repo, need_root, read_until, tcpview_cmd
from sshhelp import SSHD, RootSshd

pytestmark = pytest.mark.skipif(SSHD is None or shutil.which("ssh") is None, reason="OpenSSH is not installed")


@pytest.fixture
def two_hosts(tmp_path: Path):  # type: ignore[no-untyped-def]
    need_root()
    if shutil.which("ip") is None:
        pytest.skip("ip (iproute2) is not installed")
    from remotehelp import TwoHosts

    hosts = TwoHosts(tmp_path)
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def sshd(tmp_path: Path):  # type: ignore[no-untyped-def]
    need_root()
    server = RootSshd(tmp_path / "sshd")
    try:
        yield server
    finally:
        server.stop()


def _tcpdump(bpf: str, pcap: Path, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """A reference capture on lo (in a namespace with ``prefix``), started and listening."""
    dump = subprocess.Popen([*prefix, "tcpdump", "-i", "lo", "-U", "-s", "512", "-w", str(pcap), bpf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    read_until(dump.stderr, "listening on", 10)
    return dump


def _rows(summary: dict, host: str | None = None) -> set[tuple]:
    """The connections of a JSON summary: host, ends, states and packets."""
    return {(host or c.get("host"), c["client"]["port"], c["server"]["port"], c["client"]["state"],
             c["server"]["state"], c["packets"]) for c in summary["connections"]}


def test_two_hosts_give_the_connections_a_local_capture_of_each_gives(two_hosts, lo_traffic, tmp_path):
    """summary --remote A --remote B (the same filter): every connection of both loopbacks,
    each with its host, as tcpdump on each host captured them; both hosts' drops are known."""
    t = lo_traffic
    ports = [t.listener("time_wait"), t.listener("close_wait"), t.listener("abort"), t.reserve("refused")]
    bpf = t.bpf()
    two_hosts.b_listen(ports[:3])  # host B listens on the same port numbers, on its own loopback
    a_pcap, b_pcap = tmp_path / "a.pcap", tmp_path / "b.pcap"
    refs = [_tcpdump(bpf, a_pcap), _tcpdump(bpf, b_pcap, tuple(two_hosts.ns_exec()))]
    specs = two_hosts.specs()
    run = subprocess.Popen(tcpview_cmd("summary", *specs, *two_hosts.options(), "-f", bpf, "--duration", "6",
                                       "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env_with_repo())
    try:
        said = read_until(run.stderr, "capturing on", 120)
        assert "capturing on 2 hosts" in said and "through ssh" in said, said
        for scenario in ("time_wait", "close_wait", "abort", "refused"):
            getattr(t, scenario)()
        for scenario in ("time_wait", "server_first", "established"):
            two_hosts.b_run(scenario)
        out, err = run.communicate(timeout=60)  # seconds after the traffic: tcpdump -U wrote it all
    finally:
        for p in (run, *refs):
            if p.poll() is None:
                p.terminate()
            p.wait()
    assert run.returncode == 0, err
    got = json.loads(out)
    a, b = specs[1], specs[3]
    want = set()
    for pcap, host in ((a_pcap, a), (b_pcap, b)):
        code, text, stderr = cli("summary", str(pcap), "--json")
        assert code == 0, stderr
        want |= _rows(json.loads(text), host)
    assert len(want) == 7 and {r[0] for r in want} == {a, b}
    assert _rows(got) == want, ({k: v for k, v in got.items() if k != "connections"}, got["connections"][:2], err)
    assert [h["host"] for h in got["hosts"]] == [a, b]
    assert all(h["dropped"] == 0 and h["problem"] is None for h in got["hosts"]), got["hosts"]
    assert f"{a}: " in err and f"{b}: " in err and "dropped by its kernel" in err


def test_a_quiet_host_holds_the_others_back_by_the_grace_only(two_hosts, lo_traffic):
    """The merge goes on while host B sends nothing (its watermark is the clock less the grace),
    frames come out in time order, and each keeps its host."""
    need_root()
    from tcpview.sources.live.remote import parse_remote
    from tcpview.sources.live.remote_merge import GRACE, RemoteCapture

    t = lo_traffic
    ports = [t.listener("time_wait"), t.listener("server_first"), t.listener("established")]
    two_hosts.b_listen(ports)
    opts = two_hosts.options()[1::2]
    src = RemoteCapture([parse_remote(two_hosts.specs()[1]), parse_remote(two_hosts.specs()[3])], bpf=t.bpf(),
                        options=opts)
    stop = threading.Event()
    got: list[tuple[float, float, int]] = []  # (time stamp, when it came out, host)

    def read() -> None:
        for batch in src.batches(stop):
            if batch is not None:
                came = time.time()
                got.extend((ts, came, int(c)) for ts, c in zip(batch.frames.ts.tolist(), batch.capture.tolist(),
                                                               strict=True))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(3):  # host A only: B stays quiet
            t.time_wait()
            time.sleep(0.3)
        assert wait_until(lambda: len(got) >= 30, 10), got
        late = max(came - ts for ts, came, _h in got)
        assert late < GRACE + 0.5, f"host A's frames came out {late:.3f} s after they were captured"
        two_hosts.b_run("time_wait")
        assert wait_until(lambda: any(h == 1 for _ts, _c, h in got), 10)
        t.time_wait()
        n = len(got)
        assert wait_until(lambda: len(got) > n + 5, 10)
    finally:
        stop.set()
        src.close()
        reader.join(5)
    stamps = [ts for ts, _c, _h in got]
    assert stamps == sorted(stamps)
    assert {h for _ts, _c, h in got} == {0, 1}
    assert src.captures.name(1) == two_hosts.specs()[1] and math.isinf(src.now()) is False


async def test_live_app_shows_hosts_and_goes_on_when_one_drops_out(two_hosts, lo_traffic):
    """The live viewer (Pilot): a host column with both hosts, each host's drops on the status
    line; host B's sessions killed: the status line and a notification say it is gone, and
    host A's new connections still arrive."""
    from uihelp import Notes

    from tcpview.engine.output.writers import first_capture
    from tcpview.sources.live.remote import parse_remote, short_name
    from tcpview.sources.live.remote_merge import RemoteCapture
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.capture_status import CaptureStatus
    from tcpview.ui.widgets.conn_table import ConnectionTable

    t = lo_traffic
    ports = [t.listener("time_wait"), t.listener("server_first"), t.listener("established")]
    two_hosts.b_listen(ports)
    a, b = two_hosts.specs()[1], two_hosts.specs()[3]
    src = RemoteCapture([parse_remote(a), parse_remote(b)], bpf=t.bpf(), options=two_hosts.options()[1::2])
    try:
        app = LiveApp(src)
        notes = Notes()
        async with app.run_test(size=(160, 40), message_hook=notes) as pilot:
            t.time_wait()
            two_hosts.b_run("server_first")
            table = app.query_one(ConnectionTable)

            def hosts_shown() -> set[str | None]:
                return {first_capture(app.tl, int(cid)) for cid in table.rows}

            assert await wait_until(lambda: hosts_shown() == {a, b}, 15, 0.1, pilot.pause), hosts_shown()
            assert "host" in [c.key for c in table.columns()]
            status = app.query_one(CaptureStatus)
            sa, sb = short_name(a), short_name(b)  # 127.0.0.1:PORT/lo, 10.213.N.2:2222/lo
            assert await wait_until(lambda: f"{sb} dropped 0" in status.plain(), 10, 0.1, pilot.pause), status.plain()
            assert f"{sa} dropped 0" in status.plain()
            assert two_hosts.b.kill_sessions() > 0  # host B drops out
            assert await wait_until(lambda: f"{sb} gone" in status.plain(), 15, 0.1, pilot.pause), status.plain()
            assert await wait_until(lambda: any(b in n.message and "dropped out" in n.message for n in notes),
                                    5, 0.1, pilot.pause)
            before = len(table.rows)
            t.time_wait()  # host A goes on
            assert await wait_until(lambda: len(table.rows) > before, 10, 0.1, pilot.pause)
            assert src.hosts()[0]["state"] == "capturing" and src.hosts()[1]["state"] == "ended"
            await pilot.press("q")
    finally:
        src.close()


def _fails(*args: str) -> str:
    """Run tcpview; it must fail with one line on stderr, status 2; that line."""
    code, out, err = cli(*args, timeout=60)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tcpview: error: "), (code, out, err)
    assert "Traceback" not in err
    return lines[0]


def test_bad_hosts_are_one_line_each_and_status_2(sshd, tmp_path):
    spec = sshd.spec("lo")
    opts = sshd.options()
    line = _fails("summary", "--remote", "nosuchhost.invalid", "--duration", "1")
    assert "nosuchhost.invalid" in line and "resolve" in line
    line = _fails("live", "--remote", "nosuchhost.invalid")  # before any viewer: no terminal needed
    assert "nosuchhost.invalid" in line
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    line = _fails("summary", "--remote", spec, "--ssh-option", f"IdentityFile={other}", "--ssh-option",
                  "IdentitiesOnly=yes", "--ssh-option", "StrictHostKeyChecking=no", "--ssh-option",
                  "UserKnownHostsFile=/dev/null", "--duration", "1")
    assert spec in line and "Permission denied" in line
    line = _fails("summary", "--remote", spec, *opts, "--remote-tcpdump", "no-such-tcpdump", "--duration", "1")
    assert spec in line and "no-such-tcpdump was not found there" in line
    line = _fails("summary", "--remote", sshd.spec("nosuchif0"), *opts, "--duration", "1")
    assert "nosuchif0" in line and ("No such device" in line or "doesn't exist" in line)
    # a filter is tcpdump's argument on the host, never shell text there
    mark = tmp_path / "injected"
    line = _fails("summary", "--remote", spec, *opts, "-f", f"tcp port 1; touch {mark}", "--duration", "1")
    assert spec in line and "syntax error" in line
    _fails("summary", "--remote", spec, *opts, "-f", f"tcp port 1' ; touch '{mark}", "--duration", "1")
    _fails("summary", "--remote", spec, *opts, "-f", f"$(touch {mark})", "--duration", "1")
    assert not mark.exists()
    # what does not go with --remote
    assert "-w" in _fails("summary", "--remote", spec, "-w", str(tmp_path / "x.pcap"), "--duration", "1")
    assert "--kernel" in _fails("live", "--remote", spec, "--kernel")
    assert "KEY=VALUE" in _fails("summary", "--remote", spec, "--ssh-option=-oProxyCommand=x", "--duration", "1")
    assert "--remote" in _fails("summary", "--ssh-option", "Port=1", "-i", "lo", "--duration", "1")
    assert "not a port" in _fails("summary", "--remote", "ssh://h:99999/lo", "--duration", "1")


def test_the_ssh_connection_itself_is_not_captured(sshd):
    """Without a filter, host A's capture of lo would hold its own ssh stream (each packet
    carried makes more to carry): the script leaves that connection out."""
    code, out, err = cli("summary", "--remote", sshd.spec("lo"), *sshd.options(), "--duration", "3", "--json",
                         timeout=120)
    assert code == 0, err
    ssh_port = sshd.port
    carried = [c for c in json.loads(out)["connections"]
               if c["server"]["port"] == ssh_port and c["client"]["ip"] == "127.0.0.1"]
    # the session's own connection is left out (another test's ssh to this port would show)
    assert all(c["packets"] < 100 for c in carried), carried


def test_host_specs_and_the_command_sent() -> None:
    """The spellings of a host, and the command line ssh gets: every word quoted, the user's
    options before the defaults (ssh keeps the first value), the host's own port first."""
    import shlex

    from tcpview.sources.live.remote import parse_remote, remote_command, short_name, ssh_argv
    from tcpview.sources.live.ring import LiveError

    s = parse_remote("ops@web1:eth0")
    assert (s.user, s.host, s.port, s.iface) == ("ops", "web1", None, "eth0")
    s = parse_remote("[fe80::1]:eth0")
    assert (s.user, s.host, s.port, s.iface) == (None, "fe80::1", None, "eth0")
    s = parse_remote("ssh://root@10.0.0.7:2222/bond0")
    assert (s.user, s.host, s.port, s.iface, s.target()) == ("root", "10.0.0.7", 2222, "bond0", "root@10.0.0.7")
    assert short_name("ssh://root@10.0.0.7:2222/bond0") == "10.0.0.7:2222/bond0"
    assert short_name("ops@web1:eth0") == "web1:eth0"
    for bad in ("", "@web1", "-oProxyCommand=x", "ssh://h:0/lo", "[::1"):
        with pytest.raises(LiveError):
            parse_remote(bad)
    bpf = "tcp port 1 and $(reboot); `reboot` 'x'"
    cmd = remote_command("eth0", bpf, 512, ["sudo", "-n", "tcpdump"])
    words = shlex.split(cmd)  # what the host's shell makes of it: the filter one word, untouched
    assert words[0:2] == ["sh", "-c"] and words[3:] == ["tcpview", "eth0", bpf, "512", "32768", "sudo", "-n", "tcpdump"]
    assert shlex.split(remote_command(None, None, 96, ["tcpdump"], buffer_mb=4))[3:] == ["tcpview", "", "", "96", "4096",
                                                                                           "tcpdump"]
    argv = ssh_argv(s, cmd, ["Port=1", "BatchMode=no"])
    assert argv[argv.index("-p") + 1] == "2222" and argv.index("-p") < argv.index("Port=1")
    assert argv.index("BatchMode=no") < argv.index("BatchMode=yes") and argv[-3:] == ["--", "root@10.0.0.7", cmd]


def _tcpdumps_with(word: str) -> list[list[bytes]]:
    """The command lines of the tcpdumps running now one of whose arguments holds ``word``."""
    from prochelp import cmdline

    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        args = cmdline(pid).split(b"\0")
        if any(a.endswith(b"tcpdump") for a in args[:3]) and any(word.encode() in a for a in args):
            found.append(args)
    return found


def test_a_hosts_tcpdump_gets_the_kernel_buffer_tcpviews_own_capture_gets(sshd):
    """Each host's tcpdump runs with ``-B`` (KiB): 32 MiB unless ``live -B`` says otherwise,
    not tcpdump's 2 MiB, which a busy host's CPUs overrun (tcpview's own capture's default)."""
    from tcpview.sources.live.remote import parse_remote
    from tcpview.sources.live.remote_merge import RemoteCapture

    for asked, kib in ((None, b"32768"), (4, b"4096")):
        bpf = f"tcp port {sshd.port + 1 + (asked or 0)}"  # nothing comes: only its command line is looked at
        extra = {} if asked is None else {"buffer_mb": asked}
        src = RemoteCapture([parse_remote(sshd.spec("lo"))], bpf=bpf, options=sshd.options()[1::2], **extra)
        try:
            assert wait_until(lambda: _tcpdumps_with(bpf), 10)
            (args,) = _tcpdumps_with(bpf)
            assert args[args.index(b"-B") + 1] == kib
        finally:
            src.close()
