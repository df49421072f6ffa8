"""A throw-away sshd for the remote-capture tests: its own host key, client key, config and
port, listening on one address (in a network namespace when asked), root login by key only."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from helpers import stop_process, wait_until

SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)


def base_config(port: int, address: str, root: Path, host_key: Path) -> str:
    """An sshd configuration of a test's own: its port, address and host key, its files in
    ``root``, public keys only (what a test adds goes after it)."""
    return f"""\
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile {root / "sshd.pid"}
AuthorizedKeysFile {root / "authorized_keys"}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
"""


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class RootSshd:
    """An sshd accepting root by the key it makes (``key``; or the one given); ``netns``: run it
    in that network namespace, listening on ``address`` there."""

    def __init__(self, root: Path, address: str = "127.0.0.1", netns: str | None = None,
                 key: Path | None = None) -> None:
        assert SSHD is not None
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.address, self.netns = root, address, netns
        self.port = free_port() if netns is None else 2222
        self.key = key or root / "client_ed25519"
        host_key = root / "host_ed25519"
        for made in (host_key, self.key) if key is None else (host_key,):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(made)], check=True)
        (root / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        config = root / "sshd_config"
        config.write_text(base_config(self.port, address, root, host_key))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.log = open(root / "sshd.log", "w")
        self.proc = subprocess.Popen([*prefix, SSHD, "-D", "-e", "-f", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if not wait_until(self.listening, 10, 0.05):
            raise AssertionError("sshd did not start listening: " + self.logs())

    def listening(self) -> bool:
        """Whether the server accepts connections yet (it must still be running)."""
        assert self.proc.poll() is None, self.logs()
        try:
            socket.create_connection((self.address, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def options(self) -> list[str]:
        """tcpview's ``--ssh-option`` words for this server's key (its port goes in the spec:
        :meth:`spec`)."""
        out: list[str] = []
        for opt in (f"IdentityFile={self.key}", "IdentitiesOnly=yes",
                    "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"):
            out += ["--ssh-option", opt]
        return out

    def spec(self, iface: str = "lo") -> str:
        """The ``--remote`` value for capturing on ``iface`` here."""
        return f"ssh://root@{self.address}:{self.port}/{iface}"

    def sessions(self) -> list[int]:
        """The pids of the server's session processes (its children and theirs)."""
        kids: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
        out, todo = [], list(kids.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(kids.get(pid, []))
        return out

    def kill_sessions(self) -> int:
        """Kill every session of the server (the host "drops out"); how many processes."""
        pids = self.sessions()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def logs(self) -> str:
        """What sshd has logged so far."""
        self.log.flush()
        return (self.root / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server and its sessions."""
        self.kill_sessions()
        stop_process(self.proc)
        self.log.close()
