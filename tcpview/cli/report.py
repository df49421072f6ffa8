"""What the headless commands print: a capture's summary, or the kernel's socket table, as JSON
or as a readable table."""

from __future__ import annotations

import json
import sys

from ..textutil import endpoint, safe


def summary_dict(tl, source: str, at: float | None = None) -> dict:  # type: ignore[no-untyped-def]
    """The summary as plain data in the shape of :class:`tcpview.engine.model.Summary`.

    ``at`` is seconds after the first packet (the end of the capture when None).
    """
    t = None
    if at is not None and tl.first_ts is not None:
        t = tl.first_ts + at
    return {
        "source": source,
        "packets": tl.packets,
        "tcp_packets": tl.tcp_packets,
        "skipped": dict(sorted(tl.skipped.items())),
        "first_ts": tl.first_ts,
        "last_ts": tl.last_ts,
        "at": at,
        "counters": tl.counters_at(t),
        "connections": tl.connection_dicts(t),
        "evicted": tl.evicted,
    }


def print_summary(tl, source: str, as_json: bool, at: float | None = None, out=None) -> None:  # type: ignore[no-untyped-def]
    """Print the summary as JSON or as a readable table."""
    out = out or sys.stdout
    s = summary_dict(tl, source, at)
    if as_json:
        out.write(json.dumps(s, indent=1) + "\n")
        return
    first, last = s["first_ts"], s["last_ts"]
    dur = (last - first) if first is not None and last is not None else 0.0
    conns = s["connections"]
    out.write(f"{safe(source)}: {s['packets']} packets, {s['tcp_packets']} TCP, "
              f"{len(conns)} connections, {dur:.6f} s\n")
    if s["skipped"]:
        out.write("skipped: " + ", ".join(f"{k} {v}" for k, v in s["skipped"].items()) + "\n")
    if s["evicted"]["connections"] or s["evicted"]["segments"]:
        out.write(f"evicted (memory budget): {s['evicted']['connections']} connections, "
                  f"{s['evicted']['segments']} segments before {s['first_ts'] and tl.horizon - s['first_ts']:.6f} s\n")
    rows = [("id", "client", "server", "client state", "server state", "pkts", "bytes", "notes")]
    for c in conns:
        cl, sv = c["client"], c["server"]
        rows.append((str(c["id"]), endpoint(cl["ip"], cl["port"]), endpoint(sv["ip"], sv["port"]), cl["state"],
                     sv["state"], str(c["packets"]), str(c["bytes"]), ",".join(c["notes"])))
    write_counts_and_table(out, "endpoints", s["counters"], rows, right={0, 5, 6})


def write_counts_and_table(out, what: str, counters: dict[str, int], rows: list[tuple[str, ...]],  # type: ignore[no-untyped-def]
                           right: set[int]) -> None:
    """The text summary's body: non-zero counts, the two counters that hurt, then a table."""
    nz = {k: v for k, v in counters.items() if v}
    out.write(f"{what}: " + (", ".join(f"{k} {v}" for k, v in nz.items()) or "none") + "\n")
    out.write(f"TIME_WAIT {counters['TIME_WAIT']}  CLOSE_WAIT {counters['CLOSE_WAIT']}\n\n")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))]
        out.write("  ".join(cells).rstrip() + "\n")


def print_kernel_summary(snap, as_json: bool, out=None) -> None:  # type: ignore[no-untyped-def]
    """Print a kernel snapshot in the shape of ``tcpview summary`` (JSON or a table)."""
    out = out or sys.stdout
    s = snap.summary()
    if as_json:
        out.write(s.model_dump_json(indent=1) + "\n")
        return
    nsock = len(snap.sockets)
    out.write(f"kernel: {nsock} TCP sockets, {len(s.connections)} connections\n")
    rows = [("id", "client", "server", "client state", "server state", "notes")]
    for c in s.connections:
        rows.append((str(c.id), endpoint(c.client.ip, c.client.port), endpoint(c.server.ip, c.server.port),
                     c.client.state, c.server.state, ",".join(c.notes)))
    write_counts_and_table(out, "sockets", s.counters, rows, right={0})
