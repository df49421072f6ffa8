"""What the Textual app tests on the capture with known states share (see uihelp): the capture
fixture, the window sizes, waiting for the load, and seeking by typing a time. Used by
test_ui_app.py and test_ui_app_filter.py, which import the fixture as ``capture_fixture`` (it is
registered as ``capture``: the tests' parameter of that name would otherwise shadow the import).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_until
from uihelp import write_capture

from tcpview.ui.app import TcpviewApp

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(name="capture")
def capture_fixture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "known.pcap")


async def loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until the source is read and the views show it."""
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


async def seek(app: TcpviewApp, pilot, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Type a time into the time box, as a user does."""
    await pilot.press("t")
    await pilot.press(*str(seconds))
    await pilot.press("enter")
    await pilot.pause()
