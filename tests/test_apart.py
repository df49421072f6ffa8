"""A command that reads a stream runs in a session of its own (tcpview.apart): the process the
shell started (the keeper) stays in the shell's session and passes on what the terminal sends;
the command's output and exit status are the same as ever; a killed keeper takes the command
with it; the viewer keeps its keyboard and follows a resize."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from helpers import many_connections, pcap_bytes, reap, wait_until
from livehelp import env_with_repo, tcpview_cmd
from prochelp import children, cmdline, kill_child, policies, read_pty, relays


def _leads_a_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


def _command_of(keeper: int) -> int:
    """The process running the command its keeper started: its one child that leads a session
    of its own (the relay, and any child between its fork and its exec, do not)."""
    def commands() -> list[int]:
        return [c for c in children(keeper) if _leads_a_session(c)]

    assert wait_until(lambda: len(commands()) == 1, 20), children(keeper)
    return commands()[0]


def _state(pid: int) -> str:
    """``pid``'s state letter (R, S, T, Z, ...; empty once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z")


def _capture(n: int) -> bytes:
    return pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(n))


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(tcpview_cmd(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_with_repo())


def test_a_stream_command_runs_in_a_session_of_its_own_and_answers_as_ever(tmp_path):
    data = _capture(7)
    view = _start("summary", "-", "--json")
    try:
        view.stdin.write(data[:24])  # (the header: the command waits for more)
        view.stdin.flush()
        command = _command_of(view.pid)
        assert os.getsid(view.pid) == os.getsid(0)  # the keeper: where the shell started it
        assert os.getsid(command) == command != os.getsid(0)  # the command leads a session of its own
        # the relay that empties the pipe (as cat would) stays in the shell's session, the keeper's
        (relay,) = relays(view.pid)
        assert os.getsid(relay) == os.getsid(0) and not relays(command)
        out, err = view.communicate(data[24:], timeout=60)
        assert view.returncode == 0, err
        assert len(json.loads(out)["connections"]) == 7
    finally:
        reap(view)
    bad = subprocess.run(tcpview_cmd("summary", "-"), input=b"not a capture at all, not at all", capture_output=True,
                         env=env_with_repo(), timeout=60)
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.count(b"\n") == 1 and b"not a pcap or pcapng capture" in bad.stderr
    # a file redirected to stdin has no producer to make room for: read where it was started
    (tmp_path / "in.pcap").write_bytes(data)
    with open(tmp_path / "in.pcap", "rb") as f:
        alone = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=f, stdout=subprocess.PIPE,
                                 env=env_with_repo())
        seen = set()
        while alone.poll() is None:
            seen.update((c, cmdline(c)) for c in children(alone.pid) if _leads_a_session(c))
            time.sleep(0.01)
        out, _ = alone.communicate(timeout=60)
    assert alone.returncode == 0 and len(json.loads(out)["connections"]) == 7
    command = b"\0".join(a.encode() for a in alone.args)
    assert not any(c == command for _pid, c in seen), seen  # no command apart from it


def test_tcpview_apart_0_keeps_the_command_in_the_callers_session():
    view = subprocess.Popen(tcpview_cmd("summary", "-", "--json"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(env_with_repo(), TCPVIEW_APART="0"))
    try:
        view.stdin.write(_capture(2)[:24])
        view.stdin.flush()
        assert wait_until(lambda: relays(view.pid), 20)
        assert not any(_leads_a_session(c) for c in children(view.pid))  # the command runs here
        out, err = view.communicate(_capture(2)[24:], timeout=60)
        assert view.returncode == 0 and len(json.loads(out)["connections"]) == 2, err
    finally:
        reap(view)


@pytest.mark.parametrize(("signals", "status"), [((signal.SIGINT,), 0), ((signal.SIGINT, signal.SIGINT), 130),
                                                 ((signal.SIGTERM,), -signal.SIGTERM)])
def test_what_the_terminal_sends_the_keeper_reaches_the_command(signals, status):
    """Ctrl-C (SIGINT to the shell's foreground job: the keeper, not the command in its own
    session) reaches the command: a first one ends the stream there (the command answers with
    what came, exit 0, its stdin still open), a second one stops it at once (exit 130); a
    signal the command dies of, the keeper dies of too, so the shell says the same."""
    view = _start("summary", "-")
    try:
        view.stdin.write(_capture(3))
        view.stdin.flush()
        command = _command_of(view.pid)
        time.sleep(1)  # (past its imports: the handlers it runs with are set)
        for sig in signals:
            view.send_signal(sig)
            time.sleep(0.05)
        view.wait(timeout=30)
        assert view.returncode == status
        assert wait_until(lambda: not _alive(command), 10)
        if status == 0:
            assert b"3 connections" in view.stdout.read()  # all that came before the Ctrl-C
    finally:
        reap(view)


def test_a_command_whose_keeper_is_killed_ends():
    view = _start("summary", "-")
    try:
        view.stdin.write(_capture(3)[:24])
        view.stdin.flush()
        command = _command_of(view.pid)
        view.kill()
        view.wait()
        assert wait_until(lambda: not _alive(command), 20)
    finally:
        reap(view)


def _shell_in_a_terminal(argv: list[str], stream: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """``argv`` started as a shell starts a pipeline's last command in a terminal: a pty its
    session's terminal, a shell (the session's leader) waiting for it, the pipe ``stream``'s
    reading end its stdin. Returns the shell's process id and the pty's other side."""
    import pty

    stream_r, stream_w = stream
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.close(stream_w)  # (the producer's end is the test's alone: its close ends the stream)
            fcntl_winsize(0, size)
            child = os.fork()
            if child == 0:
                os.dup2(stream_r, 0)
                os.close(stream_r)
                env = {k: v for k, v in env_with_repo().items() if k != "TEXTUAL_DRIVER"}
                env.update(TERM="xterm-256color")
                env.pop("COLUMNS", None)
                env.pop("LINES", None)
                os.execve(sys.executable, argv, env)
            _, status = os.waitpid(child, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        finally:
            os._exit(99)
    return pid, fd


def fcntl_winsize(fd: int, size: tuple[int, int]) -> None:
    import fcntl

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))


def test_the_viewer_apart_keeps_its_keyboard_and_follows_a_resize():
    stream_r, stream_w = os.pipe()
    shell, fd = _shell_in_a_terminal(tcpview_cmd("replay", "-"), (stream_r, stream_w), (100, 30))
    os.close(stream_r)
    screen = bytearray()

    def read_screen() -> bool:
        read_pty(fd, screen)
        return False

    def widest_rule() -> int:
        """The longest run of a box's edge drawn since the table's title was last drawn."""
        last = screen.decode(errors="replace").rsplit("Connections", 1)[-1]
        return max((len(run) for run in re.findall("─+", last)), default=0)

    try:
        os.write(stream_w, _capture(20))
        assert wait_until(lambda: read_screen() or b"Connections" in screen, 60)
        keeper = children(shell)[0]
        command = _command_of(keeper)
        assert os.getsid(command) == command != os.getsid(shell)
        assert wait_until(lambda: read_screen() or widest_rule() > 60, 20)
        assert widest_rule() <= 100
        fcntl_winsize(fd, (60, 20))  # the terminal sends SIGWINCH to its foreground job: the keeper
        assert wait_until(lambda: read_screen() or (b"Connections" in screen and 0 < widest_rule() <= 60), 20), \
            widest_rule()
        # the thread that reads and analyses the stream in the idle class, the viewer's own not
        assert wait_until(lambda: os.SCHED_IDLE in policies(command), 20)
        assert os.sched_getscheduler(command) != os.SCHED_IDLE
        os.close(stream_w)
        stream_w = -1
        assert wait_until(lambda: read_screen() or b"ENDED" in screen, 20)
        os.write(fd, b"q")
        ended: list[int] = []

        def shell_ended() -> bool:
            read_screen()
            pid, status = os.waitpid(shell, os.WNOHANG)
            if pid:
                ended.append(os.waitstatus_to_exitcode(status))
            return bool(pid)

        assert wait_until(shell_ended, 30)
        assert ended == [0] and not _alive(command)
    finally:
        if stream_w >= 0:
            os.close(stream_w)
        kill_child(shell)
        os.close(fd)


@pytest.mark.parametrize("job_control", [True, False])
def test_ctrl_z_stops_the_command_where_it_stops_its_keeper(job_control):
    """Ctrl-Z (SIGTSTP to the foreground job): under a shell with job control the keeper stops,
    and the command with it, until ``fg``; where the kernel stops no job (a shell without job
    control: its process group is orphaned) neither stops, as a command started there would not."""
    data = _capture(4)
    argv = tcpview_cmd("summary", "-", "--json")
    if job_control:  # a process group of its own, whose parent is in the same session
        view = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env_with_repo(), process_group=0)
        keeper = view.pid
    else:  # the keeper under a shell that leads a session of its own, as `bash -c` under tmux
        view = subprocess.Popen(["setsid", "sh", "-c", '"$@"; exit $?', "sh", *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_with_repo())
        assert wait_until(lambda: children(view.pid), 20)
        keeper = children(view.pid)[0]
    try:
        view.stdin.write(data[:24])
        view.stdin.flush()
        command = _command_of(keeper)
        time.sleep(1)  # (its handlers set)
        os.kill(keeper, signal.SIGTSTP)
        if job_control:
            assert wait_until(lambda: _state(keeper) == "T" and _state(command) == "T", 10)
            os.kill(keeper, signal.SIGCONT)  # fg
        assert wait_until(lambda: _state(keeper) != "T" and _state(command) != "T", 10)
        out, err = view.communicate(data[24:], timeout=60)
        assert view.returncode == 0, err
        assert len(json.loads(out)["connections"]) == 4
    finally:
        reap(view)
