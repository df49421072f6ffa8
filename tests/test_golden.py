"""The engine in the tree against golden outputs made before the engine was rewritten.

``tests/golden/make_golden.py`` wrote, with the engine of the time and through the command line
(``export``, ``summary``, ``summary --at``, ``ladder``), what tcpview prints for every capture of
the shared corpus and for captures built here with scapy. This module runs the same commands the
same way and compares frame by frame; a failure lists the first differing frames of each
capture (file, frame, field, expected, got). See ``tests/golden/README.md``.

The corpus part is skipped when the corpus is absent; the built captures always run, and their
bytes must hash as recorded (a changed builder is reported as such, not compared).

Both ways the kernels run give the same answers: every built capture, and the captures of the
corpus that a command reads as plain Python (:data:`tcpview.engine.warm.PYTHON_MAX_PACKETS`
packets at most) but for the few whose hundreds of ladders, or thousands of packets, take tens
of seconds that way, are described once compiled (the test session's mode) and once as plain
Python.
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path

import pytest
from helpers import corpus_dir, running

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
if str(GOLDEN_DIR) not in sys.path:
    sys.path.insert(0, str(GOLDEN_DIR))

import make_golden as mg
from cases import Case
from cases import built_cases as all_built_cases

from tcpview import jit
from tcpview.engine.warm import PYTHON_MAX_PACKETS

CORPUS = corpus_dir()
BUILT = mg.load_golden(mg.BUILT_GOLDEN)
CORPUS_GOLD = mg.load_golden(mg.CORPUS_GOLDEN)
TOL = mg.TS_TOLERANCE
MAX_FRAMES = 5  # differing frames (or items) reported per section of one capture
ABSENT = "<absent>"


# -- comparing two descriptions ------------------------------------------------------------------
def same(e: object, g: object) -> bool:
    """Equal, with floats (timestamps) within :data:`TOL`."""
    if isinstance(e, bool) or isinstance(g, bool):
        return type(e) is type(g) and e == g
    if isinstance(e, float) or isinstance(g, float):
        return isinstance(e, int | float) and isinstance(g, int | float) and abs(e - g) <= TOL
    if isinstance(e, list) and isinstance(g, list):
        return len(e) == len(g) and all(same(a, b) for a, b in zip(e, g, strict=True))
    if isinstance(e, dict) and isinstance(g, dict):
        return e.keys() == g.keys() and all(same(e[k], g[k]) for k in e)
    return type(e) is type(g) and e == g


def deep_diff(e: object, g: object, path: str) -> list[tuple[str, object, object]]:
    """(path, expected, got) for every leaf that differs."""
    if isinstance(e, dict) and isinstance(g, dict):
        out = []
        for k in sorted(set(e) | set(g), key=str):
            out += deep_diff(e.get(k, ABSENT), g.get(k, ABSENT), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(e, list) and isinstance(g, list):
        out = []
        for i in range(max(len(e), len(g))):
            out += deep_diff(e[i] if i < len(e) else ABSENT, g[i] if i < len(g) else ABSENT, f"{path}[{i}]")
        return out
    return [] if same(e, g) else [(path, e, g)]


def _limited(lines: list[str], what: str) -> list[str]:
    if len(lines) <= MAX_FRAMES:
        return lines
    return lines[:MAX_FRAMES] + [f"  ... and {len(lines) - MAX_FRAMES} more differing {what}"]


def _frame_key(f: object) -> tuple:
    return (0, f, "") if isinstance(f, int) else (1, 0, str(f))


# the analysis flags were a third of Wireshark's before; now they are all of them, compared
# with tshark's frame by frame instead (tests/test_expert.py)
NOT_COMPARED = ("analysis",)
ADDED_KEYS = ("ack_rtt", "bytes_in_flight", "dup_ack_num", "dup_ack_frame", "outer")
ADDED_CONN_KEYS = ("conn_state", "history", "tunnel_parents")  # (the tunnels: checked in test_encap.py)


def diff_rows(name: str, exp: list, got: list, fields: list[str]) -> list[str]:
    """Export rows compared by frame number: ``name: frame N: field: expected X, got Y``."""
    out: list[str] = []
    gframes = [r[0] for r in got]
    if gframes != sorted(gframes, key=_frame_key):
        out.append(f"{name}: export: segments not in frame order")
    e_by = {r[0]: r for r in exp}
    g_by: dict = {}
    for r in got:
        if r[0] in g_by:
            out.append(f"{name}: frame {r[0]}: exported twice")
        g_by[r[0]] = r
    per_frame: list[str] = []
    for frame in sorted(set(e_by) | set(g_by), key=_frame_key):
        er, gr = e_by.get(frame), g_by.get(frame)
        if gr is None:
            per_frame.append(f"{name}: frame {frame}: missing from the export (expected {dict(zip(fields, er, strict=True))})")
        elif er is None:
            per_frame.append(f"{name}: frame {frame}: not in the golden (got {dict(zip(fields, gr, strict=True))})")
        else:
            bad = [f"{fld}: expected {a!r}, got {b!r}" for fld, a, b in zip(fields, er, gr, strict=True)
                   if fld not in NOT_COMPARED and not same(a, b)]
            if bad:
                per_frame.append(f"{name}: frame {frame}: " + "; ".join(bad))
    return out + _limited(per_frame, "frames")


def diff_description(name: str, exp: dict, got: dict, meta: dict) -> list[str]:
    """Every difference between two descriptions of one capture, first frames first."""
    if (exp["sha256"], exp["size"]) != (got["sha256"], got["size"]):
        return [(f"{name}: the capture's bytes differ from the golden's (sha256 {got['sha256'][:16]}.., "
                 f"{got['size']} bytes; golden {exp['sha256'][:16]}.., {exp['size']} bytes): the corpus file or "
                 "the builder changed; restore it, or regenerate the golden if the change is intended")]
    out: list[str] = []
    if exp["opts"] != got["opts"]:
        out.append(f"{name}: options: expected {exp['opts']}, got {got['opts']}")

    def scalar(section: str, key: str, e: dict, g: dict) -> None:
        if not same(e.get(key), g.get(key)):
            out.append(f"{name}: {section}: {key}: expected {e.get(key)!r}, got {g.get(key)!r}")

    # export: per segment
    ex, gx = exp["export"], got["export"]
    scalar("export", "rc", ex, gx)
    scalar("export", "stderr", ex, gx)
    # the analysis's numbers were added after the goldens were made (checked against tshark)
    gx = dict(gx, keys=[k for k in gx.get("keys", []) if k not in ADDED_KEYS]) if isinstance(gx.get("keys"), list) else gx
    scalar("export", "keys", ex, gx)
    out += diff_rows(name, ex["rows"], gx["rows"], meta["seg_fields"])

    # summary
    es, gs = exp["summary"], got["summary"]
    # a field added after the goldens were made: nothing leaves without a memory budget
    if isinstance(gs.get("json"), dict) and "evicted" not in (es.get("json") or {}):
        gs = dict(gs, json=dict(gs["json"]))
        if gs["json"].get("evicted") == {"connections": 0, "segments": 0}:
            del gs["json"]["evicted"]
    # likewise: IP fragments held for reassembly, where there are none
    if isinstance(gs.get("json"), dict) and "fragments" not in (es.get("json") or {}):
        gs = dict(gs, json=dict(gs["json"]))
        if gs["json"].get("fragments") == 0:
            del gs["json"]["fragments"]
    # fields added after the goldens were made (Zeek's view, checked in test_zeek.py)
    if isinstance(gs.get("json"), dict) and isinstance(gs["json"].get("connections"), list):
        gs = dict(gs, json=dict(gs["json"], connections=[
            {k: x for k, x in c.items() if k not in ADDED_CONN_KEYS} for c in gs["json"]["connections"]]))
    scalar("summary", "rc", es, gs)
    scalar("summary", "stderr", es, gs)
    out += _limited([f"{name}: {p}: expected {a!r}, got {b!r}" for p, a, b in deep_diff(es["json"], gs["json"], "summary")],
                    "summary fields")

    # ladder transitions, per connection
    el, gl = exp["ladder"], got["ladder"]
    if len(el) != len(gl):
        out.append(f"{name}: ladder: {len(el)} connections expected, got {len(gl)}")
    lad: list[str] = []
    tf = meta["trans_fields"]
    for cid, (e, g) in enumerate(zip(el, gl, strict=False)):
        for key in ("rc", "stderr"):
            if not same(e[key], g[key]):
                lad.append(f"{name}: ladder --conn {cid}: {key}: expected {e[key]!r}, got {g[key]!r}")
        et, gt = e["transitions"], g["transitions"]
        if not (isinstance(et, list) and isinstance(gt, list)):
            if not same(et, gt):
                lad.append(f"{name}: ladder --conn {cid}: transitions: expected {et!r}, got {gt!r}")
            continue
        for i in range(max(len(et), len(gt))):
            a = dict(zip(tf, et[i], strict=True)) if i < len(et) else ABSENT
            b = dict(zip(tf, gt[i], strict=True)) if i < len(gt) else ABSENT
            if not same(a, b):
                frame = (a if a != ABSENT else b)["frame"]  # type: ignore[index]
                if a == ABSENT or b == ABSENT:
                    lad.append(f"{name}: ladder --conn {cid}: transition {i} (frame {frame}): expected {a!r}, got {b!r}")
                else:
                    bad = [f"{k}: expected {a[k]!r}, got {b[k]!r}" for k in tf if not same(a[k], b[k])]
                    lad.append(f"{name}: ladder --conn {cid}: transition {i} (frame {frame}): " + "; ".join(bad))
    out += _limited(lad, "transitions")

    # summary --at
    ea = {a["arg"]: a for a in exp["at"]}
    ga = {a["arg"]: a for a in got["at"]}
    if list(ea) != list(ga):
        out.append(f"{name}: --at arguments: expected {list(ea)}, got {list(ga)}")
    ats: list[str] = []
    for arg, e_at in ea.items():
        if arg not in ga:
            continue
        e, g = dict(e_at), dict(ga[arg])
        econns, gconns = e.pop("conns", []), g.pop("conns", [])
        pre = f"{name}: summary --at {arg}"
        ats += [f"{pre}: {p}: expected {a!r}, got {b!r}" for p, a, b in deep_diff(e, g, "")]
        if len(econns) != len(gconns):
            ats.append(f"{pre}: {len(econns)} connections expected, got {len(gconns)}")
        for ec, gc in zip(econns, gconns, strict=False):
            bad = [f"{k}: expected {a!r}, got {b!r}" for k, a, b in zip(meta["at_conn_fields"], ec, gc, strict=True)
                   if not same(a, b)]
            if bad:
                ats.append(f"{pre}: conn {ec[0]}: " + "; ".join(bad))
    out += _limited(ats, "--at fields")
    return out


def check(name: str, exp: dict, got: dict, meta: dict) -> None:
    diffs = diff_description(name, exp, got, meta)
    assert not diffs, f"{name}: output differs from the golden ({len(diffs)} differences; first ones):\n" + "\n".join(diffs)


def golden_ats(gold: dict) -> list[str]:
    """The golden's ``--at`` arguments: the new engine is asked the same questions (not at
    fractions of a duration it might compute a hair differently)."""
    return [a["arg"] for a in gold["at"]]


# -- both ways the kernels run --------------------------------------------------------------------
KERNELS = ["python"] if jit.JIT_DISABLED else ["compiled", "python"]




def small(gold: dict) -> bool:
    """Whether a command reads the golden's capture as plain Python, and describing it that
    way is quick (at most 1,000 packets and 50 connections: a ladder each)."""
    summary = gold["summary"]["json"]
    if not isinstance(summary, dict):
        return False
    packets = summary.get("packets", 0)
    return packets <= PYTHON_MAX_PACKETS and packets <= 1000 and len(gold["ladder"]) <= 50


# -- built captures --------------------------------------------------------------------------------
@functools.cache
def built_cases() -> dict[str, Case]:
    return {c.name: c for c in all_built_cases()}


def test_built_cases_are_the_goldens():
    assert sorted(built_cases()) == sorted(BUILT["captures"]), "regenerate tests/golden/built.json.gz"


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("name", sorted(BUILT["captures"]))
def test_built_capture(name, kernels, tmp_path):
    case = built_cases().get(name)
    assert case is not None, f"no builder for {name} any more"
    gold = BUILT["captures"][name]
    with running(kernels):
        got = mg.describe_case(case, tmp_path, ats=golden_ats(gold))
    check(name, gold, got, BUILT["meta"])


@pytest.mark.parametrize("name", ["timer-time-wait-msl2-5"])
def test_same_output_from_a_subprocess(name, tmp_path):
    # the goldens and the tests run the CLI in-process, with the capture read once and the
    # parser built once per capture: a user's `python -m tcpview` prints the same
    case = built_cases()[name]
    gold = BUILT["captures"][name]
    got = mg.describe_case(case, tmp_path, run=mg.run_subprocess, reuse=False, ats=golden_ats(gold))
    check(name, gold, got, BUILT["meta"])


# -- the corpus of public captures -----------------------------------------------------------------
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="corpus of public captures not found")


@needs_corpus
def test_corpus_files_are_the_goldens():
    names = [p.name for p in mg.corpus_files(CORPUS)]
    missing = sorted(set(CORPUS_GOLD["captures"]) - set(names))
    new = sorted(set(names) - set(CORPUS_GOLD["captures"]))
    assert not missing and not new, f"corpus files missing: {missing}; not in the golden: {new}"


@needs_corpus
@pytest.mark.parametrize(("name", "kernels"), [
    (name, kernels) for name, gold in sorted(CORPUS_GOLD["captures"].items()) for kernels in KERNELS
    if kernels == "compiled" or small(gold) or jit.JIT_DISABLED])
def test_corpus_capture(name, kernels):
    path = CORPUS / name
    assert path.is_file(), f"{name} is not in the corpus at {CORPUS}"
    gold = CORPUS_GOLD["captures"][name]
    with running(kernels):
        got = mg.describe(path, gold["opts"], golden_ats(gold))
    check(name, gold, got, CORPUS_GOLD["meta"])


# -- the comparison itself -----------------------------------------------------------------------
def test_a_difference_is_reported_by_file_frame_and_field():
    name = "close-client-first"
    exp = BUILT["captures"][name]
    got = copy.deepcopy(exp)
    fields = BUILT["meta"]["seg_fields"]
    row = got["export"]["rows"][5]
    row[fields.index("client_state")] = "CLOSING"
    row[fields.index("ts")] += TOL / 2  # within the tolerance: not a difference
    got["export"]["rows"][7][fields.index("ts")] += 10 * TOL
    got["ladder"][0]["transitions"][1][BUILT["meta"]["trans_fields"].index("why")] = "guess"
    got["at"][1]["conns"][0][1] = "LISTEN"
    diffs = diff_description(name, exp, got, BUILT["meta"])
    frame6, frame8 = exp["export"]["rows"][5][0], exp["export"]["rows"][7][0]
    exp_state = exp["export"]["rows"][5][fields.index("client_state")]
    assert diffs[0] == f"{name}: frame {frame6}: client_state: expected {exp_state!r}, got 'CLOSING'"
    assert diffs[1].startswith(f"{name}: frame {frame8}: ts: expected ")
    assert any(d.startswith(f"{name}: ladder --conn 0: transition 1 ") and "why: expected" in d for d in diffs)
    assert f"{name}: summary --at {exp['at'][1]['arg']}: conn 0: client_state: expected " in diffs[3]
    assert len(diffs) == 4, diffs
    got["export"]["rows"].pop()
    assert any("missing from the export" in d for d in diff_description(name, exp, got, BUILT["meta"]))
    got["size"] += 1
    assert "bytes differ" in diff_description(name, exp, got, BUILT["meta"])[0]


def test_goldens_are_canonical():
    # a regenerate with unchanged outputs gives the same bytes (sorted keys, no gzip time)
    for path, gold in ((mg.BUILT_GOLDEN, BUILT), (mg.CORPUS_GOLDEN, CORPUS_GOLD)):
        assert mg.dumps_golden(gold["captures"], gold["meta"]) == path.read_bytes(), path.name
        assert gold["meta"] == mg.meta(gold["meta"]["kind"])
