"""The timeline store: an append-only log of segments and state transitions.

Invariants (see also INVARIANTS.md):
- Only the tracker appends; everything else reads. Appends happen on one thread (the source's
  worker); readers on the UI thread read lengths first and never look past them, so a reader
  sees a consistent prefix without a lock (Python appends to lists/bytearrays are atomic).
- Segments are kept per connection as packed 32-byte records in a ``bytearray``; pydantic
  models are built on demand for what is displayed or exported.
- Every state change is a transition ``(ts, frame, conn, side, old, new, why)`` appended in
  non-decreasing time order, so "the world as of time t" is a bisect plus a replay from the
  nearest checkpoint, cheap in both directions.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Iterator

from .decode import ip_text
from .model import (
    STATE_NAMES,
    Connection,
    Segment,
    TcpState,
    Transition,
    analysis_names,
    anomaly_names,
    flag_names,
)

# ts, frame, seq_raw, ack_raw, len, win (bytes, scaling applied as known then), flags, dir,
# client_state, server_state, bits (anomalies | analysis << 8)
REC = struct.Struct("<dIIIIIBBBBH")
REC_SIZE = REC.size  # 34
_TS = struct.Struct("<d")

class PackedLog:
    """An append-only list of fixed-shape tuples kept packed in one ``bytearray``.

    It reads like a list (``len``, indexing, slicing, iteration) but costs a few bytes per
    item instead of a tuple's ~100. Reads use ``unpack_from`` only, which holds no buffer
    export, so the tracker thread may keep appending while the UI thread reads.

    Args:
        fmt: the struct format of one item.
        decode: optional function applied to each unpacked tuple (e.g. to map codes to text).
    """

    __slots__ = ("_buf", "_size", "_unpack", "_iter_unpack", "_pack", "_decode")

    def __init__(self, fmt: str, decode=None) -> None:  # type: ignore[no-untyped-def]
        st = struct.Struct(fmt)
        self._buf = bytearray()
        self._size = st.size
        self._unpack = st.unpack_from
        self._iter_unpack = st.iter_unpack
        self._pack = st.pack
        self._decode = decode

    def append(self, item: tuple) -> None:
        self._buf += self._pack(*item)

    def __len__(self) -> int:
        return len(self._buf) // self._size

    def __bool__(self) -> bool:
        return bool(self._buf)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        n = len(self._buf) // self._size
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step != 1:
                return [self[j] for j in range(start, stop, step)]
            # one C-level unpack of a copy (a view would stop another thread's appends)
            items = self._iter_unpack(self._buf[start * self._size:max(start, stop) * self._size])
            return [self._decode(x) for x in items] if self._decode else list(items)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("log index out of range")
        item = self._unpack(self._buf, i * self._size)
        return self._decode(item) if self._decode else item

    def __iter__(self) -> Iterator[tuple]:
        for i in range(len(self._buf) // self._size):
            item = self._unpack(self._buf, i * self._size)
            yield self._decode(item) if self._decode else item

    def nbytes(self) -> int:
        """Bytes used by the packed items."""
        return len(self._buf)


CLIENT, SERVER = 0, 1
SIDES = ("client", "server")
NSTATES = len(TcpState)
CHECKPOINT_EVERY = 512

# Why a transition happened; the UI turns these into sentences (tcpview.engine.why).
WHY_SYN = "syn"
WHY_SYNACK = "synack"
WHY_HANDSHAKE_ACK = "handshake_ack"
WHY_SIMOPEN = "simultaneous_open"
WHY_FIN = "fin_sent"
WHY_GOT_FIN = "fin_received"
WHY_FIN_ACKED = "fin_acked"
WHY_SIMCLOSE = "simultaneous_close"
WHY_RST = "rst"
WHY_REFUSED = "refused"
WHY_TW_EXPIRED = "time_wait_expired"
WHY_FW2_EXPIRED = "fin_wait_2_expired"
WHY_MIDSTREAM = "midstream"
WHY_REUSED = "reused"  # a new SYN took over the 4-tuple
WHYS: tuple[str, ...] = (
    WHY_SYN, WHY_SYNACK, WHY_HANDSHAKE_ACK, WHY_SIMOPEN, WHY_FIN, WHY_GOT_FIN, WHY_FIN_ACKED,
    WHY_SIMCLOSE, WHY_RST, WHY_REFUSED, WHY_TW_EXPIRED, WHY_FW2_EXPIRED, WHY_MIDSTREAM, WHY_REUSED,
)
_WHY_CODE = {w: i for i, w in enumerate(WHYS)}


def _trans_decode(item: tuple) -> tuple:
    ts, frame, side, old, new, why = item
    return (ts, frame, side, old, new, WHYS[why])


class Conn:
    """One connection's tracking state and its packed segment log (tracker-owned)."""

    __slots__ = (
        "id", "family", "cip", "cport", "sip", "sport", "state", "rec", "bytes",
        "first_ts", "base", "base_set", "nxt", "win_scale", "fin_seq", "syn_seq",
        "syn_acked", "acked_peer_syn", "partial", "refused", "reset", "anomalies",
        "trans", "optraw", "since", "last_ack", "dup_acks", "last_win", "shift", "base_hist", "ka",
    )  # fmt: skip

    def __init__(self, cid: int, family: int, cip: object, cport: int, sip: object, sport: int, ts: float) -> None:
        self.id = cid
        self.family = family
        self.cip, self.cport, self.sip, self.sport = cip, cport, sip, sport
        self.state = [0, 0]  # current TcpState values: [client, server]
        self.rec = bytearray()
        self.bytes = 0
        self.first_ts = ts
        self.base = [0, 0]  # relative-seq base per direction (0 = c2s)
        self.base_set = [False, False]
        self.nxt = [-1, -1]  # highest seq+len seen per direction (raw, -1 = none)
        self.win_scale = [-1, -1]  # shift from the SYNs; -1 = SYN not seen, -2 = SYN without it
        self.fin_seq = [-1, -1]  # raw seq of each side's FIN (-1 = none sent)
        self.syn_seq = [-1, -1]  # raw ISN of each side's SYN (-1 = none seen)
        self.syn_acked = [False, False]
        self.acked_peer_syn = [False, False]
        self.partial = False
        self.refused = False
        self.reset = False
        self.anomalies = 0
        # (ts, frame, side, old, new, why): 16 bytes each, why stored as a code
        self.trans = PackedLog("<dIBBBB", _trans_decode)
        self.optraw: list[bytes | None] = [None, None]  # each side's SYN options, parsed on demand
        self.since = [0.0, 0.0]  # when each side entered its current state (timers check it)
        self.last_ack = [-1, -1]
        self.dup_acks = [0, 0]
        self.last_win = [-1, -1]
        self.shift = [0, 0]  # window-scale shift in use per direction, as Wireshark applies it
        self.base_hist: list[tuple[int, int, int]] = []  # (segments before, dir, old base)
        self.ka = [False, False]  # this direction's last segment was a keep-alive

    # -- reading -------------------------------------------------------------------------
    @property
    def opts(self) -> list[dict | None]:
        """Each side's SYN options (``mss``, ``ws``, ``sack_perm``, ``ts``...), None if no SYN seen."""
        from .decode import parse_options

        return [None if raw is None else parse_options(raw, 0, len(raw)) for raw in self.optraw]

    @property
    def n(self) -> int:
        """Number of segments stored."""
        return len(self.rec) // REC_SIZE

    @property
    def last_ts(self) -> float:
        """Capture time of the newest segment."""
        n = len(self.rec) // REC_SIZE
        return _TS.unpack_from(self.rec, (n - 1) * REC_SIZE)[0] if n else self.first_ts

    def client_text(self) -> str:
        return _fmt_ep(self.family, self.cip, self.cport)

    def server_text(self) -> str:
        return _fmt_ep(self.family, self.sip, self.sport)

    def count_at(self, t: float | None) -> int:
        """Number of this connection's segments with ts <= t (all when t is None)."""
        n = self.n
        if t is None or n == 0:
            return n
        rec = self.rec
        if _TS.unpack_from(rec, (n - 1) * REC_SIZE)[0] <= t:
            return n
        return bisect.bisect_right(range(n), t, key=lambda i: _TS.unpack_from(rec, i * REC_SIZE)[0])

    def states_at(self, t: float | None) -> tuple[int, int]:
        """(client, server) TcpState values as of time t (now when t is None)."""
        if t is None:
            return self.state[0], self.state[1]
        trans = self.trans
        if not trans or trans[-1][0] <= t:
            return self.state[0], self.state[1]
        k = bisect.bisect_right(trans, t, key=_first)
        if k == len(trans):
            return self.state[0], self.state[1]
        st = [TcpState.CLOSED, TcpState.CLOSED]
        # replay this connection's few transitions up to k
        for _ts, _f, side, _old, new, _why in self.trans[:k]:
            st[side] = new
        return int(st[0]), int(st[1])

    def bytes_at(self, k: int) -> int:
        """Payload bytes in the first k segments."""
        if k == self.n:
            return self.bytes
        total = 0
        rec = self.rec
        for i in range(k):
            total += REC.unpack_from(rec, i * REC_SIZE)[4]
        return total

    def record(self, i: int) -> tuple:
        """The raw record tuple of segment i."""
        return REC.unpack_from(self.rec, i * REC_SIZE)

    def base_at(self, i: int, d: int) -> int:
        """The relative-seq base of direction d as it was when segment i was seen.

        A base only changes when a SYN arrives after other segments of its direction (e.g. an
        injected RST before the SYN+ACK); earlier segments keep the base of their time, as
        Wireshark numbers them.
        """
        for n, dd, old in self.base_hist:
            if dd == d and i < n:
                return old
        return self.base[d]

    def rel_of(self, i: int, d: int, flags: int, seq_raw: int, ack_raw: int) -> tuple[int, int]:
        """Relative (seq, ack) for segment i with the given raw fields."""
        if self.base_hist:
            seq = (seq_raw - self.base_at(i, d)) & 0xFFFFFFFF
            ackb = self.base_at(i, 1 - d)
        else:
            seq = (seq_raw - self.base[d]) & 0xFFFFFFFF
            ackb = self.base[1 - d]
        # without the ACK flag the field means nothing; show it raw, as Wireshark does
        ack = (ack_raw - ackb) & 0xFFFFFFFF if flags & 0x10 else ack_raw
        return seq, ack

    def rel(self, i: int) -> tuple[int, int]:
        """Relative (seq, ack) of segment i, Wireshark-style."""
        r = REC.unpack_from(self.rec, i * REC_SIZE)
        return self.rel_of(i, r[7], r[6], r[2], r[3])

    def notes(self) -> list[str]:
        out = []
        if self.partial:
            out.append("partial")
        if self.refused:
            out.append("refused")
        elif self.reset:
            out.append("reset")
        if self.anomalies:
            out.append("anomaly")
        return out


def _first(item: tuple) -> float:
    return item[0]


def _fmt_ep(family: int, ip: object, port: int) -> str:
    text = ip_text(family, ip)
    return f"[{text}]:{port}" if family == 6 else f"{text}:{port}"


class Timeline:
    """All connections, their segments and transitions; queries at any cursor time."""

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.conn_first_ts: list[float] = []
        self.packets = 0
        self.tcp_packets = 0
        self.skipped: dict[str, int] = {}
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # global transition log, time-ordered: (ts, conn_id, side, old, new)
        self.t_ts = array("d")  # time of each transition, non-decreasing
        self.t_log = PackedLog("<IBBB")  # (conn_id, side, old, new)
        self.counts = [0] * NSTATES  # endpoints per state now
        self._checkpoints: list[tuple[int, list[int]]] = [(0, [0] * NSTATES)]
        self.version = 0  # bumped by the tracker after each batch

    # -- appends (tracker only) ------------------------------------------------------------
    def add_transition(self, c: Conn, ts: float, frame: int, side: int, new: int, why: str) -> None:
        st = c.state
        old = st[side]
        if old == new:
            return
        st[side] = new
        c.trans.append((ts, frame, side, old, new, _WHY_CODE[why]))
        t_ts = self.t_ts
        # the global log must stay time-ordered even if capture timestamps go backwards
        if t_ts and ts < t_ts[-1]:
            ts = t_ts[-1]
        t_ts.append(ts)
        log = self.t_log
        log.append((c.id, side, old, new))
        counts = self.counts
        counts[old] -= 1  # index 0 (CLOSED) is never reported, so it may go negative
        counts[new] += 1
        if not len(log) % CHECKPOINT_EVERY:
            self._checkpoints.append((len(log), list(counts)))

    # -- queries ----------------------------------------------------------------------------
    def end_time(self) -> float | None:
        return self.last_ts

    def counters_at(self, t: float | None = None) -> dict[str, int]:
        """Endpoints per state as of time t (now when None), CLOSED excluded, as ss counts."""
        if t is None:
            counts = self.counts
        else:
            k = bisect.bisect_right(self.t_ts, t)
            ci = bisect.bisect_right(self._checkpoints, k, key=lambda cp: cp[0]) - 1
            start, base = self._checkpoints[ci]
            counts = list(base)
            log = self.t_log
            for i in range(start, k):
                _cid, _side, old, new = log[i]
                counts[old] -= 1
                counts[new] += 1
        return {STATE_NAMES[i]: counts[i] for i in range(1, NSTATES)}

    def counter_series(self, state: int, buckets: int, t_end: float | None = None) -> list[int]:
        """Count of endpoints in ``state`` sampled at ``buckets`` even times up to t_end."""
        if self.first_ts is None or buckets <= 0:
            return []
        t0 = self.first_ts
        t1 = self.last_ts if t_end is None else t_end
        if t1 is None or t1 <= t0:
            v = self.counters_at(t1)[STATE_NAMES[state]]
            return [v] * buckets
        out = []
        cur = 0
        i = 0
        log, tts = self.t_log, self.t_ts
        n = len(log)
        for b in range(buckets):
            tb = t0 + (t1 - t0) * (b + 1) / buckets
            while i < n and tts[i] <= tb:
                _c, _s, old, new = log[i]
                if old == state:
                    cur -= 1
                if new == state:
                    cur += 1
                i += 1
            out.append(cur)
        return out

    def conn_count_at(self, t: float | None) -> int:
        """Number of connections whose first packet is at or before t."""
        if t is None:
            return len(self.conns)
        return bisect.bisect_right(self.conn_first_ts, t)

    def connection_dict(self, cid: int, t: float | None = None) -> dict:
        """Connection ``cid`` as of time t as a plain dict, in the shape of :class:`Connection`.

        For bulk output (a summary of 100k connections), where building a validated model per
        connection would cost more than reading the capture; :meth:`connection` gives the model.
        """
        c = self.conns[cid]
        if t is None:
            k = len(c.rec) // REC_SIZE
            cs, ss = c.state
            nbytes = c.bytes
        else:
            k = c.count_at(t)
            cs, ss = c.states_at(t)
            nbytes = c.bytes_at(k)
        fam = c.family
        return {
            "id": c.id,
            "client": {"ip": ip_text(fam, c.cip), "port": c.cport, "state": STATE_NAMES[cs]},
            "server": {"ip": ip_text(fam, c.sip), "port": c.sport, "state": STATE_NAMES[ss]},
            "first_ts": c.first_ts,
            "last_ts": _TS.unpack_from(c.rec, (k - 1) * REC_SIZE)[0] if k else c.first_ts,
            "packets": k,
            "bytes": nbytes,
            "partial": c.partial,
            "notes": c.notes(),
        }

    def connection(self, cid: int, t: float | None = None) -> Connection:
        """The pydantic model of connection ``cid`` as of time t."""
        return Connection.model_validate(self.connection_dict(cid, t))

    def connection_dicts(self, t: float | None = None) -> list[dict]:
        """Every connection that exists at time t, as plain dicts (see :meth:`connection_dict`)."""
        return [self.connection_dict(i, t) for i in range(self.conn_count_at(t))]

    def connections(self, t: float | None = None) -> list[Connection]:
        """Every connection that exists at time t, as models."""
        return [self.connection(i, t) for i in range(self.conn_count_at(t))]

    def segment(self, cid: int, i: int) -> Segment:
        """The pydantic model of segment i of connection cid."""
        c = self.conns[cid]
        ts, frame, seq_raw, ack_raw, plen, win, flags, d, cs, ss, bits = REC.unpack_from(c.rec, i * REC_SIZE)
        seq, ack = c.rel_of(i, d, flags, seq_raw, ack_raw)
        return Segment(
            frame=frame,
            ts=ts,
            conn=cid,
            dir="c2s" if d == 0 else "s2c",
            flags=flag_names(flags),
            seq=seq,
            ack=ack,
            seq_raw=seq_raw,
            ack_raw=ack_raw,
            len=plen,
            win=win,
            client_state=STATE_NAMES[cs],
            server_state=STATE_NAMES[ss],
            anomalies=anomaly_names(bits & 0xFF),
            analysis=analysis_names(bits >> 8),
        )

    def segments(self, cid: int, t: float | None = None) -> Iterator[Segment]:
        """Connection cid's segments up to time t, as models."""
        c = self.conns[cid]
        for i in range(c.count_at(t)):
            yield self.segment(cid, i)

    def transitions(self, cid: int, t: float | None = None) -> list[Transition]:
        """Connection cid's state transitions up to time t, as models."""
        c = self.conns[cid]
        out = []
        for ts, frame, side, old, new, why in c.trans:
            if t is not None and ts > t:
                break
            out.append(
                Transition(ts=ts, frame=frame, conn=cid, side=SIDES[side], old=STATE_NAMES[old],
                           new=STATE_NAMES[new], why=why)
            )
        return out

    def all_segments_in_frame_order(self) -> Iterator[Segment]:
        """Every segment of every connection, ordered by frame number (for export)."""
        import heapq

        def it(c: Conn) -> Iterator[tuple[int, int, int]]:
            for i in range(c.n):
                yield (struct.unpack_from("<I", c.rec, i * REC_SIZE + 8)[0], c.id, i)

        for _frame, cid, i in heapq.merge(*(it(c) for c in self.conns)):
            yield self.segment(cid, i)

