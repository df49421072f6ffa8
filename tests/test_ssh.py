"""The demo over a real SSH session: a private sshd on 127.0.0.1 configured as the demo-account
recipe in docs/ssh-demo.md (a forced command, no shell, no forwarding), a real ssh client with
a pseudo-terminal inside tmux at 80x24, TERM=xterm-256color, and no mouse.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, stop_process, wait_until
from sshhelp import SSHD, base_config, free_port

pytestmark = pytest.mark.skipif(SSHD is None, reason="OpenSSH server (sshd) is not installed")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is needed for the SSH test (install openssh-client and tmux)")
    return path


class Sshd:
    """A throw-away sshd: its own host key, authorized key, config and port."""

    def __init__(self, root: Path, force_command: str) -> None:
        self.root = root
        self.port = free_port()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run([_need("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        self.user = user
        self.config = root / "sshd_config"
        # The demo-account recipe of docs/ssh-demo.md, for the user running the test.
        self.config.write_text(base_config(self.port, "127.0.0.1", root, self.host_key) + f"""\
Subsystem sftp internal-sftp

Match User {user}
    ForceCommand {force_command}
    PermitTTY yes
    DisableForwarding yes
    PermitTunnel no
    PermitUserRC no
    MaxSessions 1
""")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        check = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True, check=False)  # type: ignore[list-item]
        assert check.returncode == 0, check.stderr
        self.log = open(root / "sshd.log", "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],  # type: ignore[list-item]
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(self.listening, 10, 0.05):
            raise AssertionError("sshd did not start listening: " + self.logs())

    def listening(self) -> bool:
        """Whether the server accepts connections yet (it must still be running)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            assert self.proc.poll() is None, self.logs()
            return False

    def ssh_argv(self, *extra: str) -> list[str]:
        """An ssh command line for this server (no agent, no known_hosts, no user config)."""
        return [_need("ssh"), "-F", "/dev/null", "-p", str(self.port), "-i", str(self.client_key),
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                *extra, f"{self.user}@127.0.0.1"]

    def logs(self) -> str:
        """What sshd has logged so far."""
        self.log.flush()
        return (self.root / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server."""
        stop_process(self.proc)
        self.log.close()


@pytest.fixture
def sshd(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An sshd whose forced command is the demo, from this source tree."""
    # The forced command the docs recommend (`tcpview demo`), here run from the source tree
    # with this interpreter; --seed makes the screen the same on every run.
    force = f"cd {shlex.quote(str(REPO))} && exec {shlex.quote(sys.executable)} -m tcpview demo --seed 7"
    server = Sshd(tmp_path, force)
    yield server
    server.stop()


# Runs "$@" and writes its exit status to the file $1 names (whole: written beside, then
# renamed). tmux 3.3a does not always record a dead pane's status (#{pane_dead_status} can stay
# empty), so the pane's command records its own.
_RECORD_STATUS = 'status=$1; shift; "$@"; echo $? > "$status.part"; mv "$status.part" "$status"'


class Tmux:
    """A private tmux server (its own socket, no user config) holding one 80x24 window.

    The window runs ``command``; :meth:`exit_status` says how it ended, once it has.
    """

    def __init__(self, root: Path, command: list[str], cols: int = 80, rows: int = 24) -> None:
        self.tmux = _need("tmux")
        self.sock = str(root / "tmux.sock")
        self.status_file = root / "pane.status"
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("TMUX", None)
        wrapped = ["sh", "-c", _RECORD_STATUS, "sh", str(self.status_file), *command]
        subprocess.run([self.tmux, "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                        "-x", str(cols), "-y", str(rows), shlex.join(wrapped)], check=True, env=env)
        self.run("set-option", "-t", "t", "remain-on-exit", "on")

    def exit_status(self) -> str | None:
        """The exit status of the window's command (``"0"``), or None while it runs."""
        try:
            return self.status_file.read_text().strip()
        except FileNotFoundError:
            return None

    def run(self, *args: str) -> str:
        """A tmux command; returns its output."""
        return subprocess.run([self.tmux, "-S", self.sock, *args], check=True, capture_output=True,
                              text=True).stdout

    def screen(self) -> str:
        """The visible text of the pane."""
        return self.run("capture-pane", "-p", "-t", "t")

    def pane(self, fmt: str) -> str:
        """A pane format variable, e.g. ``#{pane_dead}``."""
        return self.run("display-message", "-p", "-t", "t", fmt).strip()

    def showing(self, ok) -> str | None:  # type: ignore[no-untyped-def]
        """The screen if ``ok(screen)``, or if the pane has died (nothing more will come), else
        None: a predicate for :func:`wait_until`, which then returns the screen."""
        text = self.screen()
        return text if ok(text) or self.pane("#{pane_dead}") == "1" else None

    def kill(self) -> None:
        """Stop the tmux server."""
        subprocess.run([self.tmux, "-S", self.sock, "kill-server"], capture_output=True, check=False)


def test_demo_over_ssh_at_80x24(sshd: Sshd, tmp_path: Path) -> None:
    # The user asks for a shell command; the forced command runs the demo regardless.
    argv = sshd.ssh_argv("-tt") + ["echo", "a-shell-command"]
    tmux = Tmux(tmp_path, ["env", "TERM=xterm-256color", *argv])
    try:
        words = ("TIME_WAIT", "CLOSE_WAIT", "ESTABLISHED", "Connections")

        def ready(s: str) -> bool:
            return all(w in s for w in words) and ("▶" in s or "◀" in s) and "SYN" in s

        screen = wait_until(lambda: tmux.showing(ready), 20, 0.25) or tmux.screen()
        assert ready(screen), f"screen:\n{screen}\nsshd log:\n{sshd.logs()}"
        assert "a-shell-command" not in screen
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        # the counters line carries numbers, the ladder an arrow with flags on it
        counters = next(line for line in lines if "TIME_WAIT" in line and "CLOSE_WAIT" in line)
        assert any(ch.isdigit() for ch in counters)
        assert any(("─▶" in line or "◀─" in line) and ("SYN" in line or "ACK" in line) for line in lines)
        # keyboard only (no mouse): pause, step, open help, close it, quit
        assert "LIVE" in screen
        tmux.run("send-keys", "-t", "t", "space")  # freeze the live view
        screen = wait_until(lambda: tmux.showing(lambda s: "LIVE" not in s.splitlines()[0]), 5, 0.25) \
            or tmux.screen()
        assert "LIVE" not in screen.splitlines()[0], screen
        tmux.run("send-keys", "-t", "t", "?")
        screen = wait_until(lambda: tmux.showing(lambda s: "Step one segment forward" in s), 5, 0.25) \
            or tmux.screen()
        assert "Step one segment forward" in screen and "─ Connections" not in screen, screen
        tmux.run("send-keys", "-t", "t", "Escape")
        screen = wait_until(lambda: tmux.showing(lambda s: "─ Connections" in s), 5, 0.25) \
            or tmux.screen()
        assert "─ Connections" in screen and "Step one segment forward" not in screen, screen
        tmux.run("send-keys", "-t", "t", "q")
        # ssh exits with the remote command's status: the demo quit cleanly
        status = wait_until(tmux.exit_status, 10, 0.2)
        assert status == "0", f"exit status {status!r}\n" + tmux.screen() + sshd.logs()
        # and the terminal was given back: the alternate screen is gone, no UI left on it
        screen = wait_until(lambda: tmux.showing(lambda s: "─ Connections" not in s), 5, 0.2) or tmux.screen()
        assert "─ Connections" not in screen, screen
    finally:
        tmux.kill()


def test_demo_account_has_no_shell_and_no_forwarding(sshd: Sshd) -> None:
    # A remote port forward is asked for when the session starts; the server refuses it and
    # ExitOnForwardFailure makes the client give up.
    r = subprocess.run(sshd.ssh_argv("-N", "-o", "ExitOnForwardFailure=yes", "-R", f"{free_port()}:127.0.0.1:22"),
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL, check=False)
    assert r.returncode != 0
    assert "forwarding failed" in r.stderr
    # Without a terminal the forced command still runs instead of the asked-for `id`, and the
    # demo, which needs a terminal, says so in one line and exits 2 (it does not draw into a
    # pipe for ever).
    r = subprocess.run(sshd.ssh_argv("-T") + ["id"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, check=False)
    assert "uid=" not in r.stdout
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().count("\n") == 0 and "needs a terminal" in r.stderr and "ssh -t" in r.stderr
