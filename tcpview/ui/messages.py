"""The app-level messages: what a worker thread found out, posted to the app.

Workers never touch widgets: they post one of these (``post_message`` is thread-safe) and the
app reads it on the UI thread. Each is a past-tense event. Those a worker may post faster
than the UI reads them are replaceable (``can_replace``): only the newest matters.

A widget's own messages are nested in its class, as Textual's are
(``ConnectionTable.RowHighlighted``, ``Ladder.RowSelected``), and derive from
:class:`WidgetMessage`: they carry the widget as ``control``, so a handler can pick the
widget by selector (``@on(ConnectionTable.RowHighlighted, "#table")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from textual.widget import Widget

    from ..engine.pump import BatchInfo
    from ..kernel.compare import Comparison
    from ..kernel.snapshot import KernelSnapshot
    from ..sources.live.choose import Capture


@dataclass
class WidgetMessage(Message):
    """A message a widget posts about itself (the base of the widgets' nested messages)."""

    widget: Widget
    """The widget that posted it."""

    @property
    def control(self) -> Widget:
        """The widget that posted it (what ``@on(..., selector)`` matches)."""
        return self.widget


@dataclass
class BatchArrived(Message):
    """A batch of frames reached the timeline (replaceable: only the newest matters)."""

    info: BatchInfo
    """How far the source has been read."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BatchArrived)


@dataclass
class SourceEnded(Message):
    """The source has no more frames (``info.error`` says why, if it failed)."""

    info: BatchInfo
    """The last batch's figures."""


@dataclass
class KernelRead(Message):
    """A kernel snapshot was read and compared with the timeline (replaceable)."""

    snap: KernelSnapshot
    """The kernel's socket table."""
    results: dict[int, Comparison]
    """The comparison of each captured connection with it, by connection id."""
    processes: tuple[dict, dict[int, str]] | None = None
    """When new processes were found holding the captured connections' sockets: the
    filter's process tuples and the ``proc`` column's texts, by connection id."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, KernelRead)


@dataclass
class CaptureSwitched(Message):
    """The capture on another interface is open and the old one stopped."""

    source: Capture
    """The new capture."""
    old: Capture
    """The capture that was stopped."""


@dataclass
class SwitchFailed(Message):
    """Capturing on ``interface`` could not start; the old capture runs on."""

    interface: str
    """The interface asked for."""
    error: str
    """Why it could not be captured on, one line."""


@dataclass
class SocketsRefreshed(Message):
    """The kernel's socket table was read again (replaceable: only the newest matters)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SocketsRefreshed)
