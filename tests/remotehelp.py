"""Two "hosts" for the remote-capture tests: this one (an sshd on 127.0.0.1) and a network
namespace joined to it by a veth pair, with an sshd of its own on its side of the veth and its
own loopback, where a helper process makes TCP traffic on given ports.

Everything made (the namespace, which takes its veth end along; the sshds; the helper) is
removed by :meth:`TwoHosts.close`, which the fixture calls on every way out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO
from sshhelp import RootSshd

NS_TRAFFIC = r'''
import socket, sys
sys.path.insert(0, sys.argv[1])
from losockets import Lo
t = Lo()
t._listeners = {}
for name, port in zip(("time_wait", "server_first", "established"), map(int, sys.argv[2:])):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    t.keep.append(s)
    t.ports[name], t._listeners[name] = port, s
for line in sys.stdin:  # one scenario per line asked for, its ends said back
    (cli, srv) = getattr(t, line.strip())()
    print(cli[1], srv[1], flush=True)
t.close()
'''
"""Listens on the given ports in the namespace, then runs the scenarios asked for on stdin."""


class TwoHosts:
    """Host A: an sshd here on 127.0.0.1. Host B: namespace ``ns`` with an sshd on its veth
    address and traffic (:meth:`b_run`) on its loopback. One client key for both."""

    def __init__(self, root: Path) -> None:
        self.ns = f"tcpvr{os.getpid()}"
        n = os.getpid() % 200 + 20
        self.here, self.there = f"10.213.{n}.1", f"10.213.{n}.2"
        self.veth = f"tvr{os.getpid() % 100000}"
        self.a: RootSshd | None = None
        self.b: RootSshd | None = None
        self.helper: subprocess.Popen | None = None
        try:
            self._net()
            self.a = RootSshd(root / "a")
            self.b = RootSshd(root / "b", address=self.there, netns=self.ns, key=self.a.key)
        except BaseException:
            self.close()
            raise

    def _net(self) -> None:
        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True)

        ip("netns", "add", self.ns)
        ip("link", "add", self.veth + "a", "type", "veth", "peer", "name", self.veth + "b")
        ip("link", "set", self.veth + "b", "netns", self.ns)
        ip("addr", "add", f"{self.here}/30", "dev", self.veth + "a")
        ip("link", "set", self.veth + "a", "up")
        ip("-n", self.ns, "addr", "add", f"{self.there}/30", "dev", self.veth + "b")
        ip("-n", self.ns, "link", "set", self.veth + "b", "up")
        ip("-n", self.ns, "link", "set", "lo", "up")

    def options(self) -> list[str]:
        """``--ssh-option`` words for both hosts."""
        assert self.a is not None
        return self.a.options()

    def specs(self) -> list[str]:
        """``--remote`` words for both hosts' loopback."""
        assert self.a is not None and self.b is not None
        return ["--remote", self.a.spec("lo"), "--remote", self.b.spec("lo")]

    def b_listen(self, ports: list[int]) -> None:
        """Start host B's traffic helper, listening on ``ports`` (time_wait, server_first,
        established)."""
        self.helper = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c", NS_TRAFFIC,
                                        str(REPO / "tests"), *map(str, ports)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def b_run(self, scenario: str) -> tuple[int, int]:
        """Run one scenario on host B's loopback; its client and server ports."""
        assert self.helper is not None and self.helper.stdin is not None and self.helper.stdout is not None
        self.helper.stdin.write(scenario + "\n")
        self.helper.stdin.flush()
        cport, sport = self.helper.stdout.readline().split()
        return int(cport), int(sport)

    def ns_exec(self, *argv: str) -> list[str]:
        """``argv`` run in host B's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def close(self) -> None:
        """Remove everything made (idempotent)."""
        if self.helper is not None:
            self.helper.kill()
            self.helper.wait()
            self.helper = None
        for sshd in (self.b, self.a):
            if sshd is not None:
                sshd.stop()
        self.a = self.b = None
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.veth + "a"], capture_output=True, check=False)
