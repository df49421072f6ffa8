"""``tcpview serve``: the app in a web browser, through textual-serve.

Each browser tab that opens the page starts its own ``tcpview ARGS`` process (default
``tcpview demo``) whose terminal is drawn in the page over a websocket. The server binds
127.0.0.1 unless told otherwise: anyone who can reach it can use the app (and, for ``live``,
see the host's traffic), and textual-serve has no authentication.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import socket
import sys
from collections.abc import Sequence

from ..errors import os_problem
from .errors import UsageError

DEFAULT_ARGS = ("demo",)
"""What is served when no arguments follow ``--``."""

# commands that print and exit (nothing to show in a browser), and serve itself
_NOT_APPS = frozenset({"summary", "ladder", "export", "simulate", "serve"})


def add_serve(sub) -> None:
    """``tcpview serve``."""
    p = sub.add_parser(
        "serve",
        help="serve the app to a web browser (textual-serve)",
        description="Serve tcpview in a web browser. Every page load runs `tcpview ARGS` "
        "(default: demo). Example: tcpview serve --port 8000 -- replay capture.pcap",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else is reachable by others)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--public-url", metavar="URL",
                   help="the URL browsers use to reach the server (default http://HOST:PORT)")
    p.add_argument("app_args", nargs="*", metavar="-- ARGS",
                   help="the tcpview command line to serve, after -- (default: demo)")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {port}")
    return port


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_command(app_args: Sequence[str]) -> str:
    """The shell command textual-serve runs for each browser session (it uses a shell)."""
    return shlex.join([sys.executable, "-m", "tcpview", *app_args])


def check_app_args(app_args: Sequence[str], parser: argparse.ArgumentParser) -> None:
    """Parse the served command line now, so a mistake fails here rather than in every tab.

    Raises:
        UsageError: The arguments are not a tcpview command line that runs the app.
    """
    if not app_args:
        raise UsageError("nothing to serve")
    if app_args[0] in _NOT_APPS:
        raise UsageError(f"`tcpview {app_args[0]}` does not run the app; serve demo, replay, live or sockets")
    try:
        parser.parse_args(list(app_args))
    except UsageError as e:
        raise UsageError(f"served command `tcpview {shlex.join(app_args)}`: {e}") from None
    except SystemExit:  # --help or --version among the served arguments
        raise UsageError(f"served command `tcpview {shlex.join(app_args)}` does not run the app") from None


def _public_url(host: str, port: int) -> str:
    """What the page tells the browser to connect back to (static files and the websocket)."""
    shown = host
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addr = None
    if addr is not None and addr.is_unspecified:
        # 0.0.0.0 / :: is where the server listens, not an address a browser can open
        shown = socket.gethostname()
    elif addr is not None and addr.version == 6:
        shown = f"[{addr}]"
    return f"http://{shown}:{port}"


def cmd_serve(args: argparse.Namespace) -> int:
    """``tcpview serve``: run a textual-serve server until Ctrl+C / SIGTERM."""
    from textual_serve.server import Server

    app_args = list(args.app_args) or list(DEFAULT_ARGS)
    check_app_args(app_args, args.parser)
    host = args.host
    try:
        # fail now, with one line, rather than inside aiohttp's startup
        infos = socket.getaddrinfo(host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        fam, _t, _p, _c, sockaddr = infos[0]
        with socket.socket(fam, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except socket.gaierror as e:
        raise UsageError(os_problem(f"cannot listen on {host}", e)) from None
    except OSError as e:
        raise UsageError(os_problem(f"cannot listen on {host}:{args.port}", e)) from None
    if not is_loopback(host):
        print(f"tcpview: warning: serving on {host}:{args.port}: anyone who can reach it can use "
              "the app (there is no authentication)", file=sys.stderr)
    public_url = args.public_url or _public_url(host, args.port)
    server = Server(served_command(app_args), host=host, port=args.port,
                    title="tcpview " + shlex.join(app_args), public_url=public_url)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0
