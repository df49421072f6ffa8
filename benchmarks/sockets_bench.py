"""One refresh of ``tcpview sockets`` with many sockets, beside ``ss`` reading the same table.

The benchmark makes about ``--sockets`` TCP sockets on 127.0.0.1 (established pairs held open,
the rest TIME_WAIT left by connections it closed), then times, each the best of ``--repeat``
runs, in one process:

- ``ss -tanpi state all`` (the peer: sock_diag with tcp_info and the processes) to /dev/null;
- tcpview's table read the way it is now: a sock_diag dump with tcp_info, the processes
  holding the sockets (every process's open files, as ``ss -p``), the sockets built;
- the same from ``/proc/net/tcp`` text (what ``tcpview sockets`` read before, and still reads
  where netlink cannot be asked), with the processes;
- pyroute2's ``DiagSocket.get_sock_stats`` with tcp_info (the library considered for it);
- a whole refresh of the view's table (:meth:`KernelTable.refresh`: read, pair into
  connections, keep ids and the counters' history).

Run as root (the established pairs need file descriptors; the hard limit is raised to what the
system allows)::

    python benchmarks/sockets_bench.py                 # 30,000 sockets
    python benchmarks/sockets_bench.py --sockets 10000 --repeat 5

Every socket it made is closed at the end (TIME_WAIT ones end by themselves after 60 s).
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcpview.kernel.history import KernelTable
from tcpview.kernel.owners import socket_owners
from tcpview.kernel.procnet import read_sockets
from tcpview.kernel.snapshot import snapshot


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def make_sockets(n: int) -> tuple[list[socket.socket], int]:
    """About ``n`` sockets: as many established pairs as file descriptors allow (two sockets
    each), the rest in TIME_WAIT. Returns the sockets to close and the listener's port."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pairs = min(n // 2, (hard - 200) // 2)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    keep = [ls]
    for _ in range(pairs):
        c = socket.socket()
        c.connect(ls.getsockname())
        s, _ = ls.accept()
        keep += [c, s]
    for _ in range(max(0, n - 2 * pairs)):  # the client closes first: its end waits in TIME_WAIT
        c = socket.socket()
        c.connect(ls.getsockname())
        s, _ = ls.accept()
        c.close()
        s.close()
    return keep, ls.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t = time.perf_counter()
    keep, _port = make_sockets(args.sockets)
    try:
        print(f"made the sockets in {time.perf_counter() - t:.1f} s")
        snap = snapshot()
        print(f"table: {len(snap.sockets)} sockets ({snap.source}), "
              f"{sum(1 for s in snap.sockets if s.state_name == 'TIME_WAIT')} in TIME_WAIT")

        def ss() -> None:
            subprocess.run(["ss", "-tanpi", "state", "all"], stdout=subprocess.DEVNULL, check=True)

        def proc() -> None:
            socks = read_sockets()
            socket_owners([s.inode for s in socks if s.inode])

        def pyroute2_dump() -> None:
            from pyroute2 import DiagSocket

            with DiagSocket() as ds:
                ds.bind()
                for fam in (socket.AF_INET, socket.AF_INET6):
                    ds.get_sock_stats(family=fam, extensions=1 << 1)

        table = KernelTable()
        rows = [("ss -tanpi state all", ss), ("tcpview: sock_diag + tcp_info + processes", snapshot),
                ("tcpview: /proc/net/tcp + processes", proc), ("tcpview: a whole refresh of the view", table.refresh)]
        try:
            import pyroute2  # noqa: F401

            rows.insert(3, ("pyroute2 DiagSocket, tcp_info", pyroute2_dump))
        except ImportError:
            pass
        base = None
        for name, fn in rows:
            sec = _best(fn, args.repeat)
            base = base or sec
            print(f"{name:46} {sec * 1000:8.1f} ms   {sec / base:5.2f}x ss")
    finally:
        for s in keep:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
