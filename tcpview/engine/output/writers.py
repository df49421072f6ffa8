"""What ``tcpview export`` and the viewer's ``e`` write: the chosen connections' segments
(JSONL, CSV), their frames (pcap, read again from the capture file), their ladders (Mermaid,
PlantUML; SVG is drawn by the UI layer, which has Rich), to an output that is only put in
place once it is complete and never over an existing file unless asked.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ...errors import UserError
from ..timeline.timeline import Timeline

if TYPE_CHECKING:
    from ...sources.merge import CaptureMap

FORMATS = ("jsonl", "csv", "pcap", "mermaid", "plantuml", "svg")
CSV_FIELDS = ("frame", "ts", "conn", "dir", "flags", "seq", "ack", "seq_raw", "ack_raw", "len", "win",
              "client_state", "server_state", "anomalies", "analysis", "ack_rtt", "bytes_in_flight",
              "dup_ack_num", "dup_ack_frame")


@contextlib.contextmanager
def new_file(path: str, force: bool, binary: bool) -> Iterator[IO]:
    """``path`` written in full beside its place first, then moved there; an existing file
    is an error unless ``force``. A failure leaves what was there."""
    if os.path.exists(path) and not force:
        raise UserError(f"{path} exists (--force overwrites it)")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tcpview-", dir=folder)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # as a file made with open() would be, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def with_capture(tl: Timeline, seg: dict) -> dict:
    """A segment's dict with ``capture``, the file its frame came from (as given on the command
    line), when the timeline merges several captures; unchanged otherwise."""
    if tl.captures is not None:
        seg["capture"] = tl.captures.name(seg["frame"])
    return seg


def first_capture(tl: Timeline, cid: int) -> str | None:
    """The capture (file or host) connection ``cid``'s first stored segment came from, when the
    timeline merges several captures; None otherwise, or when none of its segments is kept."""
    caps = tl.captures
    if caps is None:
        return None
    c = tl.conns.get(cid)
    if c is None or not c.n:
        return None
    return caps.name(int(c.record(0)[1]))


def segments_of(tl: Timeline, ids: list[int]) -> Iterator:
    """The segments of connections ``ids``, in frame order."""
    wanted = set(ids)
    for seg in tl.all_segments_in_frame_order():
        if seg.conn in wanted:
            yield seg


def write_text(tl: Timeline, ids: list[int], fmt: str, out: IO, source: str | None = None) -> None:
    """Connections ``ids`` as ``jsonl``, ``csv``, ``mermaid`` or ``plantuml`` text. A JSON
    segment that came through a tunnel or an encapsulation gets its ``"outer"`` layers when
    ``source`` is the one capture file read (they are read from it again); a segment of
    several captures gets its ``"capture"``."""
    caps = tl.captures
    if fmt == "jsonl":
        from .outer import outer_by_frame, with_outer

        outer = outer_by_frame(tl.view(), source, ids) if caps is None else {}
        for seg in segments_of(tl, ids):
            if caps is None:
                out.write(with_outer(seg.model_dump_json(), outer.get(seg.frame)) + "\n")
            else:
                out.write(json.dumps(with_capture(tl, seg.model_dump())) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        fields = CSV_FIELDS if caps is None else (*CSV_FIELDS, "capture")
        w.writerow(fields)
        for seg in segments_of(tl, ids):
            d = with_capture(tl, seg.model_dump())
            w.writerow(["" if d[k] is None else " ".join(d[k]) if isinstance(d[k], list) else d[k] for k in fields])
    elif fmt in ("mermaid", "plantuml"):
        from .diagram import mermaid, plantuml

        out.write((mermaid if fmt == "mermaid" else plantuml)(tl, ids))
    else:
        raise UserError(f"not a text format: {fmt}")


def write_pcap(tl: Timeline, ids: list[int], source: str | CaptureMap, out: IO) -> int:
    """The frames of connections ``ids``, read again from capture file ``source`` (or from
    several captures merged: their map, as the timeline has it; written as a pcapng)."""
    from ...sources.extract import write_frames

    return write_frames(source, [s.frame for s in segments_of(tl, ids)], out)
