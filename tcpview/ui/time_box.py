"""What the time box (``t``) asks for: the text typed, read as a time from the start of the
capture, and what to tell the user about it (no Textual here; the app acts on the answer)."""

from __future__ import annotations

from ..textutil import safe
from .fmt import offset, parse_time


def time_request(text: str, duration: float, complete: bool,
                 reads_on: bool = False) -> tuple[float | None, str | None]:
    """The time ``text`` asks for, and a warning to show (None: none).

    Args:
        text: what was typed: seconds (``12.5``) or ``m:ss`` / ``h:mm:ss``.
        duration: seconds from the first to the last segment read so far.
        complete: the whole source is read (a file loaded to its end); otherwise a time past
            ``duration`` is past what is read *so far* (still loading, or a live capture).
        reads_on: the reader goes on to any time asked for (a file read again under a memory
            budget): a time past what is read is no warning, the cursor follows once it is read.

    Returns:
        ``(seconds, None)`` for a time within the capture; ``(None, warning)`` for text that is
        no time; ``(seconds, warning)`` for a time past the end: the cursor goes to the end
        (the player clamps), and the warning names where that is.
    """
    try:
        seconds = parse_time(text)
    except ValueError:
        return None, f"not a time: {safe(text.strip())} (seconds from the start, or m:ss); t to try again"
    if seconds <= duration or reads_on:
        return seconds, None
    end = f"{duration:.3f} s ({offset(duration, duration)})"
    where = f"the capture ends at {end}" if complete else f"what is read so far ends at {end}"
    return seconds, f"{seconds:g} s is past the end: {where}; the cursor is there"
