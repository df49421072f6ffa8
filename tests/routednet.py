"""A client and a server network namespace joined through a router namespace, for the tests
that need traffic through a router (drops, rate limits) captured at the ends.

    client (TAGa, NET.1.2) --veth-- router (TAGr, NET.1.1 | NET.2.1) --veth-- server (TAGb, NET.2.2)

The client's interface is ``TAG1h``, the server's ``TAG2h``; the router's sides ``TAG1r``
and ``TAG2r``. Everything made is removed when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextlib.contextmanager
def routed(tag: str, net: str, offloads: tuple[str, ...] = ("tso", "gso", "gro"),
           need_ethtool: bool = False) -> Iterator[tuple[str, str, str]]:
    """The three namespaces ``(client, router, server)``, forwarding.

    Args:
        tag: a prefix of the namespaces' and interfaces' names (short: interface names are 15).
        net: the first two bytes of the addresses, e.g. ``"10.201"``.
        offloads: turned off on every veth (with ethtool), so segments are as on a wire.
        need_ethtool: fail when ethtool cannot turn them off (else go on without).
    """
    a, r, b = f"{tag}a", f"{tag}r", f"{tag}b"
    try:
        for ns in (a, r, b):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        for side, ns in ((1, a), (2, b)):
            here, there = f"{tag}{side}h", f"{tag}{side}r"
            _run("ip", "link", "add", here, "netns", ns, "type", "veth", "peer", "name", there, "netns", r)
            _run("ip", "-n", ns, "addr", "add", f"{net}.{side}.2/24", "dev", here)
            _run("ip", "-n", r, "addr", "add", f"{net}.{side}.1/24", "dev", there)
            for n, dev in ((ns, here), (r, there)):
                _run("ip", "-n", n, "link", "set", dev, "up")
                if need_ethtool or shutil.which("ethtool"):
                    off = [w for o in offloads for w in (o, "off")]
                    subprocess.run(["ip", "netns", "exec", n, "ethtool", "-K", dev, *off], capture_output=True,
                                   check=need_ethtool)
            _run("ip", "-n", ns, "route", "add", "default", "via", f"{net}.{side}.1")
        _run("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield a, r, b
    finally:
        for ns in (a, r, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
