"""A connection's payload in order, as Wireshark's Follow TCP Stream puts it together.

The definition is Wireshark's ``follow_tcp_tap_listener`` and ``check_follow_fragments``
(``epan/dissectors/packet-tcp.c``, 4.0): per direction the next expected sequence number; a
segment that continues the stream is appended (a retransmission adds only what it has that
is new), one from further ahead waits until the bytes before it come, and when the other
side acknowledges bytes the capture never had, the gap is noted and the waiting data goes
out after it. Node 0 is the sender of the connection's first segment, as in tshark.

Wireshark writes a gap into the stream as the text ``[N bytes missing in capture file]``; here
it is a :class:`Chunk` of its own (``missing`` > 0) so that raw output never contains bytes the
connection did not carry. Payload cut short by the capture's snap length is what was
captured: the sequence numbers move on, the bytes that were not captured are simply absent
(as in Wireshark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...textutil import plural
from ..core.tcp import SYN

M = 0xFFFFFFFF


def _lt(a: int, b: int) -> bool:
    return ((a - b) & M) >= 0x80000000


def _gt(a: int, b: int) -> bool:
    return _lt(b, a)


@dataclass
class Chunk:
    """Bytes one side sent, in stream order; or a gap (``missing`` bytes never captured)."""

    node: int  # 0: the sender of the first segment, 1: the other side
    frame: int
    data: bytes = b""
    missing: int = 0


@dataclass
class Follow:
    """Feed a connection's segments in capture order with :meth:`segment`; read ``chunks``."""

    chunks: list[Chunk] = field(default_factory=list)
    _first: int | None = None  # the direction of the first segment
    _seq: list[int] = field(default_factory=lambda: [0, 0])
    _written: list[int] = field(default_factory=lambda: [0, 0])
    _frags: list[list[tuple[int, int, bytes]]] = field(default_factory=lambda: [[], []])  # (seq, frame, data)
    fed: int = 0
    """How many segments it has been given (a later call can go on from there)."""

    def copy(self) -> Follow:
        """A follow that goes on from here while this one stays as it is (the chunks are shared:
        a chunk is never changed once made)."""
        return Follow(list(self.chunks), self._first, list(self._seq), list(self._written),
                      [list(frags) for frags in self._frags], self.fed)

    def node_of(self, d: int) -> int:
        """The node of tcpview's direction d (0: what the client sends)."""
        return 0 if self._first is None or d == self._first else 1

    def segment(self, frame: int, d: int, flags: int, seq: int, length: int, data: bytes, ack: int) -> None:
        """One segment: its frame number, tcpview's direction (0 c2s), flags, relative seq
        and ack (as Wireshark numbers them), payload length on the wire and the payload bytes
        captured."""
        self.fed += 1
        if self._first is None:
            self._first = d
        node = self.node_of(d)
        if flags & SYN:
            seq = (seq + 1) & M
        if self._frags[1 - node]:
            while self._check(1 - node, ack, frame, True):
                pass
        if self._written[node] == 0 and self._seq[node] == 0:
            self._seq[node] = seq
        off = 0
        n = len(data)
        if _lt(seq, self._seq[node]):
            nxt = (seq + length) & M
            if _gt(nxt, self._seq[node]):
                off = (self._seq[node] - seq) & M
                n = 0 if n <= off else n - off
                seq = self._seq[node]
                length = (nxt - self._seq[node]) & M
        if n == 0 or _lt(seq, self._seq[node]):
            return
        piece = data[off:off + n]
        if seq == self._seq[node]:
            self._seq[node] = (self._seq[node] + length) & M
            self._written[node] += len(piece)
            self.chunks.append(Chunk(node, frame, piece))
            while self._check(node, 0, frame, False):
                pass
        else:
            self._frags[node].append((seq, frame, piece))

    def _check(self, node: int, acked: int, frame: int, use_ack: bool) -> bool:
        """Wireshark's check_follow_fragments: put one waiting piece (or a gap) out."""
        frags = self._frags[node]
        if not frags:
            return False
        lowest = frags[0][0]
        for k, (seq, fr, data) in enumerate(frags):
            if _gt(lowest, seq):
                lowest = seq
            if _lt(seq, self._seq[node]):
                newseq = (seq + len(data)) & M
                if _gt(newseq, self._seq[node]):
                    new_pos = (self._seq[node] - seq) & M
                    if len(data) > new_pos:
                        self.chunks.append(Chunk(node, fr, data[new_pos:]))
                    self._seq[node] = (self._seq[node] + len(data) - new_pos) & M
                del frags[k]
                return True
            if seq == self._seq[node]:
                if data:
                    self.chunks.append(Chunk(node, fr, data))
                self._seq[node] = (self._seq[node] + len(data)) & M
                del frags[k]
                return True
        if use_ack and _gt(acked, lowest):
            self.chunks.append(Chunk(node, frame, missing=(lowest - self._seq[node]) & M))
            self._seq[node] = lowest
            return True
        return False

    def stream(self, node: int) -> bytes:
        """Everything node sent, in order, without the gaps."""
        return b"".join(c.data for c in self.chunks if c.node == node)


def follow_connection(tl, cid: int, frames, t: float | None = None,
                      f: Follow | None = None) -> Follow:
    """Connection ``cid`` of timeline ``tl`` followed up to time t. ``frames``: the capture
    file to read its frames' payload from again, or a function giving a frame number's
    ``(linktype, bytes)`` (None when they are no longer at hand: that payload is left out).
    ``f``: a follow of the same connection to go on with (only the segments it has not had
    are read: a live connection that grows)."""
    from ..core.decode import decode

    c = tl.conns[cid]
    f = f if f is not None else Follow()
    first = f.fed
    recs = c.records(first, max(first, c.count_at(t)))
    if not callable(frames):  # a capture file, or several merged (their CaptureMap)
        from ...sources.extract import read_frames

        found = read_frames(frames, (r[1] for r in recs))
        get = lambda n: (found[n].linktype, found[n].data) if n in found else None  # noqa: E731
    else:
        get = frames
    for i, (_ts, frame, seq_raw, ack_raw, plen, _win, flags, d, *_rest) in enumerate(recs, first):
        # relative numbers, as Wireshark's follow sees them (it starts a direction afresh
        # while its next sequence number is still 0)
        seq, ack = c.rel_of(i, d, flags, seq_raw, ack_raw)
        data = b""
        got = get(frame) if plen else None
        if got is not None:
            lt, raw = got
            fields = decode(raw, 0, len(raw), len(raw), lt)
            if not isinstance(fields, str):
                start = fields[10] + fields[11]
                data = raw[start: start + plen]
        f.segment(frame, d, flags, seq, plen, data, ack)
    return f


def escaped(data: bytes) -> str:
    """Payload as text, its line ends as Wireshark's Follow TCP Stream shows them: CRLF and LF
    end a line (``\\n`` in the result); printable ASCII and tabs as they are; a lone CR and
    anything else escaped (``\\r``, ``\\xNN``: no byte reaches the terminal as a control)."""
    out = []
    n = len(data)
    for i, b in enumerate(data):
        if 32 <= b < 127 or b == 9:
            out.append(chr(b))
        elif b == 13:
            if i + 1 >= n or data[i + 1] != 10:
                out.append("\\r")  # a CR that ends no line (the LF of a CRLF ends it)
        elif b == 10:
            out.append("\n")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def hexdump(data: bytes, start: int) -> list[str]:
    """``00000010  47 45 54 20 ...  GET ...`` lines; offsets count from ``start``."""
    lines = []
    for k in range(0, len(data), 16):
        part = data[k:k + 16]
        hx = " ".join(f"{b:02x}" for b in part)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
        lines.append(f"{start + k:08x}  {hx:<47}  {asc}")
    return lines


def stream_lines(f: Follow, names: tuple[str, str], as_hex: bool) -> list[tuple[int, str]]:
    """``(kind, text)`` lines of a followed stream: kind 0/1 the node's data, 2 a chunk's
    head, 3 a gap."""
    lines: list[tuple[int, str]] = []
    sent = [0, 0]
    for chunk in f.chunks:
        if chunk.missing:
            lines.append((3, f"── [{plural(chunk.missing, 'byte')} missing in capture file]"))
            continue
        lines.append((2, f"── {names[chunk.node]}  frame {chunk.frame}  {plural(len(chunk.data), 'byte')}"))
        if as_hex:
            lines += [(chunk.node, line) for line in hexdump(chunk.data, sent[chunk.node])]
        else:
            text = escaped(chunk.data)
            # a chunk that ends its last line leaves no empty line after it (the next head follows)
            lines += [(chunk.node, line) for line in text.removesuffix("\n").split("\n")]
        sent[chunk.node] += len(chunk.data)
    return lines
