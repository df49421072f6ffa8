"""What the headless commands print: a capture's summary, or the kernel's socket table, as JSON
or as a readable table."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterable

from ..textutil import endpoint, plural, safe


def _cursor(tl, at: float | None) -> float | None:
    return tl.first_ts + at if at is not None and tl.first_ts is not None else None


def _head(tl, source: str, at: float | None, totals=None) -> dict:
    """The summary without its connections; the capture's totals from ``totals`` (a
    timeline of the whole capture) when ``tl`` holds only its part up to the cursor."""
    whole = totals if totals is not None else tl
    return {
        "source": source,
        "packets": whole.packets,
        "tcp_packets": whole.tcp_packets,
        "fragments": whole.fragments,
        "skipped": dict(sorted(whole.skipped.items())),
        "first_ts": whole.first_ts,
        "last_ts": whole.last_ts,
        "at": at,
        "counters": tl.counters_at(_cursor(tl, at)),
        "connections": [],
        "evicted": tl.evicted,
    }


def summary_dict(tl, source: str, at: float | None = None) -> dict:
    """The summary as plain data in the shape of :class:`tcpview.engine.core.model.Summary`.

    ``at`` is seconds after the first packet (the end of the capture when None). A connection
    that came through a tunnel has its ``tunnel_parents`` when ``source`` is the capture file.
    """
    from ..engine.output.outer import tunnel_parents

    s = _head(tl, source, at)
    s["connections"] = tl.connection_dicts(_cursor(tl, at))
    parents = tunnel_parents(tl.view(), source)
    for c in s["connections"] if parents else ():
        if c["id"] in parents:
            c["tunnel_parents"] = parents[c["id"]]
    return s


_MARK = "@@connections@@"
_PIECE = 8192
"""Connections written at a time: about 3 MB of JSON; two are formatted at a time."""


def write_json_list(out, doc: dict, key: str, items: Iterable[dict], ascii_only: bool = True) -> None:
    """Write ``doc`` as ``json.dumps(doc, indent=1, ensure_ascii=ascii_only)`` would, its
    top-level ``key`` being the list of ``items``, each written as it comes: a report of
    300,000 connections held whole, and then as one text, took gigabytes."""
    before, after = json.dumps({**doc, key: _MARK}, indent=1, ensure_ascii=ascii_only).split(f'"{_MARK}"')
    out.write(before + "[")
    n = 0
    for item in items:
        text = json.dumps(item, indent=1, ensure_ascii=ascii_only)
        out.write(("," if n else "") + "\n  " + text.replace("\n", "\n  "))
        n += 1
    out.write(("\n ]" if n else "]") + after + "\n")


def write_summary_json(tl, source: str, at: float | None = None, out=None,
                       piece: int = _PIECE, totals=None) -> None:
    """Write :func:`summary_dict` as ``json.dumps(..., indent=1)`` would, without building it:
    the connections go out in pieces, straight from the timeline's columns (those that came
    through a tunnel written apart, with their ``tunnel_parents``).

    Two pieces are formatted at a time, on two threads (the compiled writer runs without the
    GIL), while this thread makes the next piece's columns and writes out the oldest: a
    million connections' 370 MB of JSON take about half the time they take on one core."""
    from concurrent.futures import ThreadPoolExecutor

    from ..engine.output.json_rows import RowsWriter, extra_json
    from ..engine.output.outer import tunnel_parents
    from ..engine.timeline.conn_columns import conn_array_chunks

    out = out or sys.stdout
    head = _head(tl, source, at, totals)
    head["connections"] = _MARK
    before, after = json.dumps(head, indent=1).split(f'"{_MARK}"')
    out.write(before)
    raw = getattr(out, "buffer", None)  # a text file's bytes underneath: no decoding

    def put(piece: memoryview) -> None:
        if raw is not None:
            out.flush()
            raw.write(piece)
        else:
            out.write(str(piece, "ascii"))

    writers = [RowsWriter(), RowsWriter()]  # each reuses its buffer: its last piece goes out first
    writers[1].first = False  # only the very first piece starts the list without ","
    extra = {cid: extra_json("tunnel_parents", t) for cid, t in tunnel_parents(tl.view(), source).items()}
    writers[0].extra = writers[1].extra = extra
    pending: deque = deque()
    count = 0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tcpview-json") as pool:
        for part in conn_array_chunks(tl, _cursor(tl, at), size=piece):
            if not len(part):
                continue
            if count == 0:
                out.write("[\n")
            if len(pending) == 2:
                put(pending.popleft().result())
            pending.append(pool.submit(writers[count % 2].rows, part))
            count += 1
        while pending:
            put(pending.popleft().result())
    out.write("[]" if count == 0 else "\n ]")
    out.write(after + "\n")


def print_summary(tl, source: str, as_json: bool, at: float | None = None, out=None,
                  totals=None, processes=None, kernel=None) -> None:
    """Print the summary as JSON or as a readable table (``totals``: see :func:`_head`).

    ``processes`` (a live capture's :class:`~tcpview.kernel.compare.ProcessWatch`): each
    endpoint of the JSON gets its ``"process"`` ({pid, comm, user}, null when not known), and
    the table a ``proc`` column. ``kernel`` (``--kernel``): called with the JSON summary, gives
    each connection its endpoints' traced kernel states."""
    out = out or sys.stdout
    several = tl.captures is not None
    if as_json and (processes is not None or kernel is not None or several):
        s = summary_dict(tl, source, at)
        if several:
            _add_captures(tl, s)
        if processes is not None:
            for c in s["connections"]:
                c["client"]["process"], c["server"]["process"] = processes.as_json(c["id"])
        if kernel is not None:
            kernel(s)
        out.write(json.dumps(s, indent=1) + "\n")
        return
    if as_json:
        write_summary_json(tl, source, at, out, totals=totals)
        return
    write_summary_text(out, _head(tl, source, at, totals), tl.connection_columns(_cursor(tl, at)), tl.horizon,
                       processes, tl if several else None)


def write_summary_text(out, s: dict, cols, horizon: float | None = None, processes=None, merged=None) -> None:
    """The summary as a readable table: ``s`` is its head (:func:`_head`'s shape), ``cols``
    its connections (:class:`~tcpview.engine.timeline.conn_columns.ConnColumns`), ``horizon``
    the time before which rows left the timeline; ``merged``: the timeline of several captures
    (their offsets and vantages are told)."""
    source = s["source"]
    first, last = s["first_ts"], s["last_ts"]
    dur = (last - first) if first is not None and last is not None else 0.0
    held = f" (and {plural(s['fragments'], 'IP fragment')} reassembled into them)" if s["fragments"] else ""
    out.write(f"{safe(source)}: {plural(s['packets'], 'packet')}, {s['tcp_packets']} TCP{held}, "
              f"{plural(len(cols), 'connection')}, {dur:.6f} s\n")
    if s["skipped"]:
        out.write("skipped: " + ", ".join(f"{k} {v}" for k, v in s["skipped"].items()) + "\n")
    if merged is not None:
        _write_captures(merged, out)
    if s["evicted"]["connections"] or s["evicted"]["segments"]:
        out.write(f"evicted (memory budget): {plural(s['evicted']['connections'], 'connection')}, "
                  f"{plural(s['evicted']['segments'], 'segment')} before {s['first_ts'] and (horizon or 0.0) - s['first_ts']:.6f} s\n")
    rows: list[tuple[str, ...]] = [("id", "client", "server", "client state", "server state", "pkts", "bytes", "zeek",
                                    "history", "notes")]
    rows += [(str(i), endpoint(ci, cp), endpoint(si, sp), cs, ss, str(pk), str(nb), zs, zh, ",".join(no))
             for i, ci, cp, cs, si, sp, ss, pk, nb, zs, zh, no in zip(
                 cols.ids, cols.cip, cols.cport, cols.cstate, cols.sip, cols.sport, cols.sstate, cols.packets,
                 cols.nbytes, cols.conn_state, cols.history, cols.notes, strict=True)]
    if processes is not None:
        texts = processes.texts()
        rows = [(*r, "proc" if k == 0 else safe(texts.get(int(r[0]), ""))) for k, r in enumerate(rows)]
    write_counts_and_table(out, "endpoints", s["counters"], rows, right={0, 5, 6})


def _add_captures(tl, s: dict) -> None:
    """Several captures: ``captures`` (file, offset, vantage), and each connection both vantage
    points saw its ``lost_between_captures`` and ``min_one_way_delay``."""
    from ..engine.timeline.vantages import captures_summary, connections_between

    s["captures"] = captures_summary(tl)
    joined = connections_between(tl, [c["id"] for c in s["connections"]])
    for c in s["connections"]:
        c.update(joined.get(c["id"], {}))


def _write_captures(tl, out) -> None:
    """The text summary's lines on several captures: each one's offset and vantage, and what
    was lost between two vantage points."""
    from ..engine.timeline.vantages import captures_summary, connections_between

    for c in captures_summary(tl) or []:
        lo, hi = c["offset_bounds"]
        how = "given" if c["offset_given"] else "estimated" if lo is not None or hi is not None else ""
        spread = f" (allowed {lo:+.6f}..{hi:+.6f})" if lo is not None and hi is not None else ""
        side = f"{c['vantage']} side" if c["vantage"] else ""
        out.write(f"capture {safe(c['file'])}: " + ", ".join(
            x for x in (f"offset {c['offset']:+.6f} s" + (f" {how}" if how else "") + spread, side) if x) + "\n")
    if tl.vantages is not None:
        v = tl.view()
        joined = connections_between(tl, list(v.ids(range(v.n_conn))) if v.n_conn else [])
        c2s = sum(j["lost_between_captures"]["c2s"] for j in joined.values())
        s2c = sum(j["lost_between_captures"]["s2c"] for j in joined.values())
        out.write(f"joined: {plural(len(joined), 'connection')} seen at both vantage points; lost between them: "
                  f"client to server {c2s}, server to client {s2c}\n")


def write_counts_and_table(out, what: str, counters: dict[str, int], rows: list[tuple[str, ...]],
                           right: set[int]) -> None:
    """The text summary's body: one line of counts (the states that have any, and always the
    two that hurt: TIME_WAIT and CLOSE_WAIT), then a table."""
    shown = {k: v for k, v in counters.items() if v or k in ("TIME_WAIT", "CLOSE_WAIT")}
    out.write(f"{what}: " + ", ".join(f"{k} {v}" for k, v in shown.items()) + "\n\n")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))]
        out.write("  ".join(cells).rstrip() + "\n")


def print_kernel_summary(snap, as_json: bool, out=None) -> None:
    """Print a kernel snapshot in the shape of ``tcpview summary`` (JSON or a table)."""
    out = out or sys.stdout
    s = snap.summary()
    if as_json:
        out.write(s.model_dump_json(indent=1) + "\n")
        return
    nsock = len(snap.sockets)
    out.write(f"kernel: {plural(nsock, 'TCP socket')}, {plural(len(s.connections), 'connection')}\n")
    rows: list[tuple[str, ...]] = [("id", "client", "server", "client state", "server state", "proc", "rtt", "cwnd", "Recv-Q", "Send-Q",
                                    "timer", "notes")]
    for c, k in zip(s.connections, snap.connections(), strict=True):  # the same order: ids are places
        info = k.info()
        rtt = f"{info.rtt_us / 1000:g}ms" if info is not None and info.rtt_us else ""
        cwnd = str(info.cwnd) if info is not None and not k.listening else ""
        rows.append((str(c.id), endpoint(c.client.ip, c.client.port), endpoint(c.server.ip, c.server.port),
                     c.client.state, c.server.state, safe(k.process_text()), rtt, cwnd, k.queue_text(True),
                     k.queue_text(False), k.timer_text(), ",".join(c.notes)))
    write_counts_and_table(out, "sockets", s.counters, rows, right={0, 6, 7, 8, 9})


def kernel_notes(snap) -> list[str]:
    """What a reader of the kernel table should know about how it was read (for stderr)."""
    notes = []
    if snap.source != "sock_diag":
        notes.append(f"netlink sock_diag could not be asked: read from {snap.source}, without tcp_info")
    if snap.hidden:
        notes.append(f"{plural(snap.hidden, 'process', 'processes')} of other users could not be looked into: "
                     "their sockets' process is unknown (pid and comm null); run as root to see them")
    return notes


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f} ms"


def print_expert(report: dict, source: str, as_json: bool, out=None) -> None:
    """Print ``tcpview expert``'s report as JSON or as text."""
    out = out or sys.stdout
    if as_json:
        write_json_list(out, {"source": source, **report}, "connections", report["connections"])
        return
    flags = {k: v for k, v in report["flags"].items() if v}
    out.write(f"TCP analysis of {safe(source)} (Wireshark's tcp.analysis flags)\n")
    if not flags:
        out.write("  no flags\n")
    for name, count in sorted(flags.items(), key=lambda kv: -kv[1]):
        out.write(f"  {name:26} {count:8}\n")
    rtt = report["ack_rtt"]
    if rtt:
        out.write(f"ACK RTT: {plural(rtt['samples'], 'sample')}, min {_ms(rtt['min'])}, avg {_ms(rtt['avg'])}, "
                  f"max {_ms(rtt['max'])}\n")
    slow = {k: v for k, v in report["verdicts"].items() if v}
    out.write("Verdicts (tcpview diagnose): " + (", ".join(f"{k} {v}" for k, v in sorted(
        slow.items(), key=lambda kv: -kv[1])) or "no connections") + "\n")
    conns = report["connections"]
    flagged = [c for c in conns if c["flags"]]
    out.write(f"\nConnections with flags: {len(flagged)}\n")
    for c in flagged:
        r = c["ack_rtt"] or {}
        counts = " ".join(f"{k}={v}" for k, v in c["flags"].items())
        out.write(f"  {c['id']:>6}  {safe(c['client'])} -> {safe(c['server'])}  initial RTT {_ms(c['initial_rtt'])}, "
                  f"RTT avg {_ms(r.get('avg'))} max {_ms(r.get('max'))}  {counts}\n")


def write_diagnosis(out, g, client: str, server: str, every: bool) -> None:
    """One connection's diagnosis ``g`` as text (``client``, ``server``: its ends); ``every``
    episode of its verdict, or only the headlines."""
    from ..engine.analysis.diagnosis import LABELS, TOO_SHORT
    from ..engine.analysis.kernel_check import kernel_text

    out.write(f"\n#{g.id}  {safe(client)} -> {safe(server)}  {g.duration:.6f} s  "
              f"{LABELS[g.verdict]}\n")
    if g.verdict != TOO_SHORT and g.duration > 0:
        parts = [f"{name} {100 * s / g.duration:.0f}%" for name, s in sorted(g.shares.items(), key=lambda kv: -kv[1])
                 if s > 0 and 100 * s / g.duration >= 0.5]
        out.write("  " + "  ".join(parts) + "\n")
    if g.kernel is not None:
        out.write(f"  {kernel_text(g.kernel)}\n")
    for k, item in enumerate(g.evidence):
        if every or k in g.headlines:
            where = f"frame {item['frame']:>7}" if item["frame"] is not None else " " * 13
            out.write(f"  {where}  {safe(item['text'])}\n")
