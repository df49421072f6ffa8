"""A ring of capture files of real loopback traffic, for the cluster tests.

:func:`make_ring` runs TCP on 127.0.0.1 under tcpdump (the loopback scenarios of losockets.py,
many times, beside a connection that lives through the whole capture and a 4-tuple used
twice), cuts the capture into files of a few packets (``editcap -c``, as a capture ring holds
it: connections cross file boundaries) and merges them again (``mergecap``): the reference a
single process reads.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_until
from livehelp import TCPDUMP_OPTS, read_until, tcpdump_drops, wait_tcpdump_wrote
from losockets import Lo, ss_rows, ss_state


@dataclass
class Ring:
    """The ring's files in order, and their merge (one file)."""

    files: list[Path]
    merged: Path
    packets: int


def _reuse_listener(lo: Lo) -> socket.socket:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    lo.keep.append(ls)
    lo.ports["reuse"] = ls.getsockname()[1]
    return ls


def _reuse(lo: Lo, ls: socket.socket) -> None:
    """The same 4-tuple twice: the server closes first (its TIME_WAIT), the client connects
    again from the same port, and the new SYN takes the 4-tuple over: two connections."""
    c1 = socket.socket()
    c1.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c1.bind(("127.0.0.1", 0))
    cport = c1.getsockname()[1]
    c1.connect(("127.0.0.1", lo.ports["reuse"]))
    s1, _ = ls.accept()
    s1.close()
    c1.settimeout(5)
    assert Lo.read_to_eof(c1) == b""
    c1.close()
    mine, theirs = ("127.0.0.1", cport), ("127.0.0.1", lo.ports["reuse"])
    assert wait_until(lambda: (ss_state(rows := ss_rows(), mine, theirs), ss_state(rows, theirs, mine))
                      == ("CLOSED", "TIME_WAIT"))
    c2 = socket.socket()
    c2.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c2.bind(("127.0.0.1", cport))
    c2.settimeout(5)
    c2.connect(("127.0.0.1", lo.ports["reuse"]))
    s2, _ = ls.accept()
    c2.sendall(b"again")
    s2.settimeout(5)
    assert s2.recv(16) == b"again"
    lo.keep += [c2, s2]


def _traffic(lo: Lo, ls: socket.socket, rounds: int) -> None:
    long_cli, long_srv = lo.pair("long")  # lives through the whole capture: in every file
    for k in range(rounds):
        lo.time_wait()
        lo.close_wait()
        lo.refused()
        lo.server_first()
        lo.abort()
        if k % 4 == 0:
            lo.established()
        long_cli.sendall(b"tick %d" % k)
        assert long_srv.recv(64).startswith(b"tick")
    _reuse(lo, ls)


def make_ring(folder: Path, rounds: int = 12, per_file: int = 40, attempts: int = 3) -> Ring:
    """Capture the traffic into ``folder``, cut it into files of ``per_file`` packets and merge
    them again (needs root, tcpdump, editcap and mergecap)."""
    for _ in range(attempts):
        lo = Lo()
        whole = folder / "whole.pcap"
        for name in ("time_wait", "close_wait", "server_first", "abort", "established", "long"):
            lo.listener(name)
        reuse = _reuse_listener(lo)
        lo.reserve("refused")
        dump = subprocess.Popen(["tcpdump", "-i", "lo", *TCPDUMP_OPTS, "-w", str(whole), lo.bpf()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wrote = False
        try:
            read_until(dump.stderr, "listening on", 20)
            _traffic(lo, reuse, rounds)
            try:
                wait_tcpdump_wrote(dump)
                wrote = True
            except AssertionError:  # its counts never agreed (a busy lo under other captures): again
                pass
        finally:
            dump.terminate()
            stats = dump.communicate(timeout=10)[1].decode()
            lo.close()
        if wrote and tcpdump_drops(stats) == 0:
            break
    else:
        raise RuntimeError(f"tcpdump did not write every packet in {attempts} attempts: {stats.strip()}")
    ring = folder / "ring.pcap"
    subprocess.run(["editcap", "-F", "pcap", "-c", str(per_file), str(whole), str(ring)], check=True,
                   capture_output=True)
    files = sorted(folder.glob("ring_*.pcap"))
    merged = folder / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), *map(str, files)], check=True, capture_output=True)
    whole.unlink()
    out = subprocess.run(["capinfos", "-c", "-M", str(merged)], capture_output=True, text=True, check=True).stdout
    packets = int(out.split("Number of packets:")[1].split()[0])
    return Ring(files, merged, packets)
