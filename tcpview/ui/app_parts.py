"""What the viewer's parts (:class:`~tcpview.ui.session.SessionViews`,
:class:`~tcpview.ui.prompts.PromptQuestions`) use of the app they are part of: its widgets and
methods, declared here for the type checker. :class:`tcpview.ui.app.TcpviewApp` has them all
(``textual.app.App`` the ``notify`` and ``call_from_thread``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.player import Player
    from ..engine.timeline.timeline import Timeline
    from .widgets.conn_table import ConnectionTable
    from .widgets.graph_pane import GraphPane
    from .widgets.ladder import Ladder
    from .widgets.player_bar import PlayerBar
    from .widgets.prompt import Prompt
    from .widgets.why_line import WhyLine


class AppParts:
    """The app's attributes its parts use (annotations only: nothing here at run time)."""

    _table: ConnectionTable
    _ladder: Ladder
    _graph: GraphPane
    _bar: PlayerBar
    _why: WhyLine
    _prompt: Prompt
    _start_at: float | None
    """Where the cursor goes once that part of the capture is read (None: nowhere)."""

    if TYPE_CHECKING:
        notify: Callable[..., None]
        call_from_thread: Callable[..., Any]
        _read_source: Callable[[], object]  # a worker

        @property
        def source(self) -> Any: ...
        @property
        def tl(self) -> Timeline: ...
        @property
        def player(self) -> Player: ...
        @property
        def loaded(self) -> bool: ...
        def refresh_views(self, force: bool = False, settle: bool = True) -> None: ...
        def seek_offset(self, seconds: float) -> None: ...
        def action_set_filter(self, text: str) -> None: ...
