"""scapy's full dissection of one frame, for the detail pane.

It is slow and runs only for the one frame a user opens. Nothing here imports Textual; the
text returned may contain anything the network sent, so callers must show it as plain text
(``rich.text.Text``), never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..textutil import safe


@dataclass
class Dissection:
    """scapy's view of one frame: the layer summary, the field tree and a hex dump."""

    summary: str
    show: str
    hexdump: str


def dissect(linktype: int, data: bytes) -> Dissection:
    """Dissect one frame with scapy (``Packet.show(dump=True)`` and ``hexdump(dump=True)``).

    Control characters are replaced by visible escapes (``tcpview.textutil.safe``); the
    result is still network text and must not be interpreted as markup.
    """
    import scapy.layers.all  # noqa: F401 - registers the link-layer types
    from scapy.config import conf
    from scapy.packet import Raw
    from scapy.utils import hexdump

    cls = conf.l2types.num2layer.get(linktype)
    if cls is None and linktype == 14:
        cls = conf.l2types.num2layer.get(101)
    if cls is None:
        cls = Raw
    try:
        pkt = cls(data)
        show = pkt.show(dump=True) or ""
        summary = pkt.summary()
    except Exception as e:
        pkt = Raw(data)
        show = f"(scapy could not dissect this frame: {e})\n"
        summary = "undissected frame"
    dump = hexdump(data, dump=True) or ""
    return Dissection(summary=safe(summary), show=safe(show), hexdump=safe(dump))
