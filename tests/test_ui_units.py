"""Small UI parts on their own: the cells of a line that changed (what a repaint redraws), and
the capture status line fitting the saved file's name to the terminal."""

from __future__ import annotations


def test_changed_span_finds_the_cells_that_differ() -> None:
    from rich.segment import Segment
    from rich.style import Style

    from tcpview.ui.widgets.repaint import changed_span

    red, bold = Style(color="red"), Style(bold=True)
    line = [Segment("TIME_WAIT ", red), Segment("12", bold), Segment("   ESTABLISHED 3", None)]
    assert changed_span(line, list(line), 40) == (0, 0)
    # split differently into segments, same cells: nothing to repaint
    assert changed_span(line, [Segment("TIME_", red), Segment("WAIT ", red), *line[1:]], 40) == (0, 0)
    assert changed_span(line, [line[0], Segment("13", bold), line[2]], 40) == (11, 12)
    assert changed_span(line, [line[0], Segment("12", red), line[2]], 40) == (10, 12)  # style only
    assert changed_span(line, [line[0], Segment("9", bold), line[2]], 40) == (10, 28)  # shorter: the rest moved
    assert changed_span(line, [line[0], line[1], Segment("   ESTABLISHED 30", None)], 40) == (28, 29)
    # a wide character: cells cannot be lined up by characters, so all of the line
    assert changed_span(line, [Segment("時間 ", red), *line[1:]], 40) == (0, 40)


async def test_capture_status_fits_the_saved_file_to_the_line() -> None:
    """The status line names the file being saved to; on a narrow terminal it keeps the file
    name's end (a ring file's number and time), cut from the left, within the line."""
    from textual.app import App

    from tcpview.ui.widgets.capture_status import CaptureStatus

    path = "/var/tmp/captures/a-rather-long-capture-name_00042_20261202093000.pcap"

    class One(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield CaptureStatus()

    for width, whole in ((80, False), (160, True)):
        app = One()
        async with app.run_test(size=(width, 3)) as pilot:
            line = app.query_one(CaptureStatus)
            line.show("lo", {"captured": 1234, "dropped": 0, "skipped": 0, "saved": 1234}, save_path=path)
            await pilot.pause()
            text = line.plain()
            assert len(text) <= width and "saved 1,234" in text
            assert (path in text) == whole
            shown = text.split(" → ", 1)[1]
            assert shown == path if whole else (shown.startswith("…") and path.endswith(shown[1:]) and len(shown) > 8)
