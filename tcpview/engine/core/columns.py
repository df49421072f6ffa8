"""The engine's store: a few numpy record arrays, no Python object per connection or segment.

Tables (one record array each, appended to by the compiled loop in
:mod:`tcpview.engine.core.loop`, read by everything else):

- ``conns`` (:data:`CONN`): one row per connection (a Wireshark ``tcp.stream``) in order of
  first packet; the row number is the connection id. Its 4-tuple, both endpoints' current
  states and what the state machine remembers (ISNs, FINs, next sequence numbers, window
  scales...). Per-side fields are pairs: ``[0]`` the client's, ``[1]`` the server's. An IPv4
  address is kept in the row; an IPv6 address is a row of the ``addrs6`` table.
- ``ana`` (:data:`ANA`): Wireshark's sequence-analysis state of a connection, made at its
  second segment (from its first, ``row0``): a SYN flood's million one-segment connections
  need none. Row 0 is the loop's scratch for first segments.
- ``segs`` (:data:`SEG`, 32 bytes): one row per TCP segment in capture order: time, frame,
  connection, raw seq/ack, length, raw window, and a word of flags, direction, the window
  shift known then and the analysis bits. A connection's segments are the rows with its id.
- ``trans`` (:data:`TRANS`, 10 bytes): one row per state change of one endpoint, in the order
  they happened: how many segments came before it (for a change a segment caused, that
  segment's row), the connection, and a code word of side, old state, new state and why.
  Its time is its segment's, but for a timer's (its deadline) and for the rare ones whose
  segment's time was moved by the clock rule below: those are in ``trans_ts``.
- ``timers`` (:data:`TIMER`): a binary heap of pending TIME_WAIT / FIN_WAIT_2 expiries.

The rare things have small tables of their own (``(row, value)`` pairs): segments longer than
65535 bytes, segments with anomalies, duplicate ACKs (their number and the frame they repeat), SACK blocks, times where the capture clock stepped back (the time
columns never decrease, so "as of t" is a binary search), and relative-sequence bases that
moved.

Readers never look past the lengths the writer published (``tcpview.engine.timeline.timeline``), and rows
below them are never rewritten (only a connection's working fields are), so a reader on
another thread always sees a consistent prefix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...jit import anywhere
from ...records import Records
from .decode import REASON_SLOTS

# -- the record layouts ---------------------------------------------------------------------------
CONN = np.dtype([
    ("cid", np.uint32),  # the connection's id (its row until older connections were evicted)
    ("fam", np.uint8),  # 4 or 6
    ("caddr", np.uint32),  # IPv4 address, or the row of the IPv6 address in addrs6
    ("saddr", np.uint32),
    ("port", np.uint16, (2,)),  # client, server
    ("state", np.uint8, (2,)),  # current TcpState of client, server
    ("fl", np.uint32),  # F_* bits
    ("first_ts", np.float64),  # time of the first packet
    ("seqbase", np.uint32, (2,)),  # relative-sequence base per direction (0 = c2s)
    ("nxt", np.uint32, (2,)),  # highest seq+len seen per direction (F_HAVE_NXT)
    ("fin", np.uint32, (2,)),  # raw seq of each side's FIN (F_HAVE_FIN)
    ("syn", np.uint32, (2,)),  # raw ISN of each side's SYN (F_HAVE_SYN)
    ("lack", np.uint32, (2,)),  # last ack per direction (F_HAVE_LACK)
    ("lwin", np.uint16, (2,)),  # last raw window per direction (F_HAVE_LWIN)
    ("wscale", np.int8, (2,)),  # shift from each SYN: WS_UNKNOWN SYN not seen, WS_NONE without the option
    ("shift", np.uint8, (2,)),  # window-scale shift in use per direction, as Wireshark applies it
    ("anom", np.uint8),  # anomaly bits seen on any segment
    ("gen", np.uint16, (2,)),  # bumped at every state change: a timer fires only if it matches
    ("mss", np.uint16, (2,)),  # MSS option of each side's SYN (F_HAVE_MSS)
    ("ws", np.int8, (2,)),  # window-scale option of each side's SYN as shown (decode.ABSENT: none)
    ("ana", np.uint32),  # its row in the analysis table (0: none yet, see ANA)
    ("row0", np.uint32),  # its first segment's row (NO_ROW once that row left)
], align=False)

ANA = np.dtype([
    # Wireshark's sequence-analysis state per direction (tcpview.engine.core.seqanalysis; 0: not seen)
    ("a_nxt", np.uint32, (2,)),  # nextseq
    ("a_maxack", np.uint32, (2,)),  # maxseqtobeacked
    ("a_lack", np.uint32, (2,)),  # lastack (the raw ack field of the direction's last segment)
    ("a_win", np.uint32, (2,)),  # the raw window of its last segment (0xFFFFFFFF: none yet)
    ("a_nondup", np.uint32, (2,)),  # lastnondupack: the frame a run of duplicate ACKs counts from
    ("a_dupn", np.uint32, (2,)),  # dupacknum (unsigned, as Wireshark's)
    ("a_nxt_ts", np.float64, (2,)),  # when nextseq last moved
    ("a_last_ts", np.float64, (2,)),  # lastacktime: the time of its last segment
    ("a_lastfl", np.uint16, (2,)),  # the analysis bits of its last segment
    ("a_wsc", np.int8, (2,)),  # win_scale: WS_UNKNOWN not known, WS_NONE no scaling, else the shift
    ("a_first_ack", np.uint8, (2,)),  # 1 until it sends its first ACK after a SYN (window unscaled)
    ("a_syn_ts", np.float64),  # the time of the last SYN (no ACK)
    ("a_irtt", np.float64),  # the initial RTT (0: not yet)
], align=False)

SEG = np.dtype([
    ("ts", np.float64),  # never decreasing
    ("frame", np.uint32),  # 1-based position in the source
    ("conn", np.uint32),
    ("seq", np.uint32),  # raw
    ("ack", np.uint32),  # raw
    ("len", np.uint16),  # payload bytes (65535: see the long table)
    ("win", np.uint16),  # raw window field
    ("fl", np.uint32),  # flags | dir << 8 | shift << 9 | analysis << 13
])

TRANS = np.dtype([
    ("seg", np.uint32),  # segments before it
    ("conn", np.uint32),
    ("code", np.uint16),  # side | old << 1 | new << 5 | why << 9
], align=False)

TIMER = np.dtype([
    ("deadline", np.float64),
    ("conn", np.uint32),
    ("side", np.uint8),
    ("state", np.uint8),
    ("gen", np.uint16),
])

PROGRESS = np.dtype([
    # what a connection's segments said up to a cursor (tcpview.engine.core.passes.conn_progress):
    # replayed from the rows for any cursor, never kept per connection in the tables above
    ("notes", np.uint8),  # NOTE_* bits
    ("ana", np.uint16),  # the analysis bits of its segments, or-ed
    ("anom", np.uint8),  # the anomaly bits of its segments, or-ed
    ("retr", np.uint32),  # its retransmitted segments
    ("syn_ts", np.float64),  # the time of its last SYN (no ACK): Wireshark's initial RTT counts from it
    ("irtt", np.float64),  # the initial RTT (0: none yet)
], align=False)

# -- bits of PROGRESS's notes: what the notes column shows, and two the replay needs ------------------
NOTE_PARTIAL = 1 << 0  # picked up mid-stream (its first segment no SYN, or a SYN+ACK without the SYN)
NOTE_REFUSED = 1 << 1  # a RST answered its SYN
NOTE_RESET = 1 << 2  # a RST closed it
NOTE_ANOMALY = 1 << 3  # a segment with an invalid flag combination, or that the state machine refused
NOTE_SHOWN = NOTE_PARTIAL | NOTE_REFUSED | NOTE_RESET | NOTE_ANOMALY
NOTE_SEEN = 1 << 4  # its first segment was replayed
NOTE_SYNACK = 1 << 5  # its first valid SYN+ACK was replayed

# -- bits of a connection's fl (per-side facts: bit << side) ------------------------------------------
F_BASE_SET = 1 << 0
F_SYN_ACKED = 1 << 2
F_ACKED_PEER_SYN = 1 << 4
F_PARTIAL = 1 << 6
F_REFUSED = 1 << 7
F_RESET = 1 << 8
F_BASE_HIST = 1 << 11
F_HAVE_NXT = 1 << 12
F_HAVE_FIN = 1 << 14
F_HAVE_SYN = 1 << 16
F_HAVE_LACK = 1 << 18
F_SACK_PERM = 1 << 20
F_SYN_OPTS = 1 << 22
F_IN_TABLE = 1 << 24
F_HAVE_LWIN = 1 << 25
F_HAVE_MSS = 1 << 27

# -- a segment's fl word: TCP flags | direction << 8 | window shift << 9 | analysis bits << 13 | tunneled << 29
SEG_DIR_SHIFT = 8
SEG_WSHIFT_SHIFT = 9
SEG_ANA_SHIFT = 13
SEG_TUNNEL_SHIFT = 29  # one bit: it came through a tunnel or an encapsulation (decode's layers)


@anywhere
def seg_word(flags, sender, wshift, analysis):
    """A segment's ``fl`` word: its TCP flags, who sent it (0 the client), the window shift
    known then and its analysis bits."""
    return flags | (sender << SEG_DIR_SHIFT) | (wshift << SEG_WSHIFT_SHIFT) | (analysis << SEG_ANA_SHIFT)


@anywhere
def seg_flags(word):
    """The TCP flags of a segment's ``fl`` word (or of an array of them)."""
    return word & 0xFF


@anywhere
def seg_dir(word):
    """Who sent the segment: 0 the client, 1 the server."""
    return (word >> SEG_DIR_SHIFT) & 1


@anywhere
def seg_wshift(word):
    """The window-scale shift its window is multiplied by (known when it was sent)."""
    return (word >> SEG_WSHIFT_SHIFT) & 15


@anywhere
def seg_tunneled(word):
    """1 when the segment came through a tunnel or an encapsulation (its outer layers are read
    again from the frame: ``tcpview.engine.output.outer``)."""
    return (word >> SEG_TUNNEL_SHIFT) & 1


@anywhere
def seg_analysis(word):
    """Its analysis bits (:class:`tcpview.engine.core.tcp.Analysis`)."""
    return (word >> SEG_ANA_SHIFT) & 0xFFFF

LONG_LEN = 0xFFFF  # len says "look in the long table"
NO_ROW = 0xFFFFFFFF

# -- a duplicate ACK's value in its (row, value) table: the frame it repeats << 24 | its number ----------
DUPACK_FRAME_SHIFT = 24
DUPACK_NUM_MASK = (1 << 24) - 1


@anywhere
def dupack_value(frame, number):
    """A duplicate ACK's value: the frame whose ACK it repeats and its number (``#n``; the
    largest that fits when it is more)."""
    return (frame << DUPACK_FRAME_SHIFT) | min(number, DUPACK_NUM_MASK)


@anywhere
def dupack_number(value):
    """Which duplicate of that ACK it is (Wireshark's ``#n``)."""
    return value & DUPACK_NUM_MASK


@anywhere
def dupack_frame(value):
    """The frame whose ACK it repeats (Wireshark's ``duplicate_ack_frame``)."""
    return value >> DUPACK_FRAME_SHIFT

# -- a transition's code word: side | old state << 1 | new state << 5 | why << 9 ------------------------
TR_OLD_SHIFT = 1
TR_NEW_SHIFT = 5
TR_WHY_SHIFT = 9


@anywhere
def trans_code(side, old, new, why):
    """A transition's ``code`` word: which side (0 the client) went from state ``old`` to
    ``new``, and why (a ``WHY_*`` code)."""
    return side | (old << TR_OLD_SHIFT) | (new << TR_NEW_SHIFT) | (why << TR_WHY_SHIFT)


@anywhere
def trans_side(code):
    """The side of a transition's code word (or of an array of them): 0 the client."""
    return code & 1


@anywhere
def trans_old(code):
    """The state the side left."""
    return (code >> TR_OLD_SHIFT) & 15


@anywhere
def trans_new(code):
    """The state the side entered."""
    return (code >> TR_NEW_SHIFT) & 15


@anywhere
def trans_why(code):
    """Why it changed (a ``WHY_*`` code of :mod:`tcpview.engine.core.tcp`)."""
    return (code >> TR_WHY_SHIFT) & 15


# -- the counters the kernels keep (an int64 array) and the clocks (a float64 array) ----------------
(N_CONN, N_SEG, N_TRANS, N_TIMERS, PACKETS, TCP_PACKETS, N_ADDR6, N_SEG_BACK, N_TRANS_BACK, N_BASE_HIST,
 N_LONG, N_ANOM, N_TRANS_TS, STATUS, NEXT_ID, N_DUPACK, N_SACK, N_ANA) = range(18)
FRAGMENTS = 18  # frames held as IP fragments of a datagram another frame completed (its TCP_PACKET)
NCOUNTERS = 24
# ``skipped`` counts frames by reason code in its first decode.REASON_SLOTS places (then by link type)
FIRST_TS, LAST_TS, SEG_CLOCK, TRANS_CLOCK = range(4)
NCLOCKS = 8

# why a kernel returned early (``counts[STATUS]``): which table needs room, by the index of its
# counter, or one of these
NEED_NOTHING = -1
"""Every table had room: the batch is done."""
NEED_HASH = -2
"""The connections' hash table is too full (it has no counter): double it and rebuild it."""


class TableArrays(NamedTuple):
    """Every table of a timeline as a kernel takes it: one argument, each array by its name
    (numba compiles a NamedTuple of arrays, and reads a field as cheaply as an argument).
    :meth:`Tables.arrays` makes one before each call, since a table that grew is a new array."""

    conns: Records  # CONN rows
    ana: Records  # ANA rows
    segs: Records  # SEG rows
    trans: Records  # TRANS rows
    timers: Records  # TIMER rows, a binary heap
    addrs6: np.ndarray  # (client hi, client lo, server hi, server lo) of an IPv6 connection
    seg_back: np.ndarray  # the (row, value) pairs of the rare things: see Tables.LAYOUT
    trans_back: np.ndarray
    base_hist: np.ndarray
    long: np.ndarray
    anom: np.ndarray
    trans_ts: np.ndarray
    dupack: np.ndarray
    sack: np.ndarray
    hash: np.ndarray  # the connections' index by 4-tuple (tcpview.engine.core.connhash)
    counts: np.ndarray  # rows in use per table and the loop's counters (N_*, STATUS, ...)
    clocks: np.ndarray  # FIRST_TS, LAST_TS and the clocks that keep times from going back
    skipped: np.ndarray  # frames skipped, by reason (then by unsupported link type)


class Tables:
    """Every table of one timeline, and how many rows of each are in use (the writer's)."""

    # the tables of LAYOUT (set by name in __init__): record arrays, and (rows, columns) arrays
    conns: Records
    ana: Records
    segs: Records
    trans: Records
    timers: Records
    addrs6: np.ndarray
    seg_back: np.ndarray
    trans_back: np.ndarray
    base_hist: np.ndarray
    long: np.ndarray
    anom: np.ndarray
    trans_ts: np.ndarray
    dupack: np.ndarray
    sack: np.ndarray

    # name -> (dtype or (dtype, columns), counter index, first capacity)
    LAYOUT: dict[str, tuple] = {
        "conns": (CONN, N_CONN, 1024),
        "ana": (ANA, N_ANA, 1024),
        "segs": (SEG, N_SEG, 16384),
        "trans": (TRANS, N_TRANS, 16384),
        "timers": (TIMER, N_TIMERS, 256),
        "addrs6": ((np.int64, 4), N_ADDR6, 16),
        "seg_back": ((np.float64, 2), N_SEG_BACK, 16),  # (segment row, real time)
        "trans_back": ((np.float64, 2), N_TRANS_BACK, 16),  # (transition row, real time)
        "base_hist": ((np.int64, 4), N_BASE_HIST, 16),  # (conn, segment row, dir, old base)
        "long": ((np.int64, 2), N_LONG, 16),  # (segment row, payload length) when >= 65535
        "anom": ((np.int64, 2), N_ANOM, 64),  # (segment row, anomaly bits)
        "trans_ts": ((np.float64, 2), N_TRANS_TS, 256),  # (transition row, time) where not its segment's
        "dupack": ((np.int64, 2), N_DUPACK, 64),  # (segment row, frame it repeats << 24 | its number)
        "sack": ((np.int64, 2), N_SACK, 64),  # (segment row, bytes its SACK blocks cover)
    }

    def __init__(self, rows: int | None = None) -> None:
        """``rows``: start every table with this many rows instead (small ones grow early)."""
        for name, (dt, _counter, cap) in self.LAYOUT.items():
            setattr(self, name, _alloc(dt, rows or cap))
        self.hash = np.zeros(max(16, 1 << (2 * (rows or 2048)).bit_length()), dtype=np.int32)
        self.counts = np.zeros(NCOUNTERS, dtype=np.int64)
        self.counts[N_ANA] = 1  # analysis row 0 is the loop's scratch: a connection's first segment
        self.clocks = np.full(NCLOCKS, -np.inf, dtype=np.float64)
        self.skipped = np.zeros(REASON_SLOTS + 2 * 16, dtype=np.int64)  # by reason; then (link type + 1, count) pairs
        # what the rows that left (see tcpview.engine.timeline.evict) leave behind
        self.base_states = np.zeros((0, 2), dtype=np.uint8)  # each connection's states at the horizon
        self.base_counts = np.zeros((0, 2), dtype=np.int64)  # its segments and bytes before it
        self.base_last = np.zeros(0, dtype=np.float64)  # the time of its last segment before it
        self.base_progress = np.zeros(0, dtype=PROGRESS)  # each connection's PROGRESS at the horizon
        self.base_zeek: tuple = ()  # Zeek's state of those whose segments left (tcpview.engine.timeline.zeek_history.carry)
        self.horizon: float | None = None
        self.history: list[tuple[float, np.ndarray]] = []  # (time, endpoints per state) samples
        self.evicted_conns = 0
        self.evicted_segs = 0
        self.held_counts = np.zeros(16, dtype=np.int64)  # endpoints per state of half-open ones that left
        self.half_open_aggregated = 0
        self.settled = 0  # bytes in use right after the last eviction (tcpview.engine.timeline.evict)

    def expect_segments(self, rows: int) -> None:
        """Make room for about ``rows`` segments now (a file's size tells): the table is zeroed
        memory, which costs nothing until rows are written, and growing by doubling later would
        hold the old table beside the new one at the peak."""
        rows = min(rows, MAX_EXPECTED_SEGMENTS)
        if rows > len(self.segs) and not self.counts[N_SEG]:
            self.segs = _records(SEG, rows)

    def expect_stream(self) -> None:
        """Make room ahead for a stream or a live capture, whose size nothing tells (see
        :data:`STREAM_AHEAD`)."""
        for name, rows in STREAM_AHEAD.items():
            if rows > len(getattr(self, name)):
                self._resize(name, rows)

    def grow(self, counter: int) -> None:
        """Double the table whose counter is ``counter`` (copying its rows in use).

        The old array is left as it was: a reader still holding it keeps a consistent view.
        """
        for name, (_dt, c, _cap) in self.LAYOUT.items():
            if c == counter:
                self._resize(name, 2 * len(getattr(self, name)))
                return
        raise ValueError(f"no table counts with {counter}")

    def _resize(self, name: str, rows: int) -> None:
        """Table ``name`` made anew with ``rows`` rows, its rows in use copied over."""
        dt, counter, _cap = self.LAYOUT[name]
        old, new = getattr(self, name), _alloc(dt, rows)
        used = int(self.counts[counter])
        raw(new)[:used] = raw(old)[:used]
        setattr(self, name, new)

    def arrays(self) -> TableArrays:
        """The tables as the kernels take them (made again after a table grows or rows leave)."""
        return TableArrays(*(getattr(self, name) for name in TableArrays._fields))

    def nbytes(self) -> int:
        """Bytes the tables hold (allocated)."""
        return sum(getattr(self, name).nbytes for name in self.LAYOUT) + self.hash.nbytes


MAX_EXPECTED_SEGMENTS = 1 << 24
"""The most segment rows reserved ahead (512 MB of address space, not of memory)."""

STREAM_AHEAD = {"conns": 1 << 18, "ana": 1 << 18, "segs": 1 << 22, "trans": 1 << 22}
"""Rows reserved ahead for a stream or live capture, by table (220 MB of address space, not of
memory: zeroed rows cost nothing until they are written). Doubling from the first small tables
copies each row again at every step, into memory touched for the first time: under connection
churn on 2 cores (``benchmarks/stream_bench.py``), 27 doublings took 0.35 s of the 15 s, up to
91 ms each."""


def raw(table: np.ndarray) -> np.ndarray:
    """A table's rows as rows of bytes: copying between these is a plain memory copy, where
    numpy copies records field by field (a million connection rows: 7 ms instead of 0.2 s)."""
    if not table.dtype.names:
        return table
    return table.view(np.ndarray).view(np.uint8).reshape(len(table), table.dtype.itemsize)


def _alloc(dt: np.dtype | tuple[type, int], capacity: int) -> np.ndarray:
    if isinstance(dt, tuple):
        return np.zeros((capacity, dt[1]), dtype=dt[0])
    return _records(dt, capacity)


def _records(dt: np.dtype, capacity: int) -> Records:
    # a record array: fields read as attributes, by numba and by plain Python alike
    return np.zeros(capacity, dtype=dt).view(Records)
