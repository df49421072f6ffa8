"""Golden outputs of tcpview's headless commands, made with the engine before its rewrite.

Run ``python tests/golden/make_golden.py`` from the repository root to (re)write
``tests/golden/corpus.json.gz`` (the shared corpus of public captures) and
``tests/golden/built.json.gz`` (captures built by `cases.py`, byte for byte the same every
time). ``tests/test_golden.py`` runs the engine in the tree the same way and compares, frame by
frame. See ``tests/golden/README.md`` for when regenerating is right (rarely).

Everything is read through the command line, ``tcpview.cli.main`` run in this process with
stdout and stderr captured: the CLI is the interface that stays while the engine is rewritten.
What one capture's golden holds (its "description"):

* ``sha256``/``size`` of the capture bytes: a corpus file or a builder that changed is reported
  as such, not compared;
* ``export``: exit status, stderr and, per TCP segment in frame order, the fields
  :data:`SEG_FIELDS` of ``export --format jsonl`` (and the set of keys it printed);
* ``summary``: exit status, stderr and ``summary --json`` with ``source`` cut to the file name;
* ``ladder``: per connection, exit status, stderr and the ``transitions`` of
  ``ladder --conn N --format json``;
* ``at``: ``summary --json --at S`` at a few times (25/50/75 % of the capture for the corpus,
  chosen per case for built captures): exit status, stderr, counters and per connection
  ``[id, client state, server state, packets]``. The ``--at`` arguments are stored and reused
  as given, so a later engine is asked exactly the same question.

Timestamps are kept exactly as the CLI printed them (shortest float repr); the test compares
floats with a tolerance of :data:`TS_TOLERANCE` (1 us), everything else exactly.

Speed: ``ladder`` is one CLI run per connection, and each run reads the whole capture again
(2000 connections in one corpus file). While export, summary and ladder run for one capture,
``tcpview.engine.pump.load`` is memoised, so the file is read once; those commands only read
the loaded timeline (``summary --at`` moves the tracker's clock and always loads afresh). The
argument parser (``tcpview.cli.build_parser``, slower to build than a small capture is to read)
is built once per capture too. Either is skipped when the function no longer exists.
``--no-reuse`` (or ``TCPVIEW_GOLDEN_NO_REUSE=1``) turns both off: every run is then exactly
``main(argv)``; with the engine the goldens were made with it gave the same bytes (in 11 minutes
instead of 20 seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
for _p in (str(TESTS), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from cases import Case, built_cases
from helpers import corpus_dir

FORMAT = 1
SEG_FIELDS = ("frame", "ts", "conn", "dir", "flags", "seq", "ack", "seq_raw", "ack_raw", "len", "win",
              "client_state", "server_state", "anomalies", "analysis")
TRANS_FIELDS = ("ts", "frame", "conn", "side", "old", "new", "why")
AT_CONN_FIELDS = ("id", "client_state", "server_state", "packets")
AT_FRACTIONS = (0.25, 0.5, 0.75)
TS_TOLERANCE = 1e-6
MISSING = "<missing>"

CORPUS_GOLDEN = HERE / "corpus.json.gz"
BUILT_GOLDEN = HERE / "built.json.gz"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


# -- running the CLI ---------------------------------------------------------------------------
def run_inprocess(argv: list[str]) -> tuple[int, str, str]:
    """``tcpview ARGV`` in this process: (exit status, stdout, stderr). A crash is exit 1 with
    the exception's last line on stderr, as a user would see it end a traceback."""
    from tcpview.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception:
            rc = 1
            err.write("Traceback: " + traceback.format_exc().strip().splitlines()[-1] + "\n")
    return rc, out.getvalue(), err.getvalue()


def run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    """``python -m tcpview ARGV`` in a subprocess (slow; to check the in-process runs)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COLUMNS", None)
    p = subprocess.run([sys.executable, "-m", "tcpview", *argv], check=False, capture_output=True, cwd=REPO,
                       env=env, timeout=300)
    rc = p.returncode
    err = p.stderr.decode("utf-8", "replace")
    if "Traceback" in err:
        err = "Traceback: " + err.strip().splitlines()[-1] + "\n"
    return rc, p.stdout.decode("utf-8", "replace"), err


@contextlib.contextmanager
def _memoised(module_name: str, attr: str, enabled: bool):
    """Memoise ``module.attr`` (a function of hashable arguments) while the block runs; nothing
    happens when it is disabled, or the module or function no longer exists."""
    import importlib

    try:
        mod = importlib.import_module(module_name)
    except ImportError:
        mod = None
    orig = getattr(mod, attr, None)
    if not enabled or orig is None or os.environ.get("TCPVIEW_GOLDEN_NO_REUSE"):
        yield
        return
    cache: dict = {}

    @functools.wraps(orig)
    def memo(*a, **kw):  # type: ignore[no-untyped-def]
        key = (a, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = orig(*a, **kw)
        return cache[key]

    setattr(mod, attr, memo)
    try:
        yield
    finally:
        setattr(mod, attr, orig)


def reuse_loads(enabled: bool = True):  # type: ignore[no-untyped-def]
    """The capture is read once for export, summary and every ladder (they only read it)."""
    return _memoised("tcpview.engine.pump", "load", enabled)


def reuse_parser(enabled: bool = True):  # type: ignore[no-untyped-def]
    """One argument parser for every run (building it costs more than a small capture)."""
    return _memoised("tcpview.cli", "build_parser", enabled)


# -- describing one capture --------------------------------------------------------------------
def describe(path: Path, opts: Iterable[str] = (), ats: Iterable[str] | None = None,
             run: Callable[[list[str]], tuple[int, str, str]] = run_inprocess, reuse: bool = True) -> dict:
    """What the CLI prints for the capture at ``path`` (see the module docstring).

    ``opts`` go to every command (e.g. ``--msl2 5``); ``ats`` are the ``--at`` arguments
    (None: 25/50/75 % of the capture's duration, from the summary).
    """
    opts = list(opts)
    data = path.read_bytes()
    src = str(path)
    d: dict = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "opts": opts}
    with reuse_parser(reuse):
        _describe_runs(d, src, path.name, opts, ats, run, reuse)
    return d


def _describe_runs(d: dict, src: str, name: str, opts: list[str], ats, run, reuse: bool) -> None:  # type: ignore[no-untyped-def]
    def clean(err: str) -> str:
        return err.replace(src, name)

    with reuse_loads(reuse):
        rc, out, err = run(["export", src, "--format", "jsonl", *opts])
        rows, keys = [], set()
        for line in out.splitlines():
            try:
                seg = json.loads(line)
            except ValueError:
                seg = {"<unparsed line>": line}
            keys.update(seg)
            rows.append([seg.get(f, MISSING) for f in SEG_FIELDS])
        d["export"] = {"rc": rc, "stderr": clean(err), "keys": sorted(keys), "rows": rows}

        rc, out, err = run(["summary", src, "--json", *opts])
        summ = _json_or_text(out)
        if isinstance(summ, dict) and "source" in summ:
            summ["source"] = Path(summ["source"]).name
        d["summary"] = {"rc": rc, "stderr": clean(err), "json": summ}

        ladders = []
        nconn = len(summ.get("connections") or []) if isinstance(summ, dict) else 0
        for cid in range(nconn):
            rc, out, err = run(["ladder", src, "--conn", str(cid), "--format", "json", *opts])
            lad = _json_or_text(out)
            trans = lad.get("transitions", MISSING) if isinstance(lad, dict) else lad
            if isinstance(trans, list):
                trans = [[t.get(f, MISSING) if isinstance(t, dict) else t for f in TRANS_FIELDS] for t in trans]
            ladders.append({"rc": rc, "stderr": clean(err), "transitions": trans})
        d["ladder"] = ladders

    if ats is None:
        ats = default_ats(summ)
    d["at"] = []
    for arg in ats:
        rc, out, err = run(["summary", src, "--json", "--at", arg, *opts])
        s = _json_or_text(out)
        entry: dict = {"arg": arg, "rc": rc, "stderr": clean(err)}
        if isinstance(s, dict):
            entry["counters"] = s.get("counters", MISSING)
            entry["conns"] = [[_get(c, "id"), _get(c, "client", "state"), _get(c, "server", "state"),
                               _get(c, "packets")] for c in s.get("connections") or []]
        else:
            entry["output"] = s
        d["at"].append(entry)


def _get(d, *keys):  # type: ignore[no-untyped-def]
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return MISSING
        d = d[k]
    return d


def _json_or_text(out: str):  # type: ignore[no-untyped-def]
    if not out.strip():
        return None
    try:
        return json.loads(out)
    except ValueError:
        return out


def default_ats(summ) -> list[str]:  # type: ignore[no-untyped-def]
    """``--at`` arguments at 25/50/75 % of the capture's duration (none without packets)."""
    if not isinstance(summ, dict) or summ.get("first_ts") is None or summ.get("last_ts") is None:
        return []
    dur = max(summ["last_ts"] - summ["first_ts"], 0.0)
    out: list[str] = []
    for fr in AT_FRACTIONS:
        a = f"{dur * fr:.6f}"
        if a not in out:
            out.append(a)
    return out


# -- the corpus --------------------------------------------------------------------------------
def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.suffix in CAPTURE_SUFFIXES)


def describe_case(case: Case, tmp: Path, run=run_inprocess, reuse: bool = True,  # type: ignore[no-untyped-def]
                  ats: list[str] | None = None) -> dict:
    """Write a built capture into ``tmp`` and describe it (``ats``: the ``--at`` arguments
    when the case leaves them to the capture's duration, e.g. the golden's)."""
    path = tmp / case.filename
    path.write_bytes(case.data)
    if case.ats is not None:
        ats = list(case.ats)
    return describe(path, case.opts, ats, run=run, reuse=reuse)


# -- golden files ----------------------------------------------------------------------------------
def dumps_golden(captures: dict[str, dict], meta: dict) -> bytes:
    """Sorted keys, one capture a line, gzip without a time stamp: a regenerate with the same
    outputs gives the same bytes."""
    lines = ["{", '"captures":{']
    items = sorted(captures.items())
    for i, (name, d) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        lines.append(json.dumps(name) + ":" + json.dumps(d, sort_keys=True, separators=(",", ":")) + sep)
    lines.append("},")
    lines.append('"meta":' + json.dumps(meta, sort_keys=True, separators=(",", ":")))
    lines.append("}")
    text = "\n".join(lines) + "\n"
    return gzip.compress(text.encode("ascii"), compresslevel=9, mtime=0)


def load_golden(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def meta(kind: str) -> dict:
    return {"format": FORMAT, "kind": kind, "seg_fields": list(SEG_FIELDS), "trans_fields": list(TRANS_FIELDS),
            "at_conn_fields": list(AT_CONN_FIELDS), "ts_tolerance": TS_TOLERANCE, "at_fractions": list(AT_FRACTIONS)}


def make_corpus(root: Path, reuse: bool = True, log=print) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    out = {}
    for p in corpus_files(root):
        out[p.name] = describe(p, reuse=reuse)
        d = out[p.name]
        if d["export"]["rc"] != 0:
            log(f"  {p.name}: exit {d['export']['rc']}: {d['export']['stderr'].strip()}")
    return out


def make_built(reuse: bool = True) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="tcpview-golden-") as tmp:
        return {c.name: describe_case(c, Path(tmp), reuse=reuse) for c in built_cases()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("corpus", "built"), help="regenerate one of the two goldens")
    ap.add_argument("--no-reuse", action="store_true", help="read the capture again for every CLI run (slow)")
    ap.add_argument("--out", type=Path, default=HERE, help="directory to write into (default: beside this script)")
    args = ap.parse_args(argv)
    reuse = not args.no_reuse
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "built"):
        built = make_built(reuse)
        dest = args.out / BUILT_GOLDEN.name
        dest.write_bytes(dumps_golden(built, meta("built")))
        nseg = sum(len(d["export"]["rows"]) for d in built.values())
        print(f"{dest}: {len(built)} captures, {nseg} segments, {dest.stat().st_size} bytes")
    if args.only in (None, "corpus"):
        root = corpus_dir()
        if root is None:
            print("corpus of public captures not found (TCPVIEW_PCAP_CORPUS, else ../shared/pcaps): "
                  "corpus golden not written", file=sys.stderr)
            return 1
        corpus = make_corpus(root, reuse)
        dest = args.out / CORPUS_GOLDEN.name
        dest.write_bytes(dumps_golden(corpus, meta("corpus")))
        nseg = sum(len(d["export"]["rows"]) for d in corpus.values())
        print(f"{dest}: {len(corpus)} captures, {nseg} segments, {dest.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
