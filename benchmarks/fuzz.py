"""Fuzz the capture reader and the engine for as long as you like.

The cases are those of ``tests/test_fuzz.py`` (``tests/fuzzhelp.py``), as many as asked:
mutated captures built with scapy (``built``), mutated captures of the shared corpus
(``corpus``, when it is there) and mutated frames fed straight to the tracker (``frames``),
taken in turn. Each failure is printed with the seed, the case and the mutation, and how to
run that case alone; the exit status is 1 when any case failed.

``--boundscheck`` runs the compiled kernels with bounds checking (``NUMBA_BOUNDSCHECK=1``),
so a read past the end of an array raises instead of reading whatever is there. The kernels
are compiled for it into a temporary cache first (about a minute).

Usage::

    python benchmarks/fuzz.py [--cases 20000] [--seed S] [--minutes M] [--kinds built,corpus,frames]
    python benchmarks/fuzz.py --seed S --kind built --case K [--save FILE]    # one case again
    python benchmarks/fuzz.py --boundscheck --cases 5000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

KINDS = ("built", "corpus", "frames")


def one_case(kind: str, seed: int, number: int, save: Path | None) -> int:
    """Run one case and say what it is and what happened."""
    import fuzzhelp as fh

    with tempfile.TemporaryDirectory(prefix="tcpview-fuzz-") as tmp:
        if kind == "frames":
            recs, what = fh.frame_case(fh.seed_frames(), seed, number)
            print(f"seed {seed} frame case {number}: {what}")
            bad = fh.within(fh.DEADLINE, lambda: fh.run_frame_case(recs))
        else:
            seeds = fh.built_seeds() if kind == "built" else fh.corpus_seeds()
            case = fh.make_case(seeds, seed, number)
            print(f"seed {seed} {kind} case {number}: {case.describe()} ({len(case.data)} bytes)")
            if save is not None:
                save.write_bytes(case.data)
                print(f"written to {save}")
            bad = fh.within(fh.DEADLINE, lambda: fh.run_case(case, Path(tmp) / "case"))
    print("ok" if bad is None else f"FAILED: {fh.describe_failure(bad)}")
    return 0 if bad is None else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fuzz the capture reader and the engine")
    ap.add_argument("--cases", type=int, default=20000, help="cases to run in all (default 20000)")
    ap.add_argument("--seed", type=int, help="run seed (default: a new one, printed)")
    ap.add_argument("--minutes", type=float, help="stop after this long, however many cases are left")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"which cases, in turn (default {','.join(KINDS)})")
    ap.add_argument("--kind", choices=KINDS, help="with --case: the kind of the case to run again")
    ap.add_argument("--case", type=int, help="run this one case (with --seed and --kind) and describe it")
    ap.add_argument("--save", type=Path, help="with --case: write the case's capture to this file")
    ap.add_argument("--boundscheck", action="store_true", help="compiled kernels check every index (slower)")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 1 << 31)

    if a.boundscheck and os.environ.get("NUMBA_BOUNDSCHECK") != "1":
        cache = tempfile.mkdtemp(prefix="tcpview-numba-boundscheck-")
        try:
            env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
            args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--boundscheck"]
            if a.seed is None:
                args += ["--seed", str(seed)]
            print("compiling the kernels with bounds checks (about a minute)...", flush=True)
            return subprocess.run([sys.executable, __file__, *args], env=env, check=False).returncode
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    from tcpview.engine.warm import ready

    ready()
    if a.case is not None:
        if a.kind is None or a.seed is None:
            ap.error("--case needs --seed and --kind")
        return one_case(a.kind, seed, a.case, a.save)

    import fuzzhelp as fh

    kinds = [k for k in a.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        ap.error(f"--kinds: choose among {', '.join(KINDS)}")
    seeds = {"built": fh.built_seeds(), "corpus": fh.corpus_seeds() if "corpus" in kinds else []}
    if "corpus" in kinds and not seeds["corpus"]:
        print("fuzz: the capture corpus is not here; no corpus cases", file=sys.stderr)
        kinds.remove("corpus")
    frames = fh.seed_frames()
    bounds = " with bounds checks" if os.environ.get("NUMBA_BOUNDSCHECK") == "1" else ""
    print(f"fuzz: seed {seed}, up to {a.cases} cases ({', '.join(kinds)}){bounds}"
          + (f", at most {a.minutes:g} minutes" if a.minutes else ""), flush=True)

    start = time.monotonic()
    told = start
    ran = dict.fromkeys(kinds, 0)
    failures: list[tuple[str, int, str]] = []
    with tempfile.TemporaryDirectory(prefix="tcpview-fuzz-") as tmp:
        path = Path(tmp) / "case"
        for k in range(a.cases):
            if a.minutes and time.monotonic() - start > a.minutes * 60:
                break
            kind = kinds[k % len(kinds)]
            number = k // len(kinds)
            if kind == "frames":
                got = fh.run_frame_cases(frames, seed, [number])
            else:
                got = fh.run_file_cases(seeds[kind], seed, [number], path)
            ran[kind] += 1
            for line in got:
                failures.append((kind, number, line))
                print(f"FAILED {line}\n  again: python benchmarks/fuzz.py --seed {seed} --kind {kind} --case {number}",
                      flush=True)
                if "(hang)" in line:
                    print("fuzz: a case hangs; stopping (its thread still runs)", file=sys.stderr)
                    break
            else:
                now = time.monotonic()
                if now - told >= 15:
                    told = now
                    print(f"  {sum(ran.values())} cases, {len(failures)} failed, {now - start:.0f} s", flush=True)
                continue
            break
    took = time.monotonic() - start
    total = sum(ran.values())
    print(f"fuzz: seed {seed}: {total} cases in {took:.0f} s ({', '.join(f'{k} {n}' for k, n in ran.items())}); "
          f"{len(failures)} failed{bounds}; load average {os.getloadavg()[0]:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
