"""``--jobs N`` and ``--scheduler ADDRESS``: ``summary``, ``expert``, ``diagnose`` and
``export --format jsonl|csv`` of an archive of capture files on a Dask cluster
(:mod:`tcpview.cluster`), printed as the command prints one capture's answer.

The answer is the one a single read of the files merged by time gives (``mergecap``'s
order). What depends on the whole timeline at a moment is not offered here: ``--at`` and a
memory budget (``--memory``: which connections leave depends on every connection in the
table), so a cluster run keeps every connection, as a file read without ``--memory`` does.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..textutil import plural
from .errors import EXIT_USAGE, UsageError


def wants_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on a cluster (``--jobs`` or ``--scheduler``); without either,
    several files are read here, merged by time."""
    return getattr(args, "jobs", None) is not None or getattr(args, "scheduler", None) is not None


def files_of(args: argparse.Namespace) -> list[str]:
    """The command's capture files, in the order given (globs expanded)."""
    return list(getattr(args, "sources", None) or [])


def _refuse(args: argparse.Namespace, command: str) -> None:
    if getattr(args, "jobs", None) is not None and getattr(args, "scheduler", None) is not None:
        raise UsageError("--jobs starts a local cluster, --scheduler uses one: give one of them")
    if not files_of(args):
        raise UsageError(f"{command} --jobs/--scheduler needs capture files")
    if "-" in files_of(args):
        raise UsageError("--jobs and --scheduler read capture files, not a stream (-)")
    for opt, what in (("interface", "-i"), ("duration", "--duration"), ("at", "--at"), ("memory", "--memory"),
                      ("filter", "--filter"), ("write", "-w")):
        if getattr(args, opt, None) not in (None, False):
            raise UsageError(f"{what} does not go with --jobs or --scheduler")
    if getattr(args, "kernel", False):
        raise UsageError("--kernel does not go with --jobs or --scheduler")
    if command == "export" and args.format not in ("jsonl", "csv"):
        raise UsageError("export --jobs/--scheduler writes --format jsonl or csv")


WRITE_PIECES = 30_000
"""Pieces of ``summary --json``'s text joined for one write (about 10,000 connections, 4 MB):
written one by one, the 600,000 pieces of 200,000 connections took 0.2-0.3 s, joined
0.06-0.09 s; joined all at once, the text would be copied whole into new memory."""


def cmd_cluster(args: argparse.Namespace, command: str) -> int:
    """Run ``command`` over the files on the cluster and print its answer; exit status."""
    _refuse(args, command)
    from ..cluster.run import run

    files = files_of(args)
    what = args.format if command == "export" else "summary-json" if command == "summary" and args.json else command
    r = run(files, what, jobs=args.jobs, scheduler=args.scheduler, msl2=args.msl2, fin_timeout=args.fin_timeout)
    try:
        return _answer(r, args, command, files)
    finally:
        r.done()


def _answer(r, args: argparse.Namespace, command: str, files: list[str]) -> int:
    """Print what the run ``r`` answered; exit status."""
    from ..cluster import merge

    source = ", ".join(files)
    n = merge.connections(r.answers)
    conn = getattr(args, "conn", None)
    if conn is not None and not 0 <= conn < n:
        raise UsageError(f"no connection {conn} (the capture has {n}: 0..{n - 1})" if n
                         else f"no connection {conn} (the capture has none)")
    if command == "summary" and args.json:
        pieces = merge.summary_json(r.answers, source)
        raw = getattr(sys.stdout, "buffer", None)  # (a test's text stream has none)
        if raw is None:
            sys.stdout.write(b"".join(pieces).decode())
        else:
            sys.stdout.flush()
            for i in range(0, len(pieces), WRITE_PIECES):  # a few MB a write, in memory used again
                raw.write(b"".join(pieces[i:i + WRITE_PIECES]))
            raw.flush()
    elif command == "summary":
        from .report import write_summary_text

        write_summary_text(sys.stdout, merge.merged_head(r.answers, source), merge.summary_columns(r.answers))
    elif command == "expert":
        from .report import print_expert

        print_expert(merge.expert(r.answers), source, args.json)
    elif command == "diagnose":
        _print_diagnoses(r.answers, source, args.json, conn)
    else:
        _export(r.answers, args)
    ratio = r.bytes_read / r.archive_bytes if r.archive_bytes else 0.0
    print(f"tcpview: {plural(len(files), 'file')} ({r.archive_bytes / 1e6:.1f} MB) on {plural(r.workers, 'worker')} "
          f"in {r.buckets} buckets (" + ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items())
          + f"): {ratio:.2f} bytes read per byte of the archive, "
          f"{r.staged / max(r.archive_bytes, 1):.2f} handed on to the trackers; workers' CPU: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in r.cpu.items()), file=sys.stderr)
    if r.error:
        print(f"tcpview: error: {r.error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _print_diagnoses(answers, source: str, as_json: bool, conn: int | None) -> None:
    from ..cluster import merge
    from ..textutil import safe
    from .report import write_diagnosis

    verdicts, items = merge.diagnoses(answers, conn)
    out = sys.stdout
    if as_json:
        doc = {"source": source, "verdicts": verdicts, "connections": [g.as_dict() for g, _c, _s in items]}
        out.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return
    counts = {k: n for k, n in verdicts.items() if n}
    out.write(f"{safe(source)}: {plural(merge.connections(answers), 'connection')}" + (": " if counts else "")
              + ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) + "\n")
    for g, client, server in items:
        write_diagnosis(out, g, client, server, every=conn is not None)


def _export(answers, args: argparse.Namespace) -> None:
    import contextlib
    import csv

    from ..cluster import merge
    from ..engine.output.writers import CSV_FIELDS, new_file

    to = new_file(args.output, args.force, False) if args.output else contextlib.nullcontext(sys.stdout)
    with to as out:
        if args.format == "jsonl":
            for line in merge.segments(answers, "jsonl", args.conn):
                out.write(line + "\n")
        else:
            w = csv.writer(out, lineterminator="\n")
            w.writerow(CSV_FIELDS)
            for row in merge.segments(answers, "csv", args.conn):
                w.writerow(row)
