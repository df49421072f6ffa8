"""Shared helpers for the tracker tests (moved from test_tracker.py)."""

from __future__ import annotations

from helpers import Flow

M32 = 1 << 32

EST = ("ESTABLISHED", "ESTABLISHED")
HANDSHAKE = [("SYN_SENT", "LISTEN"), ("SYN_SENT", "SYN_RECEIVED"), EST]


def established(**kw) -> Flow:
    f = Flow(**kw)
    f.handshake()
    return f


def closed_by_client(t0: float = 100.0) -> Flow:
    f = established(t0=t0)
    f.c("FA")
    f.s("A")
    f.s("FA")
    f.c("A")
    return f
