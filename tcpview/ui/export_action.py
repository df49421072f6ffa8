"""The viewer's ``e``: export the selected connection (or, with a filter, the filtered ones)
in one of ``tcpview export``'s formats to a file, asked for in the prompt as ``FORMAT FILE``.

The box opens with a proposal (:func:`proposal`): a format the source can give and a file name
in the current directory that no file has yet (``tcpview-CAPTURE-connN.EXT``); a FORMAT alone
gets that name with its own extension. An existing file is never overwritten; the file is
written in a worker thread and the message names its absolute path."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ..engine.output.writers import FORMATS, new_file, write_pcap, write_text
from ..engine.timeline.timeline import Timeline
from ..errors import UserError
from ..sources.merge import CaptureMap
from ..textutil import plural

EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "pcap": "pcap", "mermaid": "mmd", "plantuml": "puml", "svg": "svg"}
"""The file name extension of each export format."""


def source_stem(source) -> str:
    """A short name of the source for file names: the capture file's name without its
    extension (``retransmissions``), else the source's name without its kind (``lo``, ``busy``)."""
    path = getattr(source, "path", None)
    if path and path != "-":
        stem = os.path.splitext(os.path.basename(path))[0]
    else:
        name = str(getattr(source, "name", "") or "source")
        stem = name.split(" ", 1)[1].split(" (", 1)[0] if " " in name else name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:40] or "source"


def default_name(source, ids: list[int], fmt: str, folder: str = ".") -> str:
    """A file name for exporting connections ``ids`` as ``fmt`` that no file in ``folder`` has:
    ``tcpview-CAPTURE-conn3.pcap`` (``-5conns`` for several; ``-2``, ``-3``... when taken)."""
    what = f"conn{ids[0]}" if len(ids) == 1 else f"{len(ids)}conns"
    stem, ext = f"tcpview-{source_stem(source)}-{what}", EXTENSIONS[fmt]
    name, k = f"{stem}.{ext}", 2
    while os.path.lexists(os.path.join(folder, name)):
        name, k = f"{stem}-{k}.{ext}", k + 1
    return name


def default_format(source) -> str:
    """pcap when the source is a capture file (its frames can be read again), else jsonl."""
    path = getattr(source, "path", None)
    return "pcap" if path and path != "-" else "jsonl"


def proposal(source, ids: list[int]) -> str:
    """What the export box opens with: ``FORMAT FILE`` for connections ``ids``."""
    fmt = default_format(source)
    return f"{fmt} {default_name(source, ids, fmt)}" if ids else f"{fmt} "


def parse_request(text: str, name_for: Callable[[str], str] | None = None) -> tuple[str, str]:
    """``pcap out.pcap`` -> ``("pcap", "out.pcap")``; ``csv`` alone -> ``("csv", name_for("csv"))``
    when ``name_for`` proposes names; a bad request raises UserError."""
    parts = text.split(maxsplit=1)
    if len(parts) == 1 and name_for is not None and parts[0].lower() in FORMATS:
        parts.append(name_for(parts[0].lower()))
    if len(parts) != 2 or parts[0].lower() not in FORMATS:
        raise UserError(f"export as FORMAT FILE, FORMAT one of {', '.join(FORMATS)}")
    path = os.path.expanduser(parts[1].strip())
    if os.path.exists(path):
        raise UserError(f"{path} exists: give another name (nothing is overwritten)")
    return parts[0].lower(), path


def export(tl: Timeline, ids: list[int], fmt: str, path: str, source: str | CaptureMap | None) -> str:
    """Write connections ``ids`` as ``fmt`` to ``path``; returns what was done, in words.
    ``source``: the capture file, or several captures' map (pcap exports read their frames
    from them again)."""
    if not ids:
        raise UserError("no connection to export")
    if fmt == "pcap":
        if not source or source == "-" or (isinstance(source, CaptureMap) and source.streams):
            raise UserError("a pcap export reads the frames again from a capture file; this source has none")
        with new_file(path, False, binary=True) as out:
            n = write_pcap(tl, ids, source, out)
        return f"wrote {plural(n, 'frame')} of {plural(len(ids), 'connection')} to {os.path.abspath(path)}"
    with new_file(path, False, binary=False) as out:
        if fmt == "svg":
            from .ladder_svg import ladder_svg

            name = os.path.basename(source or "") if not isinstance(source, CaptureMap) else \
                " ".join(os.path.basename(f) for f in source.files)
            out.write(ladder_svg(tl, ids, f"tcpview {name}".strip()))
        else:
            write_text(tl, ids, fmt, out)
    return f"wrote {plural(len(ids), 'connection')} as {fmt} to {os.path.abspath(path)}"
