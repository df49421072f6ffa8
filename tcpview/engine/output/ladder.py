"""One connection's ladder (sequence) diagram as rows, shared by the CLI and the UI.

A row is either a segment (an arrow between the client and server columns, labelled with
flags and seq/ack/len/win) or a timer event (TIME_WAIT / FIN_WAIT_2 expiry). Each row says
which endpoint's state changed there, so the state is written in that endpoint's column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..core.tcp import A_DUPACK, STATE_NAMES, analysis_names, anomaly_names
from ..timeline.conns import ConnView
from ..timeline.timeline import Timeline

KERNEL_ROW = -2
"""``LadderRow.seg`` of a row that shows a state change the kernel itself made (``--kernel``)."""


@dataclass(slots=True)
class LadderRow:
    """One row of a ladder. ``seg`` is the segment index, -1 for a timer row, or
    :data:`KERNEL_ROW` for the kernel's own state change."""

    seg: int
    ts: float
    frame: int
    c2s: bool
    flags: int
    label: str
    client_state: str  # new state written in the client column ("" if unchanged)
    server_state: str
    anomaly: int = 0
    analysis: int = 0
    dup_ack: int = 0  # which duplicate ACK of a run it is (0: not one)
    plen: int = 0  # payload bytes (what tells data from a pure ACK)
    owd: float | None = None  # two vantage points joined: how long it took to reach the other one
    lost_between: bool = False  # ... or that it left one and never reached the other


# each analysis flag's tag on a ladder row, and the theme variable that colours it
TAGS: dict[str, tuple[str, str]] = {
    "retransmission": ("retrans", "loss"),
    "fast_retransmission": ("fast-retrans", "loss"),
    "spurious_retransmission": ("spurious-retrans", "loss"),
    "out_of_order": ("ooo", "loss"),
    "dup_ack": ("dup-ack", "loss"),
    "lost_segment": ("lost", "loss"),
    "ack_lost_segment": ("ack-lost", "loss"),
    "zero_window": ("zero-win", "window"),
    "window_probe": ("win-probe", "window"),
    "window_probe_ack": ("win-probe-ack", "window"),
    "window_full": ("win-full", "window"),
    "window_update": ("win-update", "window"),
    "keep_alive": ("keepalive", "note"),
    "keep_alive_ack": ("keepalive-ack", "note"),
    "reused_ports": ("reused-ports", "note"),
}
# each anomaly's tag: kebab-case and short, as the analysis flags' (JSON keeps the bit names)
ANOMALY_TAGS: dict[str, str] = {
    "syn_fin": "syn-fin",
    "syn_rst": "syn-rst",
    "fin_no_ack": "fin-no-ack",
    "no_flags": "no-flags",
    "xmas": "xmas",
    "bad_handshake_ack": "bad-handshake-ack",
    "rst_out_of_window": "rst-out-of-win",
}
TAG_KINDS = ("loss", "window", "note", "anomaly")


def tags(row: LadderRow) -> list[tuple[str, str]]:
    """A row's tags and their kinds: ``("dup-ack #3", "loss")``, ``("syn-fin", "anomaly")``.
    A fast or spurious retransmission is not also tagged a plain one."""
    names = analysis_names(row.analysis)
    if "retransmission" in names and ("fast_retransmission" in names or "spurious_retransmission" in names):
        names.remove("retransmission")
    out = []
    if row.lost_between:
        out.append(("lost between taps", "loss"))
    elif row.owd is not None:
        out.append((one_way(row.owd), "note"))
    for name in names:
        text, kind = TAGS.get(name, (name, "note"))
        if name == "dup_ack" and row.dup_ack:
            text = f"{text} #{row.dup_ack}"
        out.append((text, kind))
    return out + [(ANOMALY_TAGS.get(name, name), "anomaly") for name in anomaly_names(row.anomaly)]


def one_way(owd: float) -> str:
    """A one-way delay as a row's tag: the segment arrived that long after it left, ``+12µs``,
    ``+3.214ms``, ``+1.250s``."""
    if abs(owd) < 1e-3:
        return f"+{owd * 1e6:.0f}µs"
    if abs(owd) < 1:
        return f"+{owd * 1e3:.3f}ms"
    return f"+{owd:.3f}s"


def marks(row: LadderRow) -> str:
    """A row's tags as the ladder writes them after the label: ``[retrans] [syn-fin]``."""
    return " ".join(f"[{text}]" for text, _kind in tags(row))


# what a tagged label gives up first when the arrow is too short: its options, the window,
# then the ack number (the tags say more about the segment than these)
_DROP_FIRST = ("sack_perm", "ws=", "mss=", "win=", "ack=")


def fit_label(label: str, marks: str, room: int) -> str:
    """``label`` and its tags (``marks``) in at most ``room`` characters where it can be done
    keeping the tags whole: the label's options, ``win=`` and ``ack=`` go first, then the rest
    of the label is cut after a whole word (``PSH,ACK … [dup-ack #2]``); when even the tags do not fit, they
    alone are shown, cut at the end. Without tags the label is returned whole (:func:`arrow`
    cuts it at the end)."""
    text = f"{label} {marks}" if marks else label
    if len(text) <= room or not marks:
        return text
    words = label.split(" ")
    for prefix in _DROP_FIRST:
        words = [w for w in words if not w.startswith(prefix)]
        text = " ".join(words) + " " + marks
        if len(text) <= room:
            return text
    keep = room - len(marks) - 1
    if keep < 2:
        return marks if len(marks) <= room else marks[: max(0, room - 1)] + "…"
    head = ""
    for w in words:  # whole words: a number cut short would read as another number
        if len(head) + len(w) + 2 > keep:
            break
        head = f"{head} {w}" if head else w
    head = f"{head} …" if head else " ".join(words)[: keep - 1] + "…"
    return head + " " + marks



def segment_label(tl: Timeline, c: ConnView, i: int, absolute: bool = False, rec: tuple | None = None) -> str:
    """``SYN,ACK seq=0 ack=1 win=65483`` style label of segment i of connection c (``rec``:
    its :meth:`~tcpview.engine.timeline.conns.ConnView.record`, when the caller has it)."""
    from ..core.tcp import flags_label

    ts, frame, seq_raw, ack_raw, plen, win, flags, d, cs, ss, bits = rec if rec is not None else c.record(i)
    if absolute:
        seq, ack = seq_raw, ack_raw
    else:
        seq, ack = c.rel_of(i, d, flags, seq_raw, ack_raw)
    parts = [flags_label(flags), f"seq={seq}"]
    if flags & 0x10:
        parts.append(f"ack={ack}")
    if plen:
        parts.append(f"len={plen}")
    parts.append(f"win={win}")
    o = c.opts[d] if flags & 0x02 else None
    if o:
        if "mss" in o:
            parts.append(f"mss={o['mss']}")
        if "ws" in o:
            parts.append(f"ws={o['ws']}")
        if o.get("sack_perm"):
            parts.append("sack_perm")
    return " ".join(parts)


def ladder_rows(tl: Timeline, cid: int, t: float | None = None, absolute: bool = False,
                start: int = 0, stop: int | None = None,
                kernel: Sequence[tuple[float, int, int]] = ()) -> list[LadderRow]:
    """Rows of connection ``cid``'s ladder up to time t (segment rows ``start:stop``).

    Timer rows (expiries) are placed after the segment they follow in time; ``kernel`` rows
    (the kernel's own state changes, (time, side, state), see :func:`ladder_count`) after
    every row at or before their time, as :func:`ladder_window` places them.
    """
    c = tl.conns[cid]
    n = c.count_at(t)
    stop = n if stop is None else min(stop, n)
    prev = c.start_states
    if start > 0:
        r = c.record(start - 1)
        prev = (r[8], r[9])
    timers = [tr for tr in c.trans if tr[1] == 0 and (t is None or tr[0] <= t)]
    rows: list[LadderRow] = []
    ti = 0
    for i, rec in enumerate(c.records(start, stop), start):
        while ti < len(timers) and timers[ti][0] < rec[0]:
            tts, _f, side, _old, new, _why = timers[ti]
            ti += 1
            if tts >= (rows[-1].ts if rows else float("-inf")) and i > start:
                rows.append(_timer_row(tts, side, new))
                prev = _after_timer(prev, side, new)
        rows.append(_segment_row(tl, c, i, absolute, rec, prev))
        prev = (rec[8], rec[9])
    if stop == n:
        last_ts = rows[-1].ts if rows else float("-inf")
        for tts, _f, side, _old, new, _why in timers[ti:]:
            if tts >= last_ts:
                rows.append(_timer_row(tts, side, new))
    return _with_kernel_rows(rows, kernel, t) if kernel else rows


def _with_kernel_rows(rows: list[LadderRow], kernel: Sequence[tuple[float, int, int]],
                      t: float | None) -> list[LadderRow]:
    """``rows`` with a row for each of the kernel's state changes (up to t) after every row
    at or before its time."""
    kern = sorted(k for k in kernel if t is None or k[0] <= t)
    out: list[LadderRow] = []
    ki = 0
    for row in rows:
        while ki < len(kern) and kern[ki][0] < row.ts:
            out.append(_kernel_row(*kern[ki]))
            ki += 1
        out.append(row)
    out += [_kernel_row(*k) for k in kern[ki:]]
    return out


def kernel_rows(tl: Timeline, cid: int) -> list[tuple[float, int, int]]:
    """The kernel's own state changes of connection ``cid``'s endpoints on the capturing host,
    (time, side, state), from the events the timeline holds (a pcapng of ``--kernel -w``);
    none when it holds none."""
    c, log = tl.conns.get(cid), tl.kernel
    if c is None or log is None:
        return []
    return log.rows_for((c.client_ip_text(), c.cport), (c.server_ip_text(), c.sport), c.first_ts)


def _segment_row(tl: Timeline, c: ConnView, i: int, absolute: bool, rec: tuple, prev: tuple[int, int]) -> LadderRow:
    """The row of segment i of c; ``rec`` is its unpacked record, ``prev`` both endpoints'
    states before it (a state is written where it changed)."""
    ts, frame, _s, _a, plen, _w, flags, d, cs, ss, bits = rec
    va = tl.vantages
    return LadderRow(
        seg=i, ts=ts, frame=frame, c2s=d == 0, flags=flags,
        label=segment_label(tl, c, i, absolute, rec),
        client_state=STATE_NAMES[cs] if cs != prev[0] else "",
        server_state=STATE_NAMES[ss] if ss != prev[1] else "",
        anomaly=bits & 0xFF, analysis=bits >> 8,
        dup_ack=c.dup_ack_num(i) if (bits >> 8) & A_DUPACK else 0, plen=plen,
        owd=va.delay(frame) if va is not None else None,
        lost_between=va is not None and va.is_lost(frame),
    )


def _after_timer(prev: tuple[int, int], side: int, new: int) -> tuple[int, int]:
    """Both endpoints' states after a timer moved ``side`` to ``new``."""
    return (new, prev[1]) if side == 0 else (prev[0], new)


def _timer_row(ts: float, side: int, new: int) -> LadderRow:
    name = STATE_NAMES[new]
    return LadderRow(seg=-1, ts=ts, frame=0, c2s=True, flags=0, label="timer expired",
                     client_state=name if side == 0 else "", server_state=name if side == 1 else "")


def render_text(tl: Timeline, cid: int, t: float | None = None, absolute: bool = False, width: int = 100,
                kernel: Sequence[tuple[float, int, int]] = ()) -> str:
    """The ladder as plain text: client column left, server column right, arrows between;
    ``kernel``: the kernel's own state changes to show as rows of their own (``kernel set
    ESTABLISHED`` in the middle, the state in its endpoint's column)."""
    c = tl.conns[cid]
    rows = ladder_rows(tl, cid, t, absolute, kernel=kernel)
    t0 = c.first_ts
    state_w = 12
    arrow_w = max(30, width - 10 - 2 * (state_w + 2))
    out = [f"#{c.id}  {c.client_text()} <-> {c.server_text()}"]
    out.append(f"{'time':>10}  {'client':<{state_w}}  {'':<{arrow_w}}  server")
    for row in rows:
        if row.seg < 0:
            mid = f"{'(' + row.label + ')':^{arrow_w}}"
        else:
            mid = arrow(fit_label(row.label, marks(row), arrow_w - ARROW_ENDS), arrow_w, row.c2s)
        out.append(f"{row.ts - t0:>10.6f}  {row.client_state:<{state_w}}  {mid}  {row.server_state}".rstrip())
    return "\n".join(out)


ARROW_ENDS = 7
"""Characters of an arrow that are not its label: ``── `` before it and `` ───▶`` after it at
the least (:func:`arrow`)."""


def arrow(label: str, width: int, right: bool) -> str:
    """``── LABEL ────▶`` (or ``◀── LABEL ────``) exactly ``width`` characters wide (a label longer
    than ``width - ARROW_ENDS`` is cut)."""
    body = f" {label} "
    if len(body) > width - 5:
        body = body[: width - 6] + "… "
    fill = width - 3 - len(body)
    if right:
        return "──" + body + "─" * fill + "▶"
    return "◀─" + body + "─" * (fill + 1)



def _timer_positions(c: ConnView, t: float | None, kernel: Sequence[tuple[float, int, int]] = ()) -> list[tuple]:
    """(row index, segments before it, what, item) of each row of c up to time t that is not
    a segment: timer expiries (``what`` 0, ``item`` the transition) and, when given, the
    kernel's own state changes (``what`` 1, ``item`` (time, side, state)).

    Such a row comes after every segment at or before its time, so its row index is the
    number of such segments plus the rows of this kind before it.
    """
    extras = [(tr[0], 0, tr) for tr in c.trans if tr[1] == 0 and (t is None or tr[0] <= t)]
    if kernel:
        extras += [(k[0], 1, k) for k in kernel if t is None or k[0] <= t]
        extras.sort(key=lambda e: (e[0], e[1]))
    out: list[tuple] = []
    for ts, what, item in extras:
        k = c.count_at(ts)
        out.append((k + len(out), k, what, item))
    return out


def ladder_count(tl: Timeline, cid: int, t: float | None = None,
                 kernel: Sequence[tuple[float, int, int]] = ()) -> int:
    """Number of ladder rows (segments, timer rows, and ``kernel`` rows: the kernel's own
    state changes, (time, side, state)) of connection cid up to time t (0 once it has left
    the timeline)."""
    c = tl.conns.get(cid)
    return 0 if c is None else c.count_at(t) + len(_timer_positions(c, t, kernel))


def _kernel_row(ts: float, side: int, state: int) -> LadderRow:
    """A row of the kernel's own state change: the state in its endpoint's column."""
    name = STATE_NAMES[state]
    return LadderRow(seg=KERNEL_ROW, ts=ts, frame=0, c2s=side == 0, flags=0, label=f"kernel set {name}",
                     client_state=name if side == 0 else "", server_state=name if side == 1 else "")


def ladder_window(tl: Timeline, cid: int, t: float | None, absolute: bool, first: int, count: int,
                  kernel: Sequence[tuple[float, int, int]] = ()) -> list[LadderRow]:
    """Ladder rows ``first .. first+count-1`` of connection cid up to time t (``kernel``: the
    kernel's state changes to show as rows of their own, see :func:`ladder_count`).

    The same rows as ``ladder_rows(tl, cid, t)[first:first+count]``, built without the rows
    before ``first`` — what a virtualized view needs for a million-segment connection. No
    rows once the connection has left the timeline.
    """
    c = tl.conns.get(cid)
    if c is None:
        return []
    n = c.count_at(t)
    timers = _timer_positions(c, t, kernel)
    total = n + len(timers)
    first = max(0, first)
    last = min(total, first + count)
    if first >= last:
        return []
    at_row = {pos: (what, tr) for pos, _k, what, tr in timers}
    # segment index of row `first`: the rows before it minus the timer rows before it
    seg = first - sum(1 for pos, _k, _w, _tr in timers if pos < first)
    # the segments these rows show, and the one before them (for what changed at the first)
    lo = max(seg - 1, 0)
    recs = c.records(lo, min(n, seg + (last - first)))
    rows: list[LadderRow] = []
    prev: tuple[int, int] | None = None
    for y in range(first, last):
        extra = at_row.get(y)
        if extra is not None and extra[0] == 1:
            rows.append(_kernel_row(*extra[1]))
            continue
        if extra is not None:
            tts, _f, side, _old, new, _why = extra[1]
            rows.append(_timer_row(tts, side, new))
            if prev is not None:
                prev = _after_timer(prev, side, new)
            continue
        i = seg
        seg += 1
        rec = recs[i - lo]
        if prev is None:
            prev = c.start_states
            if i > 0:
                r = recs[i - 1 - lo]
                prev = (r[8], r[9])
            # timer rows between segment i-1 and i changed the states too
            for _pos, k, what, tr in timers:
                if k == i and i > 0 and what == 0:
                    prev = _after_timer(prev, side=tr[2], new=tr[4])
        rows.append(_segment_row(tl, c, i, absolute, rec, prev))
        prev = (rec[8], rec[9])
    return rows
