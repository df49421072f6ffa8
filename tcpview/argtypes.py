"""argparse value types shared by every sub-command; a bad value is a one-line usage error."""

from __future__ import annotations

import argparse
import math


def _number(v: str, kind: type, base: int = 10) -> float | int:
    try:
        return int(v, base) if kind is int else float(v)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {v!r}") from None


def positive_int(v: str) -> int:
    """A whole number > 0 (counts, sizes)."""
    n = int(_number(v, int))
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {v}")
    return n


def nonnegative_int(v: str) -> int:
    """A whole number >= 0, also written 0x.. (seeds)."""
    n = int(_number(v, int, 0))
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {v}")
    return n


def positive_float(v: str) -> float:
    """A finite number > 0 (speeds, durations, periods)."""
    f = float(_number(v, float))
    if not f > 0 or math.isinf(f):
        raise argparse.ArgumentTypeError(f"must be a positive number: {v}")
    return f


def nonnegative_float(v: str) -> float:
    """A finite number >= 0 (times from the start, timer lengths)."""
    f = float(_number(v, float))
    if not f >= 0 or math.isinf(f):
        raise argparse.ArgumentTypeError(f"must not be negative: {v}")
    return f
