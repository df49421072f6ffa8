"""Fuzzing the reader and the engine with fixed seeds: damaged captures end in a one-line
CaptureError or not at all, never in another exception or a hang, and what was read is
consistent. The mutations and the checks are in fuzzhelp.py; ``benchmarks/fuzz.py`` runs
as many cases as you like and says how to reproduce a failure (``--seed S --case K``)."""

from __future__ import annotations

import pytest
from fuzzhelp import (
    built_seeds,
    check_timeline,
    corpus_seeds,
    run_file_cases,
    run_frame_cases,
    seed_frames,
)

from tcpview.engine.pump import load

BUILT_CASES = 1200
CORPUS_CASES = 1200
FRAME_CASES = 400


@pytest.fixture(scope="module")
def built() -> list[tuple[str, bytes]]:
    return built_seeds()


def report(failures: list[str]) -> str:
    return f"{len(failures)} failing cases:\n" + "\n".join(failures[:20])


def test_the_seeds_themselves_read_cleanly(built, tmp_path):
    """The undamaged seeds: no error, every frame TCP, consistent (so a failure below is the
    mutation's doing)."""
    path = tmp_path / "seed"
    for name, data in built:
        path.write_bytes(data)
        res = load(str(path))
        assert res.error is None, name
        tl = res.timeline
        assert tl.packets == tl.tcp_packets > 0 and not tl.skipped, name
        check_timeline(tl)


def test_mutated_built_captures(built, tmp_path):
    failures = run_file_cases(built, 1, range(BUILT_CASES), tmp_path / "case")
    assert not failures, report(failures)


def test_mutated_corpus_captures(tmp_path):
    seeds = corpus_seeds()
    if not seeds:
        pytest.skip("the capture corpus is not here (see tests/helpers.py corpus_dir)")
    failures = run_file_cases(seeds, 2, range(CORPUS_CASES), tmp_path / "case")
    assert not failures, report(failures)


def test_mutated_frames_fed_to_the_tracker():
    failures = run_frame_cases(seed_frames(), 3, range(FRAME_CASES))
    assert not failures, report(failures)
