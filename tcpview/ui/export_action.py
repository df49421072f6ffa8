"""The viewer's ``e``: export the selected connection (or, with a filter, the filtered ones)
in one of ``tcpview export``'s formats to a file, asked for in the prompt as ``FORMAT FILE``.
An existing file is never overwritten; the file is written in a worker thread."""

from __future__ import annotations

import os

from ..engine.output.writers import FORMATS, new_file, write_pcap, write_text
from ..engine.timeline.timeline import Timeline
from ..errors import UserError


def parse_request(text: str) -> tuple[str, str]:
    """``pcap out.pcap`` -> ``("pcap", "out.pcap")``; a bad request raises UserError."""
    parts = text.split(maxsplit=1)
    if len(parts) != 2 or parts[0].lower() not in FORMATS:
        raise UserError(f"export as FORMAT FILE, FORMAT one of {', '.join(FORMATS)}")
    path = os.path.expanduser(parts[1].strip())
    if os.path.exists(path):
        raise UserError(f"{path} exists: give another name (nothing is overwritten)")
    return parts[0].lower(), path


def export(tl: Timeline, ids: list[int], fmt: str, path: str, source: str | None) -> str:
    """Write connections ``ids`` as ``fmt`` to ``path``; returns what was done, in words.
    ``source``: the capture file (pcap exports read their frames from it again)."""
    if not ids:
        raise UserError("no connection to export")
    if fmt == "pcap":
        if not source or source == "-":
            raise UserError("a pcap export reads the frames again from a capture file; this source has none")
        with new_file(path, False, binary=True) as out:
            n = write_pcap(tl, ids, source, out)
        return f"wrote {n} frames of {len(ids)} connection(s) to {path}"
    with new_file(path, False, binary=False) as out:
        if fmt == "svg":
            from .ladder_svg import ladder_svg

            out.write(ladder_svg(tl, ids, f"tcpview {os.path.basename(source or '')}".strip()))
        else:
            write_text(tl, ids, fmt, out)
    return f"wrote {len(ids)} connection(s) as {fmt} to {path}"
