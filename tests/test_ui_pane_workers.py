"""The stream and graph panes read the capture's frames on worker threads, never on the UI
thread (a file read again, or a big connection, would freeze the screen): Pilot, with the
viewer's own frame store watched."""

from __future__ import annotations

import threading
from pathlib import Path

from helpers import Flow, wait_until, write_frames_pcap

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.graph_pane import GraphPane
from tcpview.ui.widgets.stream_pane import StreamPane


def sacked(path: Path) -> Path:
    """A connection with payload both ways and a SACK block (read from its frame again)."""
    f = Flow(cport=42000)
    f.handshake()
    f.c("PA", b"GET / HTTP/1.1\r\n\r\n")
    start = f.nxt[0]
    f.nxt[0] += 100  # lost before the capture point
    f.c("PA", b"b" * 100)
    f.s("A", ack=start, options=[("SAck", (start + 100, start + 200))])
    f.s("PA", b"HTTP/1.1 200 OK\r\n\r\n")
    return write_frames_pcap(path, f.frames)


async def test_the_stream_and_graph_panes_read_frames_on_workers(tmp_path: Path) -> None:
    app = TcpviewApp(FileSource(str(sacked(tmp_path / "sack.pcap"))), tick=3600)
    on_ui_thread: list[bool] = []
    get = app.pump.frames.get

    def watched(number: int):  # type: ignore[no-untyped-def]
        on_ui_thread.append(threading.current_thread() is threading.main_thread())
        return get(number)

    app.pump.frames.get = watched  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        graph, stream = app.query_one(GraphPane), app.query_one(StreamPane)
        await pilot.press("v", "m")  # the tcptrace graph: its SACK blocks come from the frames
        assert await wait_until(lambda: graph.graph is not None and graph.kind == "tcptrace"
                                and "sack" in [s.name for s in graph.graph.series], 10, 0.02, pilot.pause)
        await pilot.press("f")  # the stream: its payload comes from the frames
        assert await wait_until(lambda: stream.follow_info is not None, 10, 0.02, pilot.pause)
        await pilot.pause()
        text = "\n".join(stream.render_line(y).text for y in range(stream.size.height))
        assert "GET / HTTP/1.1" in text and "HTTP/1.1 200 OK" in text and "100 bytes missing" in text
        assert on_ui_thread and not any(on_ui_thread), on_ui_thread
