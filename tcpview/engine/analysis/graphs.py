"""The shape of a connection: Wireshark's TCP stream graphs from the store's columns.

- ``tseq`` (time-sequence, Stevens): each data segment of one direction as a dot at its time
  and sequence number; ``tcptrace``: each as a bar from its first byte to its last, with the
  other side's ACK line, the receive-window edge (ACK + window) above it and the SACK blocks it
  reported (read from the frames again: the store keeps only how many bytes they cover).
  Retransmissions and out-of-order segments are a series of their own.
- ``throughput``: each direction's payload bytes per second over a moving window.
- ``rtt``: each ACK's round-trip time (``ack_rtt``) at its time.
- ``window``: each direction's advertised receive window (scaled) over time.

:class:`Graph` holds the series as numpy arrays (built once per connection);
:func:`render` draws any x range of them into a grid of braille cells (2 x 4 dots a cell) in
a few numpy passes, so a graph of 100k points draws in milliseconds. Nothing here knows
about terminals: the CLI prints the cells, the UI turns them into strips, :func:`svg`
writes them as an SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core import columns as col
from ..core.passes import seg_fields
from ..core.tcp import A_OUT_OF_ORDER, A_RETRANS

KINDS = ("tseq", "tcptrace", "throughput", "rtt", "window")


@dataclass
class Series:
    """Points (x seconds from the connection's start, y) of one kind, drawn in one colour;
    ``y2`` (when set) makes each point a bar from y to y2."""

    name: str
    x: np.ndarray
    y: np.ndarray
    y2: np.ndarray | None = None

    def span(self, x0: float, x1: float) -> tuple[int, int]:
        """The index range of the points with x0 <= x <= x1 (x is in time order)."""
        return int(np.searchsorted(self.x, x0, side="left")), int(np.searchsorted(self.x, x1, side="right"))


@dataclass
class Graph:
    """One graph of one connection: its series, what the axes measure, and their ranges."""

    kind: str
    title: str
    x_unit: str
    y_unit: str
    series: list[Series] = field(default_factory=list)

    def x_range(self) -> tuple[float, float]:
        xs = [s.x for s in self.series if len(s.x)]
        if not xs:
            return 0.0, 1.0
        lo, hi = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
        return (lo, hi) if hi > lo else (lo, lo + 1e-3)

    def y_range(self, x0: float, x1: float) -> tuple[float, float]:
        """The y range of the points between x0 and x1 (all of them when none are)."""
        lo, hi = np.inf, -np.inf
        for s in self.series:
            a, b = s.span(x0, x1)
            if a == b:
                continue
            lo = min(lo, float(s.y[a:b].min()))
            hi = max(hi, float((s.y if s.y2 is None else s.y2)[a:b].max()))
        if lo == np.inf:
            return 0.0, 1.0
        if hi > lo:
            return lo, hi
        pad = max(0.5, abs(lo) / 10)  # a flat line: room around it that the axis's labels tell apart
        return lo - pad, hi + pad


def _columns(tl, cid: int):
    """Segment columns of connection cid: times from its start, and frame, seq, ack, len,
    window (scaled), flags, dir, analysis bits; seq and ack relative."""
    c = tl.conns[cid]
    v = c.view
    rows = c.rows
    f = np.zeros((len(rows), 9), dtype=np.int64)
    seg_fields(v.segs, rows, f)
    ln = f[:, 3].copy()
    for j in np.flatnonzero(ln == col.LONG_LEN).tolist():
        ln[j] = v.seg_len(int(rows[j]))
    d = f[:, 6]
    base = c.conn_record["seqbase"].astype(np.int64)
    seq = (f[:, 1] - base[d]) & 0xFFFFFFFF
    ack = (f[:, 2] - base[1 - d]) & 0xFFFFFFFF
    ts = v.segs.ts[rows].astype(np.float64) - c.first_ts
    win = f[:, 4] << f[:, 7]
    return c, ts, seq, ack, ln, win, f[:, 5], d, f[:, 8]


def busier_direction(tl, cid: int) -> int:
    """The direction (0: client to server) that sent more payload."""
    _c, _ts, _seq, _ack, ln, _win, _fl, d, _ana = _columns(tl, cid)
    return int(ln[d == 1].sum() > ln[d == 0].sum())


def build(tl, cid: int, kind: str, direction: int | None = None, window: float | None = None,
          frames=None) -> Graph:
    """Graph ``kind`` of connection ``cid`` (``direction``: the data direction of a tseq
    graph, the busier one by default; ``window``: throughput's averaging time; ``frames``:
    where a tcptrace graph reads its SACK blocks from, see :func:`sack_blocks`)."""
    c, ts, seq, ack, ln, win, fl, d, ana = _columns(tl, cid)
    name = f"#{c.id} {c.client_text()} → {c.server_text()}"
    if kind in ("tseq", "tcptrace"):
        fwd = busier_direction(tl, cid) if direction is None else direction
        ends = (c.client_text(), c.server_text())
        # the title names the data direction drawn: the server's data reads server → client
        g = Graph(kind, f"#{c.id} {ends[fwd]} → {ends[1 - fwd]}  sequence numbers "
                  f"({'tcptrace' if kind == 'tcptrace' else 'Stevens'})", "s", "bytes")
        data = (d == fwd) & (ln > 0)
        bad = data & ((ana & (A_RETRANS | A_OUT_OF_ORDER)) != 0)
        good = data & ~bad
        if kind == "tcptrace":  # the other side's ACK line and window edge
            back = (d != fwd) & ((fl & 0x10) != 0)
            g.series.append(Series("window", ts[back], (ack[back] + win[back]).astype(np.float64)))
            g.series.append(Series("ack", ts[back], ack[back].astype(np.float64)))
            blocks = sack_blocks(tl, cid, frames, fwd) if frames is not None else None
            if blocks is not None:
                g.series.append(blocks)
        for nm, m in (("data", good), ("retransmission", bad)):
            y = seq[m].astype(np.float64)
            g.series.append(Series(nm, ts[m], y, y + ln[m] if kind == "tcptrace" else None))
        return g
    if kind == "throughput":
        g = Graph(kind, f"{name}  throughput", "s", "bytes/s")
        span = float(ts[-1] - ts[0]) if len(ts) else 0.0
        w = window if window else max(span / 50.0, 1e-3)
        for dd, nm in ((0, "client → server"), (1, "server → client")):
            m = d == dd
            x, b = ts[m], ln[m].astype(np.float64)
            cum = np.concatenate(([0.0], np.cumsum(b)))
            start = np.searchsorted(x, x - w, side="right")
            g.series.append(Series(nm, x, (cum[1:] - cum[start]) / w))
        return g
    if kind == "rtt":
        g = Graph(kind, f"{name}  round-trip time of each ACK", "s", "ms")
        acked, _bif = c.numbers()
        i = np.flatnonzero(acked >= 0)
        rtt = (ts[i] - ts[acked[i]]) * 1000.0
        for dd, nm in ((0, "ACKs from the client"), (1, "ACKs from the server")):
            m = d[i] == dd
            g.series.append(Series(nm, ts[i][m], rtt[m]))
        return g
    if kind == "window":
        g = Graph(kind, f"{name}  advertised receive window", "s", "bytes")
        for dd, nm in ((0, "client's window"), (1, "server's window")):
            m = d == dd
            g.series.append(Series(nm, ts[m], win[m].astype(np.float64)))
        return g
    raise ValueError(f"unknown graph kind {kind!r} ({', '.join(KINDS)})")


def sack_blocks(tl, cid: int, frames, fwd: int) -> Series | None:
    """The SACK blocks the other side reported about direction ``fwd``'s data, as bars at
    their ACK's time (``frames``: the capture file, or a frame number -> ``(linktype,
    bytes)`` getter, to read the blocks from the frames again; the store keeps only how many
    bytes they cover)."""
    from ..core.decode import decode
    from ..core.tcpopts import parse_options

    c = tl.conns[cid]
    v = c.view
    if not v.n["sack"]:
        return None
    rows = c.rows
    pairs = v.sack[: v.n["sack"]]
    at = np.searchsorted(pairs[:, 0], rows)
    hit = (at < len(pairs)) & (pairs[np.minimum(at, len(pairs) - 1), 0] == rows)
    idx = np.flatnonzero(hit)
    idx = idx[col.seg_dir(v.segs.fl[rows[idx]].astype(np.int64)) != fwd]
    if not len(idx):
        return None
    numbers = v.segs.frame[rows[idx]].astype(np.int64).tolist()
    if not callable(frames):  # a capture file, or several merged (their CaptureMap)
        from ...sources.extract import read_frames

        found = read_frames(frames, numbers)
        get = lambda n: (found[n].linktype, found[n].data) if n in found else None  # noqa: E731
    else:
        get = frames
    base = int(c.conn_record["seqbase"][fwd])
    xs: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for i, n in zip(idx.tolist(), numbers, strict=True):
        got = get(n)
        if got is None:
            continue
        lt, raw = got
        fields = decode(raw, 0, len(raw), len(raw), lt)
        if isinstance(fields, str):
            continue
        for left, right in parse_options(raw, fields[10] + 20, fields[10] + fields[11]).get("sack", []):
            xs.append(float(v.segs.ts[rows[i]]) - c.first_ts)
            lo.append(float((left - base) & 0xFFFFFFFF))
            hi.append(float((right - base) & 0xFFFFFFFF))
    if not xs:
        return None
    return Series("sack", np.array(xs), np.array(lo), np.array(hi))


_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int64)


@dataclass
class Canvas:
    """Braille cells: ``bits`` the dots of each cell, ``owner`` which series drew it last
    (-1: empty); rows top to bottom."""

    bits: np.ndarray
    owner: np.ndarray
    x0: float
    x1: float
    y0: float
    y1: float

    def text_rows(self) -> list[str]:
        return [self.text_rows_at(r) for r in range(self.bits.shape[0])]

    def text_rows_at(self, r: int) -> str:
        """Row r as text: a braille character per cell, a space where no dot is."""
        chars = np.where(self.bits[r] > 0, self.bits[r] + 0x2800, 0x20).astype(np.uint32)
        return chars.tobytes().decode("utf-32-le")


def render(g: Graph, width: int, height: int, x0: float | None = None, x1: float | None = None) -> Canvas:
    """Draw the graph's points between x0 and x1 (all by default) into width x height cells,
    y scaled to what is visible."""
    gx0, gx1 = g.x_range()
    x0 = gx0 if x0 is None else x0
    x1 = gx1 if x1 is None else x1
    if x1 <= x0:
        x1 = x0 + 1e-6
    y0, y1 = g.y_range(x0, x1)
    W, H = max(1, width) * 2, max(1, height) * 4
    ncell = width * height
    hits = np.zeros(ncell * 8, dtype=np.int64)  # per cell, per dot: points there
    owner = np.full(ncell, -1, dtype=np.int64)
    sx, sy = (W - 1) / (x1 - x0), (H - 1) / (y1 - y0)
    for k, s in enumerate(g.series):
        a, b = s.span(x0, x1)
        if a == b:
            continue
        px = np.clip(np.rint((s.x[a:b] - x0) * sx).astype(np.int64), 0, W - 1)
        py = np.clip(np.rint((y1 - s.y[a:b]) * sy).astype(np.int64), 0, H - 1)
        if s.y2 is not None:  # bars: every dot row from y2 (top) down to y
            top = np.clip(np.rint((y1 - s.y2[a:b]) * sy).astype(np.int64), 0, H - 1)
            n = py - top + 1
            px = np.repeat(px, n)
            py = np.repeat(top, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
        cell = (py >> 2) * width + (px >> 1)
        hits += np.bincount(cell * 8 + (py & 3) * 2 + (px & 1), minlength=ncell * 8)
        owner[cell] = k
    bits = (hits.reshape(ncell, 8) > 0) @ _DOT.ravel()
    return Canvas(bits.reshape(height, width), owner.reshape(height, width), x0, x1, y0, y1)


def tick(v: float) -> str:
    """An axis number, short: 1.5k, 2.3M, 0.012."""
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def text(g: Graph, width: int, height: int) -> str:
    """The graph as text in a terminal of width x height: title, y axis, braille, x axis."""
    label_w = 8
    cw, ch = max(10, width - label_w - 1), max(4, height - 4)
    cv = render(g, cw, ch)
    out = [g.title]
    rows = cv.text_rows()
    for r, line in enumerate(rows):
        y = cv.y1 - (cv.y1 - cv.y0) * r / max(1, ch - 1)
        lab = tick(y) if r in (0, ch // 2, ch - 1) else ""
        out.append(f"{lab:>{label_w}}┤{line}".rstrip())
    out.append(" " * label_w + "└" + "─" * cw)
    left, right = f"{tick(cv.x0)} {g.x_unit}", f"{tick(cv.x1)} {g.x_unit}"
    out.append(" " * (label_w + 1) + left + right.rjust(cw - len(left)))
    out.append(" " * (label_w + 1) + f"y: {g.y_unit};  " + ", ".join(s.name for s in g.series))
    return "\n".join(out)


_SVG_COLOURS = ("#9a9a9a", "#7fb069", "#6fa8dc", "#d17e92", "#e6aa68")


def svg(g: Graph, width: int = 900, height: int = 500) -> str:
    """The graph as an SVG: points (or bars) of each series in its colour, with axes."""
    from xml.sax.saxutils import escape

    x0, x1 = g.x_range()
    y0, y1 = g.y_range(x0, x1)
    left, bottom, top, right = 70, 40, 30, 20
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return left + (x - x0) / (x1 - x0) * pw

    def py(y):
        return top + (y1 - y) / (y1 - y0) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="#1e1e1e"/>',
             f'<text x="{left}" y="18" fill="#e0e0e0">{escape(g.title)}</text>',
             f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>']
    for frac in (0.0, 0.5, 1.0):
        yv, xv = y0 + (y1 - y0) * frac, x0 + (x1 - x0) * frac
        parts.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" fill="#bbb" text-anchor="end">{tick(yv)}</text>')
        parts.append(f'<text x="{px(xv):.1f}" y="{top + ph + 16}" fill="#bbb" text-anchor="middle">'
                     f'{tick(xv)} {g.x_unit}</text>')
    parts.append(f'<text x="{left + 6}" y="{top + 10}" fill="#bbb">{escape(g.y_unit)}</text>')
    for k, s in enumerate(g.series):
        colour = _SVG_COLOURS[k % len(_SVG_COLOURS)]
        # one mark per pixel: a hundred thousand points make a few thousand marks
        xs = np.rint(left + (s.x - x0) / (x1 - x0) * pw).astype(np.int64)
        ys = np.rint(top + (y1 - s.y) / (y1 - y0) * ph).astype(np.int64)
        if s.y2 is not None:
            y2s = np.rint(top + (y1 - s.y2) / (y1 - y0) * ph).astype(np.int64)
            marks = np.unique(np.stack([xs, ys, y2s], axis=1), axis=0)
            d = " ".join(f"M{x} {a}V{b - (b == a)}" for x, a, b in marks.tolist())
            parts.append(f'<path class="series" data-name="{escape(s.name)}" d="{d}" stroke="{colour}" fill="none"/>')
        else:
            marks = np.unique(np.stack([xs, ys], axis=1), axis=0)
            d = " ".join(f"M{x - 1} {y}h2" for x, y in marks.tolist())
            parts.append(f'<path class="series" data-name="{escape(s.name)}" d="{d}" stroke="{colour}" '
                         f'stroke-width="2" fill="none"/>')
        parts.append(f'<text x="{left + pw - 4}" y="{top + 14 * (k + 1)}" fill="{colour}" text-anchor="end">'
                     f'{escape(s.name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
