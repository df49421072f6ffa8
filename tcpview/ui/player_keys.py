"""The player's keys in the viewer: play and pause, back to live, step, jump, start and end,
the speed, and seeking; each moves the cursor through the session and shows the views there."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..engine.player import SPEEDS, speed_label
from .session import SessionViews


class PlayerKeys(SessionViews):
    """For :class:`tcpview.ui.app.TcpviewApp` (its views: ``refresh_views``)."""

    _last_tick: float
    """When the UI tick last ran (play resumes from now)."""
    _speed_explained = False
    """Whether a speed key pressed while live said what the speed is for (once is enough)."""

    if TYPE_CHECKING:
        def refresh_views(self, force: bool = False, settle: bool = True) -> None: ...

    def action_play_pause(self) -> None:
        """Play / pause (live: freeze the view, then play the past from the cursor)."""
        self.session.bounds()
        self.player.toggle()
        self._bar.hint = ""
        self._last_tick = time.monotonic()
        self.refresh_views()

    def action_live(self) -> None:
        """Back to live: the cursor follows new data again (a live source)."""
        if self.player.live:
            self.action_end()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``L`` (back to live) is offered only while a live source's cursor is in the past."""
        if action == "live":
            return self.player.live and not self.player.following
        return True

    def _move_cursor(self, move: Callable[[], object], pause: bool = True) -> None:
        """Pause, then ``move`` the player's cursor within the capture read so far, and show it.
        Where a memory budget let the part at the new cursor go, a capture file is read again
        for it (:meth:`_read_again`); anything else stops at what is kept."""
        tl, p = self.tl, self.player
        self.session.bounds(horizon=False)  # no horizon yet: where the move wants to go
        if pause:
            p.pause()
        move()
        if p.t is not None and tl.horizon is not None and p.t < tl.horizon and self.session.can_read_again():
            self._read_again(p.t)
            return
        self.refresh_views()

    def action_step(self, n: int) -> None:
        """Cursor ``n`` segments forward (or back when negative)."""
        self._move_cursor(partial(self.player.step, n))

    def action_jump(self, fraction: float) -> None:
        """Cursor a fraction of the capture forward (or back when negative)."""
        self._move_cursor(partial(self.player.jump, fraction))

    def action_start(self) -> None:
        """Cursor to the first segment."""
        self._move_cursor(self.player.to_start)

    def action_end(self) -> None:
        """Cursor to the newest segment; it follows new data from there."""
        self.player.to_end()
        self.refresh_views()

    def action_faster(self) -> None:
        """Next playback speed up."""
        self.player.faster()
        self._speed_changed()

    def action_slower(self) -> None:
        """Next playback speed down."""
        self.player.slower()
        self._speed_changed()

    def action_speed(self, index: int) -> None:
        """Set the playback speed by its index in ``SPEEDS``."""
        self.player.speed_index = max(0, min(len(SPEEDS) - 1, index))
        self._speed_changed()

    def _speed_changed(self) -> None:
        """The bar shows the speed, except while live (which runs at the clock's pace): then
        say what the speed is for."""
        p = self.player
        if p.live and p.following:  # (the bar shows no speed while live)
            if self._speed_explained:  # a key pressed again: the speed alone, briefly (toasts stack)
                self.notify(f"speed {speed_label(p.speed)}", title="speed", timeout=1.5, markup=False)
            else:
                self._speed_explained = True
                self.notify(f"speed {speed_label(p.speed)}: for replaying the past — space pauses, space again "
                            "plays from the cursor at this speed, L is live again", title="speed", markup=False)
        self._bar.refresh()

    def seek_offset(self, seconds: float) -> None:
        """Cursor ``seconds`` after the first packet (tests and the time prompt use it)."""
        if not self._read_on_to(seconds):
            self._move_cursor(partial(self.player.seek_offset, seconds))
