"""Several captures read as one: two vantage points of the same traffic joined, against one
capture alone, in the same run; and a ring's files, against the one file they were cut from.

The captures are real: a client and a server network namespace joined through a router
namespace, bulk TCP both ways, tcpdump on both ends at once (tests/vantagenet.py; needs root,
about 20 s for a million packets a side). Each figure is ``tcpview summary --json`` run as
its own process (the best of ``--runs``), with its peak resident memory (``wait4``):

- ``one``: the client's capture alone;
- ``both, joined``: the client's and the server's, joined (each file's segments decoded, the
  copies paired, then read merged without the receiver's copies: see
  tcpview/engine/analysis/vantage.py);
- ``both, --no-join``: merged by time only, as mergecap would;
- ``ring of N``: the client's capture cut into N files (editcap -c), read as one, against
  the whole: the merge holds one batch per file, so memory does not grow with N.

The target: both, joined, in at most 2.5x one capture's time.

Usage::

    sudo python benchmarks/merge_bench.py [--dir /tmp/tcpview-bench/vantages] [--packets 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

DEFAULT_DIR = Path(tempfile.gettempdir()) / "tcpview-bench" / "vantages"
TARGET = 2.5
"""Both vantage points joined, against one capture alone."""


def make(folder: Path, packets: int) -> None:
    """Capture about ``packets`` packets a side of bulk TCP at two vantage points."""
    import vantagenet

    why = vantagenet.missing()
    if why:
        sys.exit(f"cannot make the captures: {why}")
    folder.mkdir(parents=True, exist_ok=True)
    # about 1.5 packets (data and ACKs) for each 1448 bytes of data
    total = int(packets / 1.5 * 1448)
    t = vantagenet.capture(folder, connections=8, every=100000, up=total // 6 // 8, down=total * 5 // 6 // 8,
                           tcpdump_opts=["-U", "--immediate-mode", "-n", "-s", "96", "-B", "262144"])
    print(f"captured at two vantage points: {t.client} and {t.server}; the router dropped {t.dropped}")


def run(args: list[str]) -> tuple[float, int]:
    """Seconds and peak resident bytes of ``tcpview ARGS`` (its output thrown away)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen([sys.executable, "-m", "tcpview", *args], stdout=null, stderr=subprocess.PIPE, env=env)
        assert p.stderr is not None
        err = p.stderr.read()
        _pid, status, usage = os.wait4(p.pid, 0)
    took = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"tcpview {' '.join(args)} failed: {err.decode(errors='replace').strip()}")
    return took, usage.ru_maxrss * 1024


def best(args: list[str], runs: int) -> tuple[float, int]:
    """The fastest of ``runs`` runs, and the largest peak memory seen."""
    got = [run(args) for _ in range(runs)]
    return min(t for t, _m in got), max(m for _t, m in got)


def packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets a side, when the captures are made")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    client, server = a.dir / "client.pcap", a.dir / "server.pcap"
    if not (client.exists() and server.exists()):
        make(a.dir, a.packets)
    shifted = a.dir / "server-shifted.pcap"
    if not shifted.exists():  # another clock: 1.25 s behind
        subprocess.run(["editcap", "-F", "pcap", "-t", "-1.25", str(server), str(shifted)], check=True)
    n1, n2 = packets(client), packets(server)
    print(f"client side {n1:,} packets, server side {n2:,} packets; best of {a.runs}; summary --json\n")
    run(["summary", "--json", str(client)])  # compiled kernels loaded once before timing
    rows = [("one (client side)", best(["summary", "--json", str(client)], a.runs))]
    rows.append(("both, joined", best(["summary", "--json", str(client), str(shifted)], a.runs)))
    rows.append(("both, --no-join", best(["summary", "--json", "--no-join", str(client), str(shifted)], a.runs)))
    for n in (10, 100):
        ring = a.dir / f"ring{n}"
        if not ring.exists():
            ring.mkdir()
            subprocess.run(["editcap", "-F", "pcap", "-c", str(-(-n1 // n)), str(client), str(ring / "part.pcap")],
                           check=True, capture_output=True)
        files = sorted(str(p) for p in ring.iterdir())
        rows.append((f"ring of {len(files)} files", best(["summary", "--json", *files], a.runs)))
    one = rows[0][1][0]
    print(f"{'':24} {'seconds':>8} {'x one':>6} {'peak MB':>8}")
    for name, (t, mem) in rows:
        print(f"{name:24} {t:8.2f} {t / one:6.2f} {mem / 1e6:8.0f}")
    joined = rows[1][1][0] / one
    print(f"\nboth joined in {joined:.2f}x one capture's time: target <= {TARGET}x "
          f"{'met' if joined <= TARGET else 'missed'}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
