"""The one-line input box above the footer: the filter (``/``), the time to go to (``t``).

One box serves every question an app asks; :meth:`Prompt.open` says which one (its *mode*)
and the messages carry it, so the app knows what the text is for. The box remembers what it
was opened with, so Esc can put that back.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.binding import Binding
from textual.widgets import Input

from ..messages import WidgetMessage


class Prompt(Input):
    """A compact input box, hidden until :meth:`open`; Enter accepts, Esc cancels.

    While open it posts :class:`Prompt.Edited` on every change, :class:`Prompt.Accepted` on
    Enter and :class:`Prompt.Cancelled` on Esc (then it is closed). Accepting does not close
    it: the app calls :meth:`close` once it took the text (an export to a file that exists
    keeps the box open, to give another name).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False, id="prompt.cancel",
                        tooltip="Close the input box, keeping what was there before")]

    # Not docked: a box docked at the bottom shares that edge with the Footer, which covers
    # it. In the layout (composed last, before the Footer) it takes a line above the footer.
    DEFAULT_CSS = """
    Prompt { display: none; margin: 0 1; }
    Prompt.-open { display: block; }
    """

    @dataclass
    class Edited(WidgetMessage):
        """The text changed while the box is open."""

        mode: str
        """What the box was opened for (``filter``, ``time``)."""
        value: str
        """The text now."""

    @dataclass
    class Accepted(WidgetMessage):
        """Enter: the user gave this text."""

        mode: str
        """What the box was opened for."""
        value: str
        """The text."""

    @dataclass
    class Cancelled(WidgetMessage):
        """Esc: the box closed; ``restore`` is the text it was opened with."""

        mode: str
        """What the box was opened for."""
        restore: str
        """The text the box was opened with (what a live filter goes back to)."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, compact=True)
        self.mode: str | None = None
        """What the box is open for (None: closed)."""
        self._restore = ""

    @property
    def is_open(self) -> bool:
        """Whether the box is shown and asking something."""
        return self.mode is not None

    def open(self, mode: str, value: str, placeholder: str) -> None:
        """Show the box for ``mode`` holding ``value``, and focus it."""
        self.mode = mode
        self._restore = value
        self.placeholder = placeholder
        self.value = value
        self.cursor_blink = not self.app.is_headless
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        """Hide the box (the app moves the focus where it wants it)."""
        self.mode = None
        self.remove_class("-open")

    def action_cancel(self) -> None:
        """Close the box; the app puts back what it was opened with."""
        mode = self.mode
        if mode is None:
            return
        self.close()
        self.post_message(self.Cancelled(self, mode, self._restore))

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        event.stop()
        if self.mode is not None:
            self.post_message(self.Edited(self, self.mode, event.value))

    @on(Input.Submitted)
    def _accepted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.mode is not None:
            self.post_message(self.Accepted(self, self.mode, event.value))
