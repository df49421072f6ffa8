"""The one-line input box above the footer: the filter (``/``), the time to go to (``t``).

One box serves every question an app asks; :meth:`Prompt.open` says which one (its *mode*)
and the messages carry it, so the app knows what the text is for. The box remembers what it
was opened with, so Esc can put that back. A mode that can tell bad text as it is typed (the
filter) gives a check: what it says is wrong shows on a line under the text, and Enter is
refused until the text is right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import events, on
from textual.actions import SkipAction
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import Input

from ..messages import WidgetMessage

ERROR_LINES = 3
"""The most lines under the text that say what is wrong with it."""


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
    Prompt > .prompt--error { color: $text-error; }
    """

    COMPONENT_CLASSES = Input.COMPONENT_CLASSES | {"prompt--error"}

    @dataclass
    class Edited(WidgetMessage):
        """The text changed while the box is open."""

        mode: str
        """What the box was opened for (``filter``, ``time``)."""
        value: str
        """The text now."""
        error: str | None = None
        """What the mode's check says is wrong with it (None: nothing); the app must not use
        text with an error."""

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
        self.error: str | None = None
        """What is wrong with the text typed, shown under it (None: nothing)."""
        self._restore = ""
        self._check: Callable[[str], str | None] | None = None
        self._held: list[events.Key] | None = None
        """Keys typed after Enter, before the app took the text (None: Enter not pressed)."""

    @property
    def is_open(self) -> bool:
        """Whether the box is shown and asking something."""
        return self.mode is not None

    def open(self, mode: str, value: str, placeholder: str,
             check: Callable[[str], str | None] | None = None) -> None:
        """Show the box for ``mode`` holding ``value``, and focus it; ``check`` says what is
        wrong with a text (None: nothing), as it is typed.

        Raises:
            SkipAction: the key that asked for the box is not for it (the opening keys are
                priority bindings): another screen (help, a detail) is over the box's, or the
                box is open and focused, so the key is text typed in it. Textual leaves a
                printable key's binding to a focused input only for the keys it can name the
                character of, not ``slash``.
        """
        if self.screen is not self.app.screen or (self.is_open and self.has_focus):
            raise SkipAction()
        self.mode = mode
        self._check = check
        self._show_error(None)
        self._restore = value
        self.placeholder = placeholder
        self.value = value
        self.cursor_blink = not self.app.is_headless
        self.add_class("-open")
        # Focused now, not after the queued messages (as Widget.focus does): the keys typed
        # right after the one that opened the box are next in the app's queue and go to the
        # focused widget (see tcpview.ui.bindings).
        self.screen.set_focus(self)

    async def _on_key(self, event: events.Key) -> None:
        # Enter accepts the text only once the key came back up to the app (a binding), and
        # the app closes the box later still: the keys typed right after it are already in
        # this box's queue. They are for whatever has the focus once the box is closed (the
        # table: "/state", Enter, "j" moves down), so they are held here, and handed on then.
        if self._held is not None and self.is_open:
            event.stop()
            event.prevent_default()
            self._held.append(event)
            return
        if event.key == "enter" and self.is_open:
            self._held = []  # until the app took the text (see close and type_held)
        await super()._on_key(event)

    def type_held(self) -> None:
        """The keys typed after Enter, into the box: the app refused the text and keeps
        asking (they were typed as more of it)."""
        held, self._held = self._held or [], None
        for key in held:
            if key.is_printable and key.character is not None:
                self.insert_text_at_cursor(key.character)

    def _hand_on_held(self) -> None:
        """The keys typed after Enter, to whatever has the focus once the box is closed: the
        app moves it in the same step as it closes the box, by a callback of its own queue, so
        they are posted from a callback queued behind that one."""
        held, self._held = self._held, None
        if not held:
            return

        def post() -> None:
            for key in held:
                again = events.Key(key.key, key.character)
                again.set_sender(self.app)  # as the driver's are
                self.app.post_message(again)

        self.app.call_later(self.app.call_later, post)

    def close(self) -> None:
        """Hide the box (the app moves the focus where it wants it); the keys typed after
        Enter go to what has the focus then."""
        self._hand_on_held()
        self.mode = None
        self._check = None
        self._show_error(None)
        self.remove_class("-open")

    def _show_error(self, error: str | None) -> None:
        if error != self.error:
            self.error = error
            self.set_class(error is not None, "-refused")
            self._fit()

    def _error_lines(self) -> list[Text]:
        """What is wrong, wrapped to the box's width (at most :data:`ERROR_LINES` lines)."""
        if self.error is None:
            return []
        width = max(self.size.width, 20)
        text = Text(self.error, style=self.get_component_rich_style("prompt--error"), end="")
        lines = list(text.wrap(self.app.console, width, overflow="ellipsis"))
        if len(lines) > ERROR_LINES:
            lines = lines[:ERROR_LINES]
            lines[-1].append("…")
            lines[-1].truncate(width, overflow="ellipsis")
        return lines

    def _fit(self) -> None:
        """One line for the text, and as many as what is wrong with it takes."""
        self.styles.height = 1 + len(self._error_lines())
        self.refresh()

    def on_resize(self) -> None:
        """The error wraps anew to the new width."""
        if self.error is not None:
            self._fit()

    def render_line(self, y: int) -> Strip:
        """The text (line 0) and, when it is refused, what is wrong with it (the lines after)."""
        if y >= 1 and self.error is not None:
            lines = self._error_lines()
            width = self.size.width
            if y - 1 < len(lines):
                line = lines[y - 1]
                return Strip(line.render(self.app.console), line.cell_len).extend_cell_length(width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        return super().render_line(y)

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
            self._show_error(self._check(event.value) if self._check is not None else None)
            self.post_message(self.Edited(self, self.mode, event.value, self.error))

    @on(Input.Submitted)
    def _accepted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.mode is None:
            return
        self._show_error(self._check(event.value) if self._check is not None else None)
        if self.error is not None:  # refused: the box stays open, saying why
            self.app.bell()
            self.type_held()
            return
        # the keys typed after Enter wait for the app: it closes the box (they go on to what
        # has the focus then) or keeps asking (it calls type_held)
        self.post_message(self.Accepted(self, self.mode, event.value))
