"""Short text forms of numbers, durations and capture times for narrow columns, and the
reverse for a time the user types."""

from __future__ import annotations


def count(n: int) -> str:
    """``999``, ``12.3k``, ``4.5M``, ``1.2G``."""
    if n < 10_000:
        return str(n)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            v = n / div
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return str(n)


def duration(s: float) -> str:
    """``0.25s``, ``12s``, ``3m``, ``2h``, ``4d`` (never more than 5 characters)."""
    if s < 0:
        s = 0.0
    if s < 10:
        return f"{s:.2f}s" if s < 1 else f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def rtt(s: float) -> str:
    """A round-trip time in at most 6 cells: ``85us``, ``2.3ms``, ``120ms``, ``1.5s``."""
    if s < 0.001:
        return f"{s * 1e6:.0f}us"
    if s < 0.01:
        return f"{s * 1e3:.1f}ms"
    if s < 1:
        return f"{s * 1e3:.0f}ms"
    return f"{s:.1f}s"


def offset(s: float, total: float | None = None) -> str:
    """A position in a capture: ``01:02.345``; hours, then days, added when the capture is that long."""
    if s < 0:
        s = 0.0
    span = total if total is not None else s
    if span >= 86400:
        d, rest = divmod(int(s), 86400)
        h, rest = divmod(rest, 3600)
        mins, secs = divmod(rest, 60)
        return f"{d}d {h:02d}:{mins:02d}:{secs:02d}"
    m, sec = divmod(s, 60)
    if span >= 3600:
        h, m = divmod(int(m), 60)
        return f"{h}:{m:02d}:{sec:06.3f}"
    return f"{int(m):02d}:{sec:06.3f}"


def parse_time(text: str) -> float:
    """Seconds from ``1.5``, ``90``, ``1:30`` or ``1:02:03.5``; raises ValueError."""
    text = text.strip().rstrip("s")
    if not text:
        raise ValueError("empty")
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(text)
    total = 0.0
    for p in parts:
        total = total * 60 + float(p)
    if total < 0 or total != total:
        raise ValueError(text)
    return total


def short_source(name: str) -> str:
    """``replay /long/path/to/x.pcap`` -> ``replay x.pcap`` (the path's last part only)."""
    import os.path

    mode, sep, rest = name.partition(" ")
    if sep and ("/" in rest or "\\" in rest):
        return f"{mode} {os.path.basename(rest)}"
    return name


def ellipsize_left(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells keeping its end (the port): ``…0.0.5:41830``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[-width:] if width > 0 else ""
    return "…" + text[-(width - 1):]


def ellipsize(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells keeping its start."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + "…"


def ellipsize_path(path: str, width: int) -> str:
    """Cut a file's path to ``width`` cells in its middle, keeping its start and its file name
    whole (``/home/me/…/today.pcap``); a name longer than that loses its own middle, never its
    end (``ring_00…_2026.pcap``)."""
    if len(path) <= width:
        return path
    cut = max(path.rfind("/"), path.rfind("\\"))
    name = path[cut:]  # with its separator ("/today.pcap"), or the whole when there is none
    start = width - len(name) - 1
    if start >= 4:  # as much of the start as fits, an ellipsis, the name
        return path[:start] + "…" + name
    if start >= 0:  # too little of the start to tell anything
        return "…" + name
    name = path[cut + 1:]
    if len(name) < width:
        return "…" + name
    if width <= 1:
        return name[-width:] if width > 0 else ""
    keep = width - 1
    return name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2):]


def with_mark(title: str, mark: str, width: int) -> str:
    """``title`` and a sort mark (``▲``) in ``width`` cells: the title is cut, never the mark
    (``client sta…▲``)."""
    if not mark:
        return ellipsize(title, width)
    return ellipsize(title, max(0, width - len(mark))) + mark
