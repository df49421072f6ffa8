"""A small capture with known states, built with scapy, shared by the UI tests (checked by
test_ui_capture.py); and what the UI tests read from a running app through Textual's public
API: the notifications it raised, what its screen shows, the command palette's choice.

Times are seconds after T0. From the TCP rules (RFC 9293), as a passive observer sees them:

conn 0  10.0.0.1:40000 -> 10.0.0.2:80    handshake, data, client closes, server never does:
        0.0 SYN, 0.1 SYN+ACK, 0.2 ACK (both ESTABLISHED), 0.3 data len 5, 0.4 ACK,
        0.5 client FIN (client FIN_WAIT_1, server CLOSE_WAIT), 0.6 ACK of it (FIN_WAIT_2).
conn 1  10.0.0.1:40001 -> 10.0.0.2:443   full close, client closes first:
        1.0 SYN, 1.1 SYN+ACK, 1.2 ACK, 1.3 server data len 7, 1.4 ACK,
        1.5 client FIN (FIN_WAIT_1 / CLOSE_WAIT), 1.6 server FIN+ACK that acks it
        (server LAST_ACK, client TIME_WAIT), 1.7 last ACK (server CLOSED).
conn 2  10.0.0.3:50000 -> 10.0.0.2:8080  refused: 2.0 SYN, 2.1 RST+ACK (both CLOSED).
conn 3  10.0.0.4:50001 -> 10.0.0.2:22    half-open: 2.5 SYN, 2.6 SYN+ACK
        (client SYN_SENT, server SYN_RECEIVED) and nothing more.
With ``late=True`` one more SYN at 70.0 (conn 4, 10.0.0.5:50002 -> 10.0.0.2:80) lets capture
time pass conn 1's TIME_WAIT deadline (1.6 + 60 s), so a timer row appears in its ladder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import wait_until

T0 = 1_700_000_000.0

C1, SRV = "10.0.0.1", "10.0.0.2"


def frames(late: bool = False) -> list:
    """The frames of the capture, as scapy packets with ``.time`` set."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    pkts = []

    def add(t: float, src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int,
            data: bytes = b"") -> None:
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / TCP(
            sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=1000)
        if data:
            p = p / Raw(data)
        p.time = T0 + t
        pkts.append(p)

    # conn 0: client ISN 1000, server ISN 5000
    a = (C1, SRV, 40000, 80)
    b = (SRV, C1, 80, 40000)
    add(0.0, *a, "S", 1000, 0)
    add(0.1, *b, "SA", 5000, 1001)
    add(0.2, *a, "A", 1001, 5001)
    add(0.3, *a, "PA", 1001, 5001, b"hello")
    add(0.4, *b, "A", 5001, 1006)
    add(0.5, *a, "FA", 1006, 5001)
    add(0.6, *b, "A", 5001, 1007)
    # conn 1: client ISN 2000, server ISN 9000
    a = (C1, SRV, 40001, 443)
    b = (SRV, C1, 443, 40001)
    add(1.0, *a, "S", 2000, 0)
    add(1.1, *b, "SA", 9000, 2001)
    add(1.2, *a, "A", 2001, 9001)
    add(1.3, *b, "PA", 9001, 2001, b"[b]ok\x1b]")
    add(1.4, *a, "A", 2001, 9008)
    add(1.5, *a, "FA", 2001, 9008)
    add(1.6, *b, "FA", 9008, 2002)
    add(1.7, *a, "A", 2002, 9009)
    # conn 2: refused
    add(2.0, "10.0.0.3", SRV, 50000, 8080, "S", 300, 0)
    add(2.1, SRV, "10.0.0.3", 8080, 50000, "RA", 0, 301)
    # conn 3: half-open
    add(2.5, "10.0.0.4", SRV, 50001, 22, "S", 400, 0)
    add(2.6, SRV, "10.0.0.4", 22, 50001, "SA", 7000, 401)
    if late:
        add(70.0, "10.0.0.5", SRV, 50002, 80, "S", 500, 0)
    return pkts


def write_capture(path: Path, late: bool = False) -> Path:
    """Write the capture to ``path`` (pcap, Ethernet) and return the path."""
    from scapy.utils import wrpcap

    wrpcap(str(path), frames(late))
    return path


def lossy_frames() -> list:
    """Four connections (Flow frames): 0 clean, 1 loses a segment past the capture point (three
    duplicate ACKs, a late retransmission), 2 clean, 3 a zero window."""
    from helpers import Flow

    frames: list = []
    a = Flow(cport=41000, t0=1.0, frames=frames)
    a.handshake()
    a.c("PA", b"x" * 100)
    a.s("A")
    b = Flow(cport=41001, t0=2.0, frames=frames)
    b.handshake()
    b.c("PA", b"1" * 100)  # lost beyond the capture point: the server still acks before it
    b.c("PA", b"2" * 100)
    b.s("A", ack=b.nxt[0] - 200)  # acks only up to the first: three duplicate ACKs
    b.s("A", ack=b.nxt[0] - 200)
    b.s("A", ack=b.nxt[0] - 200)
    b.t += 0.5
    b.c("PA", b"1" * 100, seq=b.nxt[0] - 200)  # the retransmission, late
    b.s("A")
    c = Flow(cport=41002, t0=3.0, frames=frames)
    c.handshake()
    d = Flow(cport=41003, t0=4.0, frames=frames)
    d.handshake()
    d.c("PA", b"y" * 10)
    d.s("A", win=0)  # the receiver's window is full: a zero window
    frames.sort(key=lambda f: f[0])
    return frames


def arrive_at_once(app: Any, *typed: Any) -> None:
    """Put keys (one character each: letters, digits, ``/:.``; or ``events.Key`` s) and pastes in the app's queue together, as the terminal driver
    does with what one read of the terminal held (``tmux send-keys / s t a t e``, a paste
    right after a key). ``pilot.press`` waits for the app to be idle after each key, which
    hides what this shows: the keys behind the one that opens the box are queued before it
    acts."""
    from textual import events

    names = {"/": "slash", ":": "colon", ".": "full_stop"}
    for item in typed:
        event = item if isinstance(item, (events.Paste, events.Key)) else events.Key(names.get(item, item), item)
        event.set_sender(app)  # as the driver's events are
        app.post_message(event)


# -- reading a running app ---------------------------------------------------------------------
class Notes:
    """The notifications an app raises, collected from Textual's ``Notify`` messages: pass it
    as ``app.run_test(message_hook=notes)``, then iterate it (each a ``Notification`` with
    ``message``, ``title`` and ``severity``)."""

    def __init__(self) -> None:
        self.raised: list[Any] = []

    def __call__(self, message: Any) -> None:
        from textual.notifications import Notify

        if isinstance(message, Notify):
            self.raised.append(message.notification)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.raised)


def screen_strips(app: Any) -> list:
    """The app's screen as it is drawn now, one ``Strip`` per row: each cell taken from the
    widget on top there (``Screen.get_widget_at``), as that widget renders the line."""
    from textual.errors import NoWidget
    from textual.geometry import Region
    from textual.strip import Strip

    screen = app.screen
    width, height = screen.size

    def on_top(x: int, y: int) -> tuple | None:
        try:
            return screen.get_widget_at(x, y)
        except NoWidget:
            return None

    rows = []
    for y in range(height):
        parts, x = [], 0
        while x < width:
            top = on_top(x, y)
            end = x + 1
            while end < width and on_top(end, y) == top:  # a run of cells of one widget
                end += 1
            if top is None:
                parts.append(Strip.blank(end - x))
            else:
                widget, region = top
                line = widget.render_lines(Region(0, y - region.y, region.width, 1))[0]
                parts.append(line.crop(x - region.x, end - region.x))
            x = end
        rows.append(Strip.join(parts))
    return rows


async def palette_offers(app: Any, pilot: Any, text: str) -> bool:
    """Wait until the open command palette has gathered its hits for what was typed and
    highlights one holding ``text`` (case aside): what Enter then runs."""
    from textual.command import CommandList, CommandPalette

    def offered() -> bool:
        screen = app.screen
        if not isinstance(screen, CommandPalette) or any(not w.is_finished for w in app.workers if w.node is screen):
            return False
        option = screen.query_one(CommandList).highlighted_option
        return option is not None and text.lower() in (option.hit.text or "").lower()

    return await wait_until(offered, 10, 0.02, pilot.pause)
