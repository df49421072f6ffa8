"""The questions the viewer asks in its input box (:class:`~tcpview.ui.widgets.prompt.Prompt`):
one table, :attr:`PromptQuestions.PROMPTS`, says for each mode what the box shows, what it
opens with, and what the answer does.

Enter checks the text first: a text that is refused keeps the box open and says why; one
that is taken closes the box before it acts (a file read again for a time notifies). A mode
that can tell bad text as it is typed (the filter) says what is wrong under the text, and
Enter is refused until it is right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from textual import work

from ..engine.analysis.conn_filter import check as check_filter
from ..engine.output.writers import FORMATS
from ..errors import UserError
from .app_parts import AppParts
from .export_action import default_name, export, parse_request, proposal
from .time_box import time_request
from .widgets.prompt import Prompt


@dataclass(frozen=True)
class PromptMode:
    """One question the input box asks, and what the app does with the answer. Each
    function takes the app first."""

    label: str
    """What the box asks, first in its placeholder."""
    hint: Callable[[Any], str]
    """The rest of the placeholder: what to type."""
    default: Callable[[Any], str]
    """The text the box opens with."""
    check: Callable[[Any, str], Any]
    """Enter: the text made into what :attr:`act` takes; raises UserError (one line, shown)
    to refuse it and keep the box open."""
    act: Callable[[Any, Any], None]
    """What the answer does (the box is closed by then)."""
    edited: Callable[[Any, str], None] | None = None
    """Called on every change (the filter applies as it is typed)."""
    cancelled: Callable[[Any, str], None] | None = None
    """Esc: called with the text the box opened with."""
    typed: Callable[[str], str | None] | None = None
    """What is wrong with the text as it is typed (None: nothing), shown under it; ``edited``
    is called only with text it finds nothing wrong with, and Enter is refused until then."""


FILTER_HINT = ": state:CLOSE_WAIT port:443 10.0.0.5   (enter keep, esc cancel)"
"""The filter box's placeholder after its label."""


def _as_is(_app: Any, text: str) -> str:
    return text


def _empty(_app: Any) -> str:
    return ""


class PromptQuestions(AppParts):
    """For :class:`tcpview.ui.app.TcpviewApp` (its attributes: ``_prompt``, ``_table``,
    ``player``, ``tl``, ``source``, ``seek_offset``, ``action_set_filter``)."""

    def _ask(self, mode: str) -> None:
        """Open the input box for ``mode`` (a key of :attr:`PROMPTS`)."""
        m = self.PROMPTS[mode]
        self._prompt.open(mode, m.default(self), m.label + m.hint(self), check=m.typed)

    def action_filter(self) -> None:
        """Open the filter box."""
        self._ask("filter")

    def action_export(self) -> None:
        """Open the export box: the selected connection, or the filtered ones."""
        self._ask("export")

    def action_goto_time(self) -> None:
        """Open the time box: seconds from the start."""
        self._ask("time")

    # handlers by name: Textual collects @on handlers only from its own classes, not a mixin
    def on_prompt_edited(self, event: Prompt.Edited) -> None:
        """The text changed: the mode's ``edited``, if any and the text has nothing wrong."""
        edited = self.PROMPTS[event.mode].edited
        if edited is not None and event.error is None:
            edited(self, event.value)

    def on_prompt_cancelled(self, event: Prompt.Cancelled) -> None:
        """Esc: the mode's ``cancelled``, if any; the table has the focus again."""
        cancelled = self.PROMPTS[event.mode].cancelled
        if cancelled is not None:
            cancelled(self, event.restore)
        self._table.focus()

    def on_prompt_accepted(self, event: Prompt.Accepted) -> None:
        """Enter: check the text; if taken, close the box and act on it."""
        m = self.PROMPTS[event.mode]
        try:
            answer = m.check(self, event.value)
        except UserError as e:
            self.notify(str(e), severity="warning", markup=False)
            self._prompt.type_held()  # still asking: what was typed after Enter is more text
            return
        self._prompt.close()
        self._table.focus()
        m.act(self, answer)

    # -- the filter: it applies as it is typed; Esc puts back the one the box opened with ------
    def _filter_text(self) -> str:
        return self._table.model.query.text

    def _preview_filter(self, text: str) -> None:
        self._table.set_query(text)
        self.refresh_views()

    # -- export ------------------------------------------------------------------------------
    def _export_ids(self) -> list[int]:
        if self._table.model.query.text:
            return [int(i) for i in self._table.rows]
        return [] if self._table.selected is None else [self._table.selected]

    def _export_hint(self) -> str:
        what = f"{len(self._export_ids())} filtered" if self._table.model.query.text else "selected"
        # short enough for 80 columns: the formats are what a newcomer needs to see
        return f" {what}: FORMAT [FILE] ({'|'.join(FORMATS)})"

    def _export_proposal(self) -> str:
        return proposal(self.source, self._export_ids())

    def _check_export(self, text: str) -> tuple[str, str]:
        return parse_request(text, partial(default_name, self.source, self._export_ids()))

    def _start_export(self, request: tuple[str, str]) -> None:
        self._export(*request, self._export_ids())

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export(self, fmt: str, path: str, ids: list[int]) -> None:
        try:
            done = export(self.tl, ids, fmt, path, self.tl.captures or getattr(self.source, "path", None))
        except (UserError, OSError) as e:
            self.call_from_thread(self.notify, f"export: {e}", severity="error", markup=False)
            return
        self.call_from_thread(self.notify, done, markup=False)

    # -- go to a time ------------------------------------------------------------------------
    def _time_hint(self) -> str:
        return f": seconds from the start, 0 … {self.player.duration:.3f}   (enter go)"

    def _go_to_time(self, text: str) -> None:
        # the box is closed even on a bad time (taken as is): the next t starts afresh
        seconds, warning = time_request(text, self.player.duration, self.loaded and not self.player.live,
                                        reads_on=self.tl.pin is not None and not self.loaded)
        if warning:
            self.notify(warning, severity="warning", markup=False)
        if seconds is not None:
            self.seek_offset(seconds)

    PROMPTS: ClassVar[dict[str, PromptMode]] = {
        "filter": PromptMode("filter", lambda app: FILTER_HINT, _filter_text, _as_is,
                             lambda app, text: app.action_set_filter(text),
                             edited=_preview_filter, cancelled=_preview_filter, typed=check_filter),
        "export": PromptMode("export", _export_hint, _export_proposal, _check_export, _start_export),
        "time": PromptMode("go to time", _time_hint, _empty, _as_is, _go_to_time),
    }
    """Each mode of the input box: what it asks and what the answer does."""
