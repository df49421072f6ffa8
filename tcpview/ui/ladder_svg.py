"""Ladders as tcpview prints them, coloured by segment kind, as an SVG (Rich's export): what
``tcpview export --format svg`` and the viewer's ``e`` write. Rich only, no Textual."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from ..engine.output.ladder import ladder_rows, render_text
from ..engine.timeline.timeline import Timeline

_KIND_COLOURS = {"syn": "#57A5E2", "fin": "#FFC473", "rst": "#D17E92", "data": "#8AD4A1", "ack": "#A0A0A0"}


def ladder_svg(tl: Timeline, ids: list[int], title: str) -> str:
    """The ladders of connections ``ids`` as one SVG."""
    console = Console(record=True, width=120, file=io.StringIO(), color_system="truecolor")
    for cid in ids:
        lines = render_text(tl, cid, width=120).splitlines()
        rows = ladder_rows(tl, cid)
        console.print(Text(lines[0], style="bold"))
        console.print(Text(lines[1], style="dim"))
        for line, row in zip(lines[2:], rows, strict=False):
            f = row.flags
            kind = ("rst" if f & 0x04 else "syn" if f & 0x02 else "fin" if f & 0x01 else
                    "data" if "len=" in row.label else "ack")
            console.print(Text(line, style=_KIND_COLOURS[kind] if row.seg >= 0 else "italic"))
        console.print()
    return console.export_svg(title=title)
