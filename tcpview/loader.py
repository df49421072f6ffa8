"""Read a whole capture (file or stream) into a Timeline, headless."""

from __future__ import annotations

from dataclasses import dataclass

from .sources.pcap import CaptureError, CaptureReader, check_linktypes
from .store import Timeline
from .tracker import Tracker


@dataclass
class LoadResult:
    """What loading produced: the tracker (and its timeline) and the error that stopped it."""

    tracker: Tracker
    error: str | None

    @property
    def timeline(self) -> Timeline:
        return self.tracker.tl


def load(source: str, msl2: float = 60.0, fin_timeout: float = 60.0, follow: bool = False) -> LoadResult:
    """Read ``source`` (a path or ``-``) to its end.

    Damage part-way (a cut-short file, a corrupt record) keeps every packet read before it and
    reports the damage in ``error``; a file that is not a capture at all has no packets.
    """
    tracker = Tracker(msl2=msl2, fin_timeout=fin_timeout)
    try:
        with CaptureReader(source, follow=follow) as reader:
            tracker.feed_records(reader.records())
            check_linktypes(reader)
    except CaptureError as e:
        return LoadResult(tracker, str(e))
    return LoadResult(tracker, None)
