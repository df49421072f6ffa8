"""One-line explanations of state changes, in RFC 9293 / teaching terms.

The tracker records a reason with every transition (``tcpview.engine.core.tcp.WHYS``). The UI
shows, for the segment under the ladder's cursor, one line that says why the endpoints'
states changed there. Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.tcp import SIDES, STATE_NAMES, WHYS

# transitions carry their reason by name (``tcpview.engine.core.tcp.WHYS``)
(WHY_SYN, WHY_SYNACK, WHY_HANDSHAKE_ACK, WHY_SIMOPEN, WHY_FIN, WHY_GOT_FIN, WHY_FIN_ACKED,
 WHY_SIMCLOSE, WHY_RST, WHY_REFUSED, WHY_TW_EXPIRED, WHY_FW2_EXPIRED, WHY_MIDSTREAM, WHY_REUSED) = WHYS

# (reason, new state name) -> sentence about the endpoint that changed ("{me}") and its peer.
_ONE: dict[tuple[str, str], str] = {
    (WHY_SYN, "SYN_SENT"): "{me} sent SYN: its application called connect(); it waits in SYN_SENT "
    "for the {peer}'s SYN+ACK",
    (WHY_SYN, "LISTEN"): "{me} must be in LISTEN (its application called listen()) for a SYN to be "
    "answered",
    (WHY_SYNACK, "SYN_RECEIVED"): "{me} answered the SYN with SYN+ACK: the connection is half-open "
    "(SYN_RECEIVED) until the {peer}'s ACK completes the handshake",
    (WHY_SYNACK, "SYN_SENT"): "{me}'s SYN was not captured, but the {peer}'s SYN+ACK shows it was sent "
    "(SYN_SENT)",
    (WHY_HANDSHAKE_ACK, "ESTABLISHED"): "the ACK of the SYN+ACK completes the three-way handshake: "
    "{me} is ESTABLISHED and data can flow",
    (WHY_SIMOPEN, "SYN_RECEIVED"): "the SYNs crossed (simultaneous open): {me} got a SYN while in "
    "SYN_SENT, so it answers and waits in SYN_RECEIVED",
    (WHY_FIN, "FIN_WAIT_1"): "{me} sent FIN: its application called close() or shutdown(); it has "
    "nothing more to send and waits in FIN_WAIT_1 for the ACK",
    (WHY_FIN, "LAST_ACK"): "{me} sent its FIN after the {peer}'s: its application called close(); it "
    "waits in LAST_ACK for the last ACK",
    (WHY_GOT_FIN, "CLOSE_WAIT"): "{me} got FIN: the {peer} is done sending; the {me}'s application must "
    "still call close() — until it does, this socket stays in CLOSE_WAIT",
    (WHY_GOT_FIN, "TIME_WAIT"): "{me} got the {peer}'s FIN after its own FIN: it acks it and waits in "
    "TIME_WAIT for 2*MSL, so a lost last ACK can be sent again and old segments die out",
    (WHY_FIN_ACKED, "FIN_WAIT_2"): "{me}'s FIN was acked: it waits in FIN_WAIT_2 for the {peer}'s FIN "
    "(the {peer} may still send data — a half-close)",
    (WHY_FIN_ACKED, "TIME_WAIT"): "{me}'s FIN was acked after the FINs crossed: CLOSING ends in "
    "TIME_WAIT (2*MSL)",
    (WHY_FIN_ACKED, "CLOSED"): "{me}'s FIN was acked: its side of the connection is fully closed "
    "(LAST_ACK -> CLOSED), with no TIME_WAIT",
    (WHY_SIMCLOSE, "CLOSING"): "the FINs crossed (simultaneous close): {me} got a FIN while waiting for "
    "the ACK of its own, so it is in CLOSING",
    (WHY_RST, "CLOSED"): "RST: the connection is aborted at once on {me} — no FIN exchange and no "
    "TIME_WAIT; unread and unsent data are thrown away",
    (WHY_REFUSED, "CLOSED"): "the SYN was answered with RST: nothing listens on that port, so the "
    "connection is refused (connect() fails with ECONNREFUSED)",
    (WHY_REUSED, "CLOSED"): "a new SYN reused this 4-tuple: the {me}'s old socket is gone (Linux lets a "
    "new connection take over a 4-tuple in TIME_WAIT)",
    (WHY_TW_EXPIRED, "CLOSED"): "{me}'s TIME_WAIT ended after 2*MSL: the socket is gone and the 4-tuple "
    "may be used again",
    (WHY_FW2_EXPIRED, "CLOSED"): "{me}'s FIN_WAIT_2 timed out (Linux tcp_fin_timeout): the {peer} never "
    "sent its FIN, so the orphaned socket is dropped",
    (WHY_MIDSTREAM, "ESTABLISHED"): "the capture starts in the middle of this connection (no SYN seen): "
    "both ends are taken as ESTABLISHED, client and server guessed from the ports",
}

# Reasons that move both ends the same way: one sentence for the pair.
_BOTH: dict[tuple[str, str], str] = {
    (WHY_HANDSHAKE_ACK, "ESTABLISHED"): "the ACK of the SYN+ACK completes the three-way handshake: both "
    "ends are ESTABLISHED and data can flow",
    (WHY_SIMOPEN, "SYN_RECEIVED"): "the SYNs crossed (simultaneous open): each end got a SYN while in "
    "SYN_SENT, so both are in SYN_RECEIVED",
    (WHY_SIMCLOSE, "CLOSING"): "the FINs crossed (simultaneous close): each end got a FIN while waiting "
    "for the ACK of its own, so both are in CLOSING",
    (WHY_RST, "CLOSED"): "{sender} sent RST: the connection is aborted at once on both ends — no FIN "
    "exchange and no TIME_WAIT; unread and unsent data are thrown away",
    (WHY_REFUSED, "CLOSED"): "the server answered the SYN with RST: nothing listens on that port, so the "
    "connection is refused (the client's connect() fails with ECONNREFUSED)",
    (WHY_MIDSTREAM, "ESTABLISHED"): _ONE[(WHY_MIDSTREAM, "ESTABLISHED")],
}


# Short forms for the sender's own move when the receiver's move is explained beside it.
_SHORT: dict[tuple[str, str], str] = {
    (WHY_FIN, "FIN_WAIT_1"): "{me} sent FIN (FIN_WAIT_1: its application closed)",
    (WHY_FIN, "LAST_ACK"): "{me} sent its FIN (LAST_ACK until it is acked)",
}


def _name(state: int | str) -> str:
    return state if isinstance(state, str) else STATE_NAMES[state]


def sentence(why: str, side: int, new: int | str, sender: int | None = None) -> str:
    """One sentence about ``side`` (0 client, 1 server) moving to ``new`` for reason ``why``."""
    new_name = _name(new)
    me, peer = SIDES[side], SIDES[1 - side]
    text = _ONE.get((why, new_name))
    if text is None:
        return f"{me} is now {new_name} ({why.replace('_', ' ')})"
    return text.format(me=me, peer=peer, sender=SIDES[sender] if sender is not None else "an end")


def explain(transitions: Sequence[tuple[int, int | str, int | str, str]], sender: int | None = None) -> str:
    """One line saying why the states changed at one ladder row.

    Args:
        transitions: ``(side, old, new, why)`` for every state change the row caused
            (side 0 is the client, 1 the server); in the order the tracker recorded them.
        sender: which side sent the segment (None for a timer row).

    Returns:
        The sentence(s), first letter capitalised and ending with a full stop; ``""`` when
        the row changed no state.
    """
    if not transitions:
        return ""
    parts: list[str] = []
    done: set[int] = set()
    if len(transitions) >= 2:
        a, b = transitions[0], transitions[1]
        if a[3] == b[3] and _name(a[2]) == _name(b[2]) and a[0] != b[0]:
            both = _BOTH.get((a[3], _name(a[2])))
            if both is not None:
                parts.append(both.format(sender=SIDES[sender] if sender is not None else "an end"))
                done.update((0, 1))
        elif {a[3], b[3]} == {WHY_SYN} and {_name(a[2]), _name(b[2])} == {"SYN_SENT", "LISTEN"}:
            snd = a if _name(a[2]) == "SYN_SENT" else b
            me, peer = SIDES[snd[0]], SIDES[1 - snd[0]]
            parts.append(f"{me} sent SYN: its application called connect() and waits in SYN_SENT for "
                         f"the {peer}'s SYN+ACK; the {peer} must be in LISTEN (its application called "
                         f"listen())")
            done.update((0, 1))
        else:
            short = _SHORT.get((a[3], _name(a[2])))
            if short is not None and a[0] == sender:
                me = SIDES[a[0]]
                parts.append(short.format(me=me) + "; " + sentence(b[3], b[0], b[2], sender))
                done.update((0, 1))
    for i, (side, _old, new, why) in enumerate(transitions):
        if i < 2 and done:
            continue
        parts.append(sentence(why, side, new, sender))
    text = ". ".join(p[0].upper() + p[1:] for p in parts)
    return text + "."
