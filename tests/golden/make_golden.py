"""Golden outputs of tcpview's headless commands, made with the engine before its rewrite.

Run ``python tests/golden/make_golden.py`` from the repository root to (re)write
``tests/golden/corpus.json.gz`` (the shared corpus of public captures) and
``tests/golden/built.json.gz`` (captures built here with scapy, byte for byte the same every
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
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
for _p in (str(TESTS), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from helpers import (
    DLT_EN10MB,
    DLT_LINUX_SLL,
    C,
    Flow,
    corpus_dir,
    pcap_bytes,
    pcapng_bytes,
)
from trackhelp import M32, closed_by_client, established

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
        except Exception:  # noqa: BLE001 - a crash is an output to compare, not a test error
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


# -- captures built with scapy -------------------------------------------------------------------
@dataclass
class Case:
    """One built capture: its bytes, file name, CLI options and ``--at`` arguments."""

    name: str
    data: bytes
    ext: str = ".pcap"
    opts: tuple[str, ...] = ()
    ats: tuple[str, ...] | None = None  # None: 25/50/75 % of the duration
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.name + self.ext


def _pcap(frames: list, **kw) -> bytes:
    lts = {lt for _t, lt, _b in frames}
    assert len(lts) == 1, lts
    return pcap_bytes([(t, b) for t, _lt, b in frames], linktype=lts.pop(), **kw)


def _lifecycle(**kw) -> Flow:
    """Handshake, a request and a reply, client closes first."""
    f = established(**kw)
    f.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 100)
    f.c("A")
    f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
    return f


def _interleaved(n: int) -> list:
    """``n`` overlapping conversations with different endings, merged in time order; no
    random numbers, so nothing depends on the random module's algorithms."""
    frames: list = []
    for i in range(n):
        k = (i * 7919 + 13) % 1009
        f = Flow(cport=30000 + i, sport=(80, 443, 8080)[k % 3], t0=(k % 97) / 10.0, dt=0.001 + (k % 37) / 100.0,
                 cisn=(k * 2654435761) % M32, sisn=(k * 40503 + 99991) % M32, frames=frames)
        f.handshake()
        for j in range(k % 3):
            f.c("PA", b"q" * (1 + (k + j) % 49))
            f.s("PA", b"r" * (1 + (k * 3 + j) % 499))
        end = ("client", "server", "rst", "close_wait", "open")[k % 5]
        if end == "client":
            f.c("FA"), f.s("A"), f.s("FA"), f.c("A")
        elif end == "server":
            f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
        elif end == "rst":
            f.s("RA")
        elif end == "close_wait":
            f.c("FA"), f.s("A")
    frames.sort(key=lambda x: x[0])
    return frames


def built_cases() -> list[Case]:
    """Every built capture, in a fixed order (names are unique)."""
    cases: list[Case] = []

    def add(name: str, frames_or_bytes, **kw) -> None:  # type: ignore[no-untyped-def]
        data = frames_or_bytes if isinstance(frames_or_bytes, bytes) else _pcap(frames_or_bytes)
        cases.append(Case(name, data, **kw))

    # opening -----------------------------------------------------------------------------
    f = established()
    f.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    f.s("A")
    f.s("PA", b"x" * 100)
    f.c("A")
    add("handshake-data", f.frames)

    f = Flow()
    f.c("S")
    f.s("S")
    f.c("SA", seq=1000)
    f.s("SA", seq=5000)
    f.c("PA", b"hi")
    f.s("A")
    f.c("FA")
    f.s("FA", ack=1003)
    f.c("A")
    f.s("A")
    add("simultaneous-open-close", f.frames)

    f = Flow()
    f.nxt[C] += 1  # the client's SYN happened before the capture
    f.s("SA")
    f.c("A")
    f.c("PA", b"q" * 30)
    f.s("PA", b"r" * 40)
    dup = []
    for t, lt, raw in f.frames:
        dup += [(t, lt, raw), (t + 1e-5, lt, raw)]
    add("synack-without-syn-every-frame-twice", dup)

    f = Flow()
    f.c("S")
    f.s("SA", ack=1234)  # acks the wrong ISN
    f.c("R", seq=1234)
    g = Flow(cport=40001, t0=f.t + 0.5, frames=f.frames)
    g.c("S")
    g.s("SA")
    g.c("R", seq=1001)  # client aborts during the handshake
    add("bad-synack-and-handshake-abort", f.frames)

    # closing -----------------------------------------------------------------------------
    add("close-client-first", _lifecycle().frames)

    f = established()
    f.s("FA"), f.c("A"), f.c("FA"), f.s("A")
    add("close-server-first", f.frames)

    f = established()
    f.c("FA")
    f.s("FA", ack=1001)  # FINs cross
    f.c("A")
    f.s("A")
    add("simultaneous-close", f.frames)

    f = established()
    f.c("FA")
    f.s("FA")  # acks the client's FIN and carries the server's
    f.c("A")
    add("fin-acks-fin", f.frames)

    f = established()
    f.c("PA", b"request")
    f.c("FA")
    f.s("A")
    f.s("PA", b"a" * 500)
    f.c("A")
    f.s("PA", b"b" * 500)
    f.c("A")
    f.s("FPA", b"bye")
    f.c("A")
    add("half-close-fin-with-data", f.frames)

    f = established()
    f.c("FA")
    f.c("FA", seq=1001)
    f.s("A")
    f.c("FA", seq=1001)
    f.s("FA")
    f.c("A")
    f.s("FA", seq=5001)  # the last ACK was lost
    f.c("A")
    add("retransmitted-fins", f.frames)

    # resets ------------------------------------------------------------------------------
    f = established()
    f.c("PA", b"abc")
    f.s("RA")
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.handshake()
    g.c("R")  # RST without ACK, in window
    h = Flow(cport=40002, t0=g.t + 0.1, frames=f.frames)
    h.handshake()
    h.s("R", seq=5001 + 3_000_000)  # far out of window: ignored
    h.c("PA", b"still open")
    add("resets", f.frames)

    f = Flow(sport=9)
    f.c("S")
    f.s("RA", seq=0)
    g = Flow(sport=9, cisn=2_000_000, t0=f.t + 1, frames=f.frames)  # retry: a new connection
    g.c("S")
    g.s("RA", seq=0)
    h = Flow(sport=9, cport=40001, t0=g.t + 1, frames=f.frames)
    h.c("S")
    h.s("RA", seq=0, ack=77)  # wrong ack: not a refusal
    add("refused", f.frames)

    # retransmissions, duplicate ACKs, order ------------------------------------------------
    f = Flow()
    f.c("S")
    f.c("S", seq=1000, at=f.t + 1.0)  # SYN again
    f.s("SA")
    f.s("SA", seq=5000, at=f.t + 1.0)  # SYN+ACK again
    f.c("A")
    f.c("PA", b"d" * 100)
    f.c("PA", b"d" * 100, seq=1001, at=f.t + 0.2)  # data again
    f.s("A")
    f.c("PA", b"e" * 50)
    f.c("PA", b"e" * 20, seq=1101)  # part of it again
    f.s("A")
    add("retransmissions", f.frames)

    f = established()
    f.c("PA", b"1" * 100)  # seq 1001
    f.nxt[C] += 100  # 1101..1200 lost before the capture point
    f.c("PA", b"3" * 100)
    f.s("A", ack=1101)
    f.c("PA", b"4" * 100)
    f.s("A", ack=1101)
    f.c("PA", b"5" * 100)
    f.s("A", ack=1101)
    f.s("A", ack=1101)
    f.c("PA", b"2" * 100, seq=1101)  # fast retransmission (out of order for an observer)
    f.s("A")
    add("dup-acks-fast-retransmit", f.frames)

    f = established()
    f.c("PA", b"b" * 10, seq=1011)  # the second segment arrives first
    f.c("PA", b"a" * 10, seq=1001)
    f.s("A", ack=1021)
    add("out-of-order", f.frames)

    # windows -----------------------------------------------------------------------------
    f = established()
    f.c("PA", b"z" * 1000)
    f.s("A", win=0)  # receiver full
    f.c("A", b"z", at=f.t + 0.2)  # zero-window probe
    f.s("A", win=0)
    f.nxt[C] -= 1  # the probe's byte was not taken
    f.c("A", b"z", at=f.t + 0.4)
    f.s("A", win=0)
    f.nxt[C] -= 1
    f.s("A", win=4096, at=f.t + 0.5)  # window update
    f.c("PA", b"y" * 500)
    f.s("A")
    add("zero-window-probes", f.frames)

    f = established()
    f.c("PA", b"hello")
    f.s("A")
    f.c("A", seq=1005, at=f.t + 45.0)  # keep-alive (seq = next - 1, no data)
    f.s("A")
    f.c("A", b"\0", seq=1005, at=f.t + 45.0)  # keep-alive with one garbage byte
    f.s("A")
    add("keep-alives", f.frames)

    f = Flow()
    f.c("S", win=64240, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
    f.s("SA", win=65160, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 3)])
    f.c("A", win=502)
    f.c("PA", b"w" * 300, win=502)
    f.s("A", win=8145)
    f.s("PA", b"v" * 3000, win=8145)
    f.c("A", win=479)
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.c("S", options=[("WScale", 7)])  # only one side offers it: no scaling
    g.s("SA")
    g.c("A", win=502)
    add("window-scaling", f.frames)

    # sequence numbers -------------------------------------------------------------------
    f = Flow(cisn=M32 - 3, sisn=M32 - 1)
    f.handshake()
    f.c("PA", b"a" * 10)
    f.s("A")
    f.s("PA", b"b" * 4)
    f.c("A")
    f.c("PA", b"c" * 10, seq=M32 - 2)  # retransmission across the wrap
    f.c("FA")
    f.s("FA")
    f.c("A")
    add("seq-wraparound", f.frames)

    frames: list = []
    a = Flow(cport=51000, sport=443, cisn=3_000_000_000, sisn=12345, frames=frames)
    a.s("PA", b"r" * 300)  # the capture starts with the server talking
    a.c("A")
    a.c("PA", b"q" * 20)
    a.s("A")
    b = Flow(cport=51001, sport=22, cisn=M32 - 10, sisn=77, t0=a.t, frames=frames)
    b.c("PA", b"z" * 40)  # crosses the wrap
    b.s("PA", b"y" * 8)
    b.c("FA")
    b.s("FA")
    b.c("A")
    c = Flow(cport=50123, sport=443, t0=b.t, frames=frames)
    c.c("FA")  # first segment seen is a FIN
    c.s("A")
    add("midstream-pickup", frames)

    # odd flags ---------------------------------------------------------------------------
    f = established()
    f.c("PA", b"abc")
    f.c("", ack=777)  # no flags
    f.c("FPU", ack=5)  # xmas, no ACK
    f.c("SF")  # SYN+FIN on an open connection
    f.c("SR")
    f.c("F")  # FIN without ACK
    f.s("R", ack=123)  # RST without ACK, ack field set
    g = Flow(cport=40001, t0=f.t + 0.1, frames=f.frames)
    g.c("SF")  # SYN+FIN as the first packet
    g.c("FSRPAUEC")  # every flag
    add("odd-flags", f.frames)

    # reuse, many connections ---------------------------------------------------------------
    f = closed_by_client()
    f.c("PA", b"one", seq=1001)  # late retransmission into TIME_WAIT
    g = Flow(cisn=9_000_000, sisn=7_000_000, t0=f.t + 1.0, frames=f.frames)  # same 4-tuple in TIME_WAIT
    g.handshake()
    g.c("PA", b"two")
    g.s("RA")
    h = Flow(cisn=500_000, sisn=9_000, t0=g.t + 70.0, frames=f.frames)  # after 2MSL
    h.handshake()
    h.s("FA"), h.c("A"), h.c("FA"), h.s("A")
    add("reuse-after-time-wait", f.frames)

    add("interleaved-40", _interleaved(40))

    # link types and IPv6 ----------------------------------------------------------------------
    for link in ("vlan", "qinq", "sll", "sll2", "null", "loop", "raw", "ipv4"):
        add(f"link-{link}", _lifecycle(link=link).frames)
    for link in ("ether", "vlan", "sll2", "null", "raw", "ipv6"):
        add(f"ipv6-{link}", _lifecycle(cip="2001:db8::1", sip="2001:db8::2", link=link, cisn=4_000_000_000).frames)

    add("pcap-nano-bigendian", _pcap(_lifecycle(t0=1_700_000_000.123456789).frames, nano=True, endian=">"))

    frames = []
    a = _lifecycle(t0=1000.0, dt=0.002, frames=frames)
    b = _lifecycle(cport=40001, cip="2001:db8::1", sip="2001:db8::2", link="sll", t0=1000.001, dt=0.002)
    pk = [(0, t, raw) for t, _lt, raw in a.frames] + [(1, t, raw) for t, _lt, raw in b.frames]
    pk.sort(key=lambda p: p[1])
    add("pcapng-two-interfaces", pcapng_bytes([(DLT_EN10MB, 6), (DLT_LINUX_SLL, 9)], pk), ext=".pcapng")

    # timers with --at -----------------------------------------------------------------------
    # first packet at 100.001; the server's FIN (TIME_WAIT) at 100.006 -> expiry at +60.005
    cbc = _pcap(closed_by_client().frames)
    add("timer-time-wait", cbc, ats=("0.002", "30", "60.004", "60.006", "200"))
    add("timer-time-wait-msl2-5", cbc, opts=("--msl2", "5", "--fin-timeout", "3"), ats=("4.9", "5.1", "20"))
    f = established()
    f.c("FA")
    f.s("A")  # FIN_WAIT_2 from +0.004, the server never closes
    orphan = _pcap(f.frames)
    add("timer-fin-wait-2", orphan, ats=("1", "60.003", "60.005", "300"))
    add("timer-fin-wait-2-short", orphan, opts=("--fin-timeout", "10"), ats=("9", "10.01", "11"))
    f = closed_by_client()
    g = Flow(cport=40001, t0=f.frames[5][0] + 61, frames=f.frames)  # fires the timer itself
    g.c("S")
    g.s("SA")
    add("timer-fired-by-later-packet", f.frames, ats=("30", "61.5"))

    # damaged files ---------------------------------------------------------------------------
    whole = _pcap(_lifecycle().frames)
    add("truncated-in-record", whole[:-10])
    last = len(_lifecycle().frames[-1][2])
    add("truncated-in-header", whole[: len(whole) - last - 16 + 7])
    add("header-only", whole[:24])
    add("not-a-capture", b"this is not a capture file\n" * 4, ext=".pcap")
    bad = bytearray(whole)
    # the fifth record's length made absurd: corrupt record part-way
    off = 24
    for _ in range(4):
        caplen = struct.unpack_from("<I", bad, off + 8)[0]
        off += 16 + caplen
    struct.pack_into("<I", bad, off + 8, 0x7FFFFFF0)
    add("corrupt-record-length", bytes(bad))

    names = [c.name for c in cases]
    assert len(names) == len(set(names)), names
    return cases


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
