"""The sockets of the tests on real traffic: TCP scenarios on 127.0.0.1 and what ``ss`` says of them.

:class:`Lo` takes its ports from the kernel (bind to port 0), so tests running in parallel never
share a port, and the ``lo_traffic`` fixture (conftest.py) closes every socket it made.
:func:`ss_rows` and :func:`ss_state` read the kernel's socket table as ``ss`` lists it.
livehelp.py imports these names again, so tests can import them from either module.
"""

from __future__ import annotations

import socket
import struct
import subprocess

SS_STATES = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED", "FIN-WAIT-1": "FIN_WAIT_1",
    "FIN-WAIT-2": "FIN_WAIT_2", "TIME-WAIT": "TIME_WAIT", "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING", "LISTEN": "LISTEN", "UNCONN": "CLOSED",
}


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(port) if port.isdigit() else 0


def ss_rows() -> list[tuple[str, tuple[str, int], tuple[str, int]]]:
    """Every TCP socket as ``ss -tan state all`` lists it: (state, local, peer)."""
    out = subprocess.run(["ss", "-tanH", "state", "all"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5:
            rows.append((SS_STATES.get(f[0], f[0]), _addr(f[3]), _addr(f[4])))
    return rows


def ss_state(rows, local: tuple[str, int], peer: tuple[str, int]) -> str:
    """The state ss shows for the socket local->peer ("CLOSED" when there is none)."""
    for st, lo, pe in rows:
        if lo == local and pe == peer:
            return st
    return "CLOSED"


class Lo:
    """TCP scenarios on 127.0.0.1 with ports chosen by the kernel; :meth:`close` cleans up.

    Create the listeners first (their ports go into the capture filter), then run the
    scenarios while a capture is running.
    """

    def __init__(self) -> None:
        self.keep: list[socket.socket] = []
        self.ports: dict[str, int] = {}

    def listener(self, name: str) -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        self.keep.append(s)
        self.ports[name] = s.getsockname()[1]
        self._listeners = getattr(self, "_listeners", {})
        self._listeners[name] = s
        return self.ports[name]

    def reserve(self, name: str) -> int:
        """A port with a bound socket that does not listen: connecting to it is refused."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.keep.append(s)
        self.ports[name] = s.getsockname()[1]
        return self.ports[name]

    def bpf(self) -> str:
        return " or ".join(f"tcp port {p}" for p in self.ports.values())

    def pair(self, name: str) -> tuple[socket.socket, socket.socket]:
        cli = socket.create_connection(("127.0.0.1", self.ports[name]), timeout=5)
        srv, _ = self._listeners[name].accept()
        srv.settimeout(5)
        self.keep += [cli, srv]
        return cli, srv

    @staticmethod
    def read_to_eof(s: socket.socket) -> bytes:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data

    # -- scenarios: each returns (client address, server address) ---------------------------------
    def time_wait(self, name: str = "time_wait"):
        """Data both ways, the client closes first: client TIME_WAIT, server gone (CLOSED)."""
        cli, srv = self.pair(name)
        ends = cli.getsockname(), srv.getsockname()
        cli.sendall(b"ping")
        assert srv.recv(16) == b"ping"
        srv.sendall(b"pong")
        assert cli.recv(16) == b"pong"
        cli.close()
        assert self.read_to_eof(srv) == b""
        srv.close()
        return ends

    def close_wait(self, name: str = "close_wait"):
        """The client closes, the server never does: FIN_WAIT_2 / CLOSE_WAIT."""
        cli, srv = self.pair(name)
        ends = cli.getsockname(), srv.getsockname()
        cli.sendall(b"hello")
        assert srv.recv(16) == b"hello"
        cli.close()
        return ends

    def refused(self, name: str = "refused"):
        """A SYN to a port nobody listens on, answered by RST: both CLOSED, no socket left."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ends = s.getsockname(), ("127.0.0.1", self.ports[name])
        try:
            s.connect(ends[1])
            raise AssertionError("connect to a port without a listener succeeded")
        except ConnectionRefusedError:
            pass
        finally:
            s.close()
        return ends

    def established(self, name: str = "established"):
        """Left open with data exchanged: both ESTABLISHED."""
        cli, srv = self.pair(name)
        cli.sendall(b"still here")
        assert srv.recv(32) == b"still here"
        return cli.getsockname(), srv.getsockname()

    def server_first(self, name: str = "server_first"):
        """The server closes first: server TIME_WAIT, client gone."""
        cli, srv = self.pair(name)
        ends = cli.getsockname(), srv.getsockname()
        srv.sendall(b"banner")
        assert cli.recv(16) == b"banner"
        srv.close()
        assert self.read_to_eof(cli) == b""
        cli.close()
        return ends

    def abort(self, name: str = "abort"):
        """The client aborts (SO_LINGER 0): RST, both CLOSED."""
        cli, srv = self.pair(name)
        ends = cli.getsockname(), srv.getsockname()
        cli.sendall(b"x" * 100)
        assert len(srv.recv(1000)) == 100
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cli.close()
        try:
            srv.recv(10)
        except ConnectionResetError:
            pass
        srv.close()
        return ends

    def close(self) -> None:
        for s in self.keep:
            try:
                s.close()
            except OSError:
                pass
        self.keep.clear()
