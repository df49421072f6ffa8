"""What a segment's analysis flags and anomalies mean, one sentence each, for the line under
the ladder (the flags are Wireshark's ``tcp.analysis.*``; the sentences say what Wireshark's
expert info says, for someone reading a ladder). Nothing here imports Textual."""

from __future__ import annotations

from ..core.tcp import analysis_names, anomaly_names

MEANINGS: dict[str, str] = {
    # Wireshark's analysis flags (packet-tcp.c, tcp_analyze_sequence_number)
    "retransmission": "retransmission: the sender sends again bytes (or a SYN/FIN) it has sent before — the "
    "first copy or its ACK was lost, or took longer than its retransmission timer",
    "fast_retransmission": "fast retransmission: sent again right after duplicate ACKs asked for these bytes, "
    "without waiting for the retransmission timer",
    "spurious_retransmission": "spurious retransmission: these bytes were already acknowledged — the first copy "
    "arrived, so resending them was not needed",
    "out_of_order": "out of order: a segment from before the highest sequence number seen, too soon after it to "
    "be a retransmission — the network delivered it late",
    "dup_ack": "duplicate ACK: the receiver acknowledges the same byte again with nothing new — a segment after "
    "a gap arrived, and it is asking for the missing bytes (three of these trigger a fast retransmission)",
    "lost_segment": "previous segment not captured: the sequence number jumps past bytes the capture never saw "
    "(lost before the capture point, or missed by it; common at the start of a capture)",
    "ack_lost_segment": "ACKed segment that wasn't captured: this acknowledges bytes the capture never saw "
    "(the capture missed them; common at the start of a capture)",
    "zero_window": "zero window: the sender of this segment has no room left in its receive buffer — the peer "
    "must stop sending until a window update (its application is not reading fast enough)",
    "window_probe": "zero window probe: a byte sent into the peer's zero window, to learn when it opens again",
    "window_probe_ack": "ACK of a zero window probe: the window is still closed",
    "window_full": "window full: this segment fills the receiver's whole advertised window — the sender must "
    "wait for an ACK before it sends more",
    "window_update": "window update: an ACK that only opens the window — the receiver made room in its buffer",
    "keep_alive": "keep-alive: a segment one byte behind the next sequence number, sent on an idle connection "
    "to check that the peer is still there",
    "keep_alive_ack": "ACK of a keep-alive: the peer is still there",
    "reused_ports": "ports reused: a new connection on the same addresses and ports as an earlier one in this "
    "capture",
    # anomalies a passive observer can tell
    "syn_fin": "SYN and FIN together: never valid — scanners and OS fingerprinting send it",
    "syn_rst": "SYN and RST together: never valid",
    "fin_no_ack": "FIN without ACK: invalid once a connection is open — a FIN scan sends it",
    "no_flags": "no flags at all: never valid — a NULL scan sends it",
    "xmas": "FIN, PSH and URG together: an Xmas scan",
    "bad_handshake_ack": "bad handshake ACK: during the handshake this acknowledges a number the peer's SYN "
    "does not account for, so no state moves (a real stack answers with RST)",
    "rst_out_of_window": "RST out of window: its sequence number is outside what the receiver accepts, so a "
    "real stack ignores it (RFC 5961) and no state moves",
}


def explain_flags(analysis: int, anomaly: int, dup_ack: int = 0) -> str:
    """What a segment's analysis flag bits and anomaly bits mean: one sentence per flag
    (a fast or spurious retransmission is not also explained as a plain one, as the ladder
    does not tag it one), first letter capitalised; ``""`` when it has none.

    Args:
        analysis: the segment's analysis bits (:class:`~tcpview.engine.core.tcp.Analysis`).
        anomaly: its anomaly bits (:class:`~tcpview.engine.core.tcp.Anomaly`).
        dup_ack: which duplicate ACK of a run it is (0: not one), said as Wireshark's ``#n``.
    """
    names = analysis_names(analysis)
    if "retransmission" in names and ("fast_retransmission" in names or "spurious_retransmission" in names):
        names.remove("retransmission")
    parts = []
    for name in [*names, *anomaly_names(anomaly)]:
        text = MEANINGS.get(name, name.replace("_", " "))
        if name == "dup_ack" and dup_ack:
            text = text.replace("duplicate ACK:", f"duplicate ACK #{dup_ack}:", 1)
        parts.append(text[0].upper() + text[1:] + ".")
    return " ".join(parts)
