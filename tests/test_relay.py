"""A stream's pipe is emptied by a process of its own (tcpview.sources.relay): a consumer that
holds Python's GIL for a long while (a compiled batch, a screen drawn) does not make its
producer wait, and the process never outlives its consumer."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import many_connections, pcap_bytes, wait_until
from livehelp import env_with_repo, tcpview_cmd
from prochelp import children, kill_child, policies, read_pty, relays

from tcpview.sources.drain import CONSUMER_NICE, Drain, in_pipe

# A producer in a process of its own (a thread here would need the GIL the consumer holds):
# 100-byte records, one write each, about 8 MB/s, as tcpdump -U writes a loopback's churn; it
# never waits on a full pipe but counts it, and prints the count.
_PRODUCER = textwrap.dedent("""
    import os, sys, time
    os.set_blocking(1, False)
    blocked = 0
    for i in range(int(sys.argv[1])):
        if i % 80 == 79:
            time.sleep(0.001)
        view = memoryview(bytes([i % 251]) * 100)
        while view:
            try:
                view = view[os.write(1, view):]
            except BlockingIOError:
                blocked += 1
                time.sleep(0.001)
    os.close(1)
    sys.stderr.write(str(blocked))
""")


def _hold_the_gil(seconds: float) -> None:
    """Hold the GIL for stretches of about half a second (a regular expression that backtracks
    lets go of it only between calls, as a compiled batch does), for ``seconds`` in all."""
    n = 18
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        t = time.monotonic()
        re.match(r"(a+)+b", "a" * n)
        if time.monotonic() - t < 0.4:  # twice as long each step: pipes hold about 0.13 s of it
            n += 1


def test_a_consumer_holding_the_gil_never_holds_the_producer_back():
    r, w = os.pipe()
    drain = Drain(r)
    try:
        assert drain.relay is not None
        producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, "60000"], stdout=w, stderr=subprocess.PIPE)
        os.close(w)
        w = -1
        _hold_the_gil(1.5)  # the whole 6 MB is written meanwhile: 1 MiB pipes could not hold it
        _out, err = producer.communicate(timeout=60)
        assert int(err) == 0  # without the relay process, the pipe was full hundreds of times
        got = bytearray()
        while (chunk := drain.take(1.0)) != b"":
            assert chunk is not None
            got += chunk
        assert bytes(got) == b"".join(bytes([i % 251]) * 100 for i in range(60_000))
        assert drain.waiting() == 0 and in_pipe(r) == 0
    finally:
        drain.close()
        if w >= 0:
            os.close(w)
        os.close(r)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (not waited for yet) is gone too
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_the_relay_ends_with_its_consumer_even_when_killed():
    consumer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import signal, sys, time
            from tcpview.sources.drain import Drain
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            d = Drain(0)
            print(d.relay.proc.pid, flush=True)
            time.sleep(60)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        relay_pid = int(consumer.stdout.readline())
        os.killpg(consumer.pid, signal.SIGINT)  # Ctrl-C in its terminal: the consumer's to handle
        time.sleep(0.2)  # what is asserted is that nothing happens: there is nothing to wait for
        assert not _gone(relay_pid)
        consumer.kill()  # no chance to clean up: the relay sees its reader gone, idle as it is
        consumer.wait(10)
        assert wait_until(lambda: _gone(relay_pid), 5)
    finally:
        consumer.kill()
        consumer.wait()


def test_close_stops_the_relay_and_a_stream_from_a_file_has_none(tmp_path):
    r, w = os.pipe()
    drain = Drain(r)
    relay = drain.relay
    assert relay is not None
    drain.close()
    assert relay.proc.poll() is not None
    os.close(w)
    os.close(r)
    path = tmp_path / "stream"
    path.write_bytes(b"abc")
    with open(path, "rb") as f:  # `tcpview summary - < file`: read as it is
        drain = Drain(f.fileno())
        try:
            assert drain.relay is None
            assert drain.take(1.0) == b"abc"
        finally:
            drain.close()


def test_a_relay_started_before_a_fork_is_taken_over_and_stopped_by_the_child():
    """The ``tcpview`` command starts the relay, then forks the command into a session of its
    own (tcpview.apart): the child reads through the relay it did not start, and its close
    stops it (the child cannot wait for another's child; the starter reaps it)."""
    code = """
        import os, time
        from tcpview.sources.drain import Drain, start_early
        r, w = os.pipe()
        assert start_early(r)
        pid = os.fork()
        if pid == 0:
            os.close(w)
            drain = Drain(r)
            relay = drain.relay.proc.pid
            got = b""
            while len(got) < 5:
                got += drain.take(5) or b""
            drain.close()
            print(relay, got.decode(), flush=True)
            os._exit(0)
        os.write(w, b"hello")
        os.waitpid(pid, 0)
        relay, ended = None, os.waitpid(-1, 0)  # the relay, the starter's own child: it has ended
        print(ended[0], os.waitstatus_to_exitcode(ended[1]))
    """
    got = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env_with_repo(), timeout=60)
    assert got.returncode == 0, got.stderr
    child, parent = got.stdout.splitlines()
    relay, text = child.split()
    assert text == "hello"
    ended, status = parent.split()
    assert ended == relay and int(status) in (0, -signal.SIGTERM)


def _priorities(pid: int) -> set[int]:
    """The priorities of the threads of ``pid``."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.add(os.getpriority(os.PRIO_PROCESS, int(tid)))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return out


def _catches(pid: int, sig: int, mask: str = "SigCgt") -> bool:
    """Whether process ``pid`` has a handler of its own for signal ``sig`` (``mask``
    ``SigIgn``: whether it ignores it)."""
    with open(f"/proc/{pid}/status") as f:
        bits = next(int(line.split()[1], 16) for line in f if line.startswith(mask + ":"))
    return bool(bits >> (sig - 1) & 1)


def test_the_tcpview_command_yields_the_cpu_to_its_producer():
    """`tcpdump -U -w - | tcpview summary -`: tcpview's threads run at a lower priority than
    the relay (and the producer), and in the idle class, so where the CPUs are busy the capture
    comes first; and no pool of BLAS threads spins beside them (tcpview uses no BLAS)."""
    view = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={k: v for k, v in env_with_repo().items() if not k.endswith("_NUM_THREADS")})
    try:
        view.stdin.write(pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(5)))
        view.stdin.flush()
        # (the command runs in a child of the process started, in a session of its own, beside
        # the relay that process started first: tcpview.apart)
        assert wait_until(lambda: len(children(view.pid)) == 2, 20)
        (relay,) = relays(view.pid)
        (command,) = set(children(view.pid)) - {relay}
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        lowered = min(19, mine + CONSUMER_NICE)
        assert wait_until(lambda: _priorities(command) == {lowered}, 10), _priorities(command)
        assert os.getpriority(os.PRIO_PROCESS, relay) == mine
        assert wait_until(lambda: policies(command) == {os.SCHED_IDLE}, 20), policies(command)
        assert os.sched_getscheduler(relay) == os.sched_getscheduler(0) != os.SCHED_IDLE
        # the main thread alone, whatever the CPUs: it reads the relay's pipe itself (a thread
        # for that would copy every byte once more), and a second would be a pool that numpy's
        # import started
        def threads() -> int:
            return len(os.listdir(f"/proc/{command}/task"))

        assert not wait_until(lambda: threads() > 1, 4), threads()
        # its start took its CPU in short turns (tcpview.pacer); its analysis, on this thread
        # in the idle class, takes no rests: the timer that marked the turns is gone (what is
        # left of it ignored)
        assert not _catches(command, signal.SIGPROF) and _catches(command, signal.SIGPROF, "SigIgn")
        out, _err = view.communicate(timeout=60)
        assert view.returncode == 0 and len(json.loads(out)["connections"]) == 5
    finally:
        view.kill()
        view.wait()


def test_a_command_reading_a_stream_on_its_own_thread_ends_its_paced_start_at_its_first_take():
    """`tcpdump -U -w - | tcpview summary -` at a terminal: the command's start (imports, the
    engine) takes its CPU in short turns, as the viewer's does, or tcpdump, sharing the
    terminal session's share of the CPUs with it, drops packets while it starts. Its own
    thread then reads the stream in the idle class, and the turns end there; a take on another
    thread (the viewer's reader) leaves them on, for the thread that draws."""
    code = """
        import os, threading
        from tcpview.pacer import pacing, start_pacing
        from tcpview.sources.drain import Drain, start_early, yield_to_producers
        r, w = os.pipe()
        os.write(w, b"x" * 1000)
        yield_to_producers()
        assert start_early(r)
        start_pacing()
        drain = Drain(r)
        out = []
        other = threading.Thread(target=lambda: out.append((len(drain.take(5) or b""), pacing())))
        other.start()
        other.join()
        os.write(w, b"y" * 500)
        got = drain.take(5)
        print(out[0][0], out[0][1], len(got or b""), pacing())
        drain.close()
    """
    got = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env_with_repo(), timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["1000", "True", "500", "False"], got.stdout


def test_the_viewer_answers_keys_while_its_analysis_yields(tmp_path):
    """`tcpdump -U -w - | tcpview replay -` in a terminal: the thread that reads and analyses the
    stream runs in the idle class (a waking producer takes its CPU at once), the viewer's own
    thread does not (it must answer keys and draw where other processes keep the CPUs busy):
    it stays at the lowered priority, takes its CPU in short turns, and quits on a key."""
    import pty

    stream_r, stream_w = os.pipe()
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its terminal, the pipe its stdin
        os.dup2(stream_r, 0)
        os.close(stream_r)
        os.close(stream_w)
        env = {k: v for k, v in env_with_repo().items() if k != "TEXTUAL_DRIVER"}
        env.update(TERM="xterm-256color", COLUMNS="100", LINES="30")
        os.execve(sys.executable, tcpview_cmd("replay", "-"), env)
    os.close(stream_r)
    screen = bytearray()

    def read_screen() -> None:
        read_pty(fd, screen)

    try:
        os.write(stream_w, pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(20)))
        tasks = f"/proc/{pid}/task"

        def policies() -> dict[int, int]:
            read_screen()  # (a full terminal would hold the viewer up)
            out = {}
            for tid in os.listdir(tasks):
                try:
                    out[int(tid)] = os.sched_getscheduler(int(tid))
                except ProcessLookupError:
                    continue
            return out

        assert wait_until(lambda: list(policies().values()).count(os.SCHED_IDLE) >= 1, 30), policies()
        assert policies()[pid] != os.SCHED_IDLE  # the viewer's own thread
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + CONSUMER_NICE)
        assert wait_until(lambda: b"Connections" in screen or (read_screen() or False), 30)
        assert _catches(pid, signal.SIGPROF)  # its own thread rests, timed by its CPU (tcpview.pacer)
        os.write(fd, b"q")
        assert wait_until(lambda: (read_screen() or True) and os.waitpid(pid, os.WNOHANG) != (0, 0), 30)
    finally:
        os.close(stream_w)
        kill_child(pid)
        os.close(fd)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the order of the start")
def test_a_stream_is_read_before_the_engine_loads_and_by_one_relay(tmp_path):
    """tcpdump writes from its first packet while tcpview loads its engine: the relay starts
    before numpy is opened, and before even the command line's parser (the ``tcpview.cli``
    package) is (so nothing the producer writes meanwhile waits on a full pipe), and the
    stream's reader takes that relay over rather than starting a second one."""
    trace = tmp_path / "trace"
    data = pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(3))
    got = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve,openat", "-o", str(trace),
                          *tcpview_cmd("summary", "-", "--json")],
                         input=data, capture_output=True, env=env_with_repo(), timeout=120)
    assert got.returncode == 0, got.stderr
    assert len(json.loads(got.stdout)["connections"]) == 3
    lines = trace.read_text().splitlines()
    relays = [i for i, line in enumerate(lines) if "execve(" in line and "relay.py" in line]
    numpy = [i for i, line in enumerate(lines) if "openat(" in line and "/numpy/" in line]
    assert len(relays) == 1, [lines[i] for i in relays]
    assert numpy and relays[0] < numpy[0]
    cli = [i for i, line in enumerate(lines) if "openat(" in line and "/tcpview/cli/" in line]
    assert cli and relays[0] < cli[0]


@pytest.mark.parametrize(("argv", "streams"), [
    (["replay", "-"], True),
    (["summary", "-", "--json"], True),
    (["replay", "--theme", "dark", "-"], True),
    (["export", "x.pcap", "--output", "-"], False),  # an option's value: standard output, not a source
    (["summary", "x.pcap"], False),
    (["-"], False),  # no command before it
])
def test_the_command_line_says_whether_a_stream_comes_on_stdin(argv, streams):
    """What the ``tcpview`` command reads before anything else, to start emptying the pipe."""
    from tcpview.resident.client import reads_stdin

    assert reads_stdin(argv) is streams


@pytest.mark.skipif(not hasattr(os, "splice"), reason="the system has no splice")
def test_the_relay_moves_bytes_from_pipe_to_pipe_without_reading_them():
    """Where its pipe has room, the relay moves what the producer wrote into it in the kernel
    (``splice``): it never copies the stream itself. A full pipe says so (None: the relay then
    reads into memory), and the producer's end is 0."""
    from tcpview.sources.relay import splice_into

    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    try:
        os.write(src_w, b"abc" * 1000)
        assert splice_into(src_r, dst_w) == 3000
        assert os.read(dst_r, 10_000) == b"abc" * 1000
        os.set_blocking(dst_w, False)
        while True:  # fill the consumer's pipe
            try:
                os.write(dst_w, b"x" * 65536)
            except BlockingIOError:
                break
        os.write(src_w, b"more")
        assert splice_into(src_r, dst_w) is None
        assert os.read(src_r, 10) == b"more"  # still there for the relay to read
        os.close(src_w)
        src_w = -1
        assert splice_into(src_r, dst_w) is None  # (full: the relay's read then finds the end)
        os.set_blocking(dst_r, False)
        while True:  # the consumer takes everything
            try:
                os.read(dst_r, 1 << 20)
            except BlockingIOError:
                break
        assert splice_into(src_r, dst_w) == 0
    finally:
        for fd in (src_r, dst_r, dst_w, src_w):
            if fd >= 0:
                os.close(fd)


def test_start_early_says_whether_a_relay_empties_the_stream(tmp_path):
    """Only a pipe (FIFO, socket) gets a relay from the command's first step, and only then
    does the viewer take its CPU in short turns (a file on stdin waits for nobody)."""
    code = textwrap.dedent("""
        import os, sys
        from tcpview.sources.drain import start_early
        print(start_early(0), start_early(0))
    """)
    capture = tmp_path / "c.pcap"
    capture.write_bytes(pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(1)))
    with open(capture, "rb") as f:
        from_file = subprocess.run([sys.executable, "-c", code], stdin=f, capture_output=True, text=True,
                                   env=env_with_repo(), timeout=60)
    from_pipe = subprocess.run([sys.executable, "-c", code], input=b"x", capture_output=True,
                               env=env_with_repo(), timeout=60)
    assert from_file.stdout.split() == ["False", "False"], from_file.stderr
    assert from_pipe.stdout.decode().split() == ["True", "True"], from_pipe.stderr
