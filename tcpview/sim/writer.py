"""Writing a simulated scenario to a pcap file (scapy's PcapWriter, Ethernet link type)."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field

from scapy.utils import PcapWriter

from .engine import Engine
from .loop import EPOCH, SECOND
from .scenario import Scenario


@dataclass
class WriteResult:
    """What was written."""

    frames: int = 0
    connections: int = 0
    seconds: float = 0.0
    retransmitted: list[int] = field(default_factory=list)
    """Frame numbers the simulator sent as retransmissions."""
    truncated: bool = False
    """An endless scenario was cut at the given bound."""


def write_pcap(
    scenario: Scenario,
    path: str,
    seed: int | None = None,
    max_packets: int | None = None,
    max_seconds: float | None = None,
    force: bool = False,
) -> WriteResult:
    """Run ``scenario`` and write its frames to ``path`` (``-`` for standard output).

    The file is written beside its destination and renamed into place at the end, so an
    existing file is only ever replaced by a complete capture (and only with ``force``).

    Raises:
        IsADirectoryError: ``path`` is a directory.
        FileExistsError: ``path`` exists and ``force`` is false.
        OSError: the file cannot be written.
    """
    res = WriteResult()
    engine = Engine(scenario, seed)
    to_stdout = path == "-"
    if not to_stdout and os.path.isdir(path):
        raise IsADirectoryError(path)
    if not to_stdout and os.path.lexists(path) and not force:
        raise FileExistsError(path)
    tmp_name: str | None = None
    if to_stdout:
        fobj = sys.stdout.buffer
    else:
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp_name = tempfile.mkstemp(prefix=".tcpview-", suffix=".pcap.part", dir=d)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it private; a capture is an ordinary file
        fobj = os.fdopen(fd, "wb")
    try:
        w = PcapWriter(fobj, linktype=1, sync=False)
        w.write_header(None)  # write_packet() of raw bytes does not write it
        last = 0
        for f in engine.frames(max_packets, max_seconds):
            w.write_packet(f.data, sec=EPOCH + f.t_us // SECOND, usec=f.t_us % SECOND)
            res.frames += 1
            last = f.t_us
            if f.retransmission:
                res.retransmitted.append(f.frame)
        w.flush()
        if to_stdout:
            fobj.flush()
        else:
            fobj.close()
            if os.path.lexists(path) and not force:
                raise FileExistsError(path)
            assert tmp_name is not None  # a file: written beside it first
            os.replace(tmp_name, path)
            tmp_name = None
    finally:
        if tmp_name is not None:
            try:
                fobj.close()
            finally:
                os.unlink(tmp_name)
    res.connections = engine.nconns
    res.seconds = last / SECOND
    res.truncated = not engine.done
    return res
