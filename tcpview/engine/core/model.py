"""The pydantic model of what tcpview shows: endpoints, segments, transitions, connections and
the summary. The TCP names they use are in :mod:`tcpview.engine.core.tcp`.

Nothing here imports Textual or scapy. The store keeps segments compactly and builds these
models on demand (for the rows on screen and for export); see ``tcpview.engine.timeline.timeline``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Endpoint(BaseModel):
    """One end of a connection: address, port and its state at the cursor."""

    model_config = ConfigDict(frozen=True)

    ip: str
    port: int
    state: str = Field(description="TcpState name, e.g. ESTABLISHED")


class Segment(BaseModel):
    """One TCP segment as tcpview shows and exports it.

    ``seq``/``ack`` are relative (as Wireshark shows them); the raw values are kept beside.
    ``client_state``/``server_state`` are the endpoints' states after this segment.
    """

    frame: int = Field(description="1-based position of the packet in its source")
    ts: float
    conn: int
    dir: str = Field(description="c2s or s2c")
    flags: list[str]
    seq: int
    ack: int
    seq_raw: int
    ack_raw: int
    len: int
    win: int = Field(description="window in bytes, with window scaling applied")
    client_state: str
    server_state: str
    anomalies: list[str] = []
    analysis: list[str] = []
    ack_rtt: float | None = Field(None, description="seconds since the segment this one acknowledges (Wireshark's "
                                  "tcp.analysis.ack_rtt)")
    bytes_in_flight: int | None = Field(None, description="bytes its sender has sent and not seen acknowledged "
                                        "(tcp.analysis.bytes_in_flight)")
    dup_ack_num: int | None = Field(None, description="which duplicate ACK of a run it is (#n)")
    dup_ack_frame: int | None = Field(None, description="the frame the duplicate ACKs repeat")


class Transition(BaseModel):
    """One endpoint's state change, with the capture time and frame that caused it."""

    ts: float
    frame: int = Field(description="frame that caused it; 0 for a timer (TIME_WAIT expiry)")
    conn: int
    side: str = Field(description="client or server")
    old: str
    new: str
    why: str


class Connection(BaseModel):
    """A TCP connection (one Wireshark tcp.stream) as of a cursor time."""

    id: int
    client: Endpoint
    server: Endpoint
    first_ts: float
    last_ts: float
    packets: int
    bytes: int
    partial: bool = Field(description="picked up mid-stream: no SYN seen")
    notes: list[str] = []
    conn_state: str = Field("OTH", description="Zeek's conn_state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, "
                                               "RSTRH, SH, SHR, OTH)")
    history: str = Field("", description="Zeek's history letters (ShADadFf...; upper case: the originator)")
    tunnel_parents: list[dict] = Field(default_factory=list, exclude=True, description=(
        "the tunnels it came through, as Zeek's tunnel_parents: {tunnel, src, dst[, sport, dport]} with the "
        "outer endpoints (in the summary JSON, only on a connection that came through one)"))


class Counters(BaseModel):
    """Endpoints per state at a cursor time, as ``ss -tan`` counts sockets."""

    counts: dict[str, int]

    def __getitem__(self, state: str) -> int:
        return self.counts.get(state, 0)


class Summary(BaseModel):
    """What ``tcpview summary --json`` prints."""

    source: str
    packets: int
    tcp_packets: int
    fragments: int = Field(0, description="frames held as IP fragments of a datagram a later frame completed")
    skipped: dict[str, int]
    first_ts: float | None
    last_ts: float | None
    at: float | None = None
    counters: dict[str, int]
    connections: list[Connection]
    evicted: dict[str, int] = Field(default_factory=lambda: {"connections": 0, "segments": 0},
                                    description="connections and segments that left to keep within --memory")
