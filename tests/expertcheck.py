"""tcpview's per-segment analysis beside tshark's, frame by frame.

tshark is the oracle: its expert messages name the flags (``tcp.analysis.*``), and its
``tcp.analysis.ack_rtt`` and ``tcp.analysis.bytes_in_flight`` fields the numbers. tcpview's
come from ``tcpview export`` (its ``analysis`` names, ``ack_rtt``, ``bytes_in_flight``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# tshark's expert message (its start) -> tcpview's analysis name; the order matters: the
# longer "fast"/"spurious" messages first, the plain retransmission's last
EXPERT = (
    ("This frame is a (suspected) fast retransmission", "fast_retransmission"),
    ("This frame is a (suspected) spurious retransmission", "spurious_retransmission"),
    ("This frame is a (suspected) out-of-order segment", "out_of_order"),
    ("This frame is a (suspected) retransmission", "retransmission"),
    ("Duplicate ACK", "dup_ack"),
    ("Previous segment(s) not captured", "lost_segment"),
    ("ACKed segment that wasn't captured", "ack_lost_segment"),
    ("TCP Zero Window segment", "zero_window"),
    ("ACK to a TCP Zero Window Probe", "window_probe_ack"),
    ("TCP Zero Window Probe", "window_probe"),
    ("TCP window specified by the receiver is now completely full", "window_full"),
    ("TCP window update", "window_update"),
    ("ACK to a TCP keep-alive segment", "keep_alive_ack"),
    ("TCP keep-alive segment", "keep_alive"),
    ("A new tcp session is started with the same ports", "reused_ports"),
)
FLAGS = tuple(name for _msg, name in EXPERT)


@dataclass
class FrameAnalysis:
    """One TCP frame's analysis: flag names, and the numbers (None when not reported)."""

    flags: set[str] = field(default_factory=set)
    ack_rtt: float | None = None
    bytes_in_flight: int | None = None
    dup_ack_num: int | None = None


def _flag_of(message: str) -> str | None:
    for text, name in EXPERT:
        if message.startswith(text):
            return name
    return None


def tshark_analysis(pcap: Path) -> dict[int, FrameAnalysis]:
    """tshark's analysis of every TCP frame of ``pcap``, by frame number."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=\t", "-E", "aggregator=|",
         "-e", "frame.number", "-e", "_ws.expert.message", "-e", "tcp.analysis.ack_rtt",
         "-e", "tcp.analysis.bytes_in_flight", "-e", "tcp.analysis.duplicate_ack_num"],
        capture_output=True, text=True, check=False,
    ).stdout
    frames: dict[int, FrameAnalysis] = {}
    for line in out.splitlines():
        parts = (line.split("\t") + [""] * 5)[:5]
        if not parts[0].isdigit():
            continue
        fa = FrameAnalysis()
        for msg in parts[1].split("|"):
            name = _flag_of(msg)
            if name:
                fa.flags.add(name)
        # a tunnel's inner TCP repeats the field: the first is the outer (the one tcpview reads)
        fa.ack_rtt = float(parts[2].split("|")[0]) if parts[2] else None
        fa.bytes_in_flight = int(parts[3].split("|")[0]) if parts[3] else None
        fa.dup_ack_num = int(parts[4].split("|")[0]) if parts[4] else None
        frames[int(parts[0])] = fa
    return frames


def tcpview_analysis(pcap: Path, here: bool = False) -> dict[int, FrameAnalysis]:
    """tcpview's analysis of every TCP segment of ``pcap`` (``tcpview export``), by frame; in
    this process when ``here``."""
    if here:
        from helpers import cli_here

        out = cli_here("export", str(pcap))[1]
    else:
        out = subprocess.run([sys.executable, "-m", "tcpview", "export", str(pcap)],
                             capture_output=True, text=True, check=False).stdout
    frames: dict[int, FrameAnalysis] = {}
    for line in out.splitlines():
        seg = json.loads(line)
        names = set(seg["analysis"])
        dup = None
        for name in list(names):
            if name.startswith("dup_ack"):
                names.discard(name)
                names.add("dup_ack")
        if "dup_ack" in names:
            dup = seg.get("dup_ack_num")
        frames[seg["frame"]] = FrameAnalysis(names & set(FLAGS), seg.get("ack_rtt"), seg.get("bytes_in_flight"), dup)
    return frames


@dataclass
class Agreement:
    """Per flag (and for the two numbers): frames both report, only tshark, only tcpview."""

    both: Counter = field(default_factory=Counter)
    missed: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    undecoded: int = 0

    def add(self, where: str, theirs: dict[int, FrameAnalysis], ours: dict[int, FrameAnalysis]) -> None:
        """Compare the frames both decode (a frame tcpview does not decode, say of a link type
        it does not read, is counted in ``undecoded``)."""
        self.undecoded += len(set(theirs) - set(ours))
        for frame in sorted(set(theirs) & set(ours)):
            t = theirs.get(frame, FrameAnalysis())
            o = ours.get(frame, FrameAnalysis())
            for name in FLAGS:
                a, b = name in t.flags, name in o.flags
                self._count(name, a, b, a and b, f"{where}#{frame}")
            self._count("dup_ack_num", t.dup_ack_num is not None, o.dup_ack_num is not None,
                        t.dup_ack_num == o.dup_ack_num, f"{where}#{frame} {t.dup_ack_num} {o.dup_ack_num}")
            self._count("ack_rtt", t.ack_rtt is not None, o.ack_rtt is not None,
                        t.ack_rtt is not None and o.ack_rtt is not None and abs(t.ack_rtt - o.ack_rtt) <= 2e-6,
                        f"{where}#{frame} {t.ack_rtt} {o.ack_rtt}")
            self._count("bytes_in_flight", t.bytes_in_flight is not None, o.bytes_in_flight is not None,
                        t.bytes_in_flight == o.bytes_in_flight,
                        f"{where}#{frame} {t.bytes_in_flight} {o.bytes_in_flight}")

    def _count(self, name: str, theirs: bool, ours: bool, same: bool, example: str) -> None:
        if theirs and ours and same:
            self.both[name] += 1
            return
        if theirs:
            self.missed[name] += 1
        if ours:
            self.extra[name] += 1
        if theirs or ours:
            self.examples.setdefault(name, [])
            if len(self.examples[name]) < 5:
                self.examples[name].append(example)

    def ratio(self, name: str) -> float:
        total = self.both[name] + self.missed[name] + self.extra[name]
        return self.both[name] / total if total else 1.0

    def table(self) -> str:
        rows = [f"{'analysis':26} {'tshark':>7} {'both':>7} {'missed':>7} {'extra':>7} {'agree':>7}"]
        for name in (*FLAGS, "dup_ack_num", "ack_rtt", "bytes_in_flight"):
            theirs = self.both[name] + self.missed[name]
            rows.append(f"{name:26} {theirs:7} {self.both[name]:7} {self.missed[name]:7} {self.extra[name]:7} "
                        f"{100 * self.ratio(name):6.1f}%")
        rows.append(f"(TCP frames tshark decodes and tcpview does not: {self.undecoded})")
        return "\n".join(rows)
