"""The ladder's tags (Pilot, and the names alone): one kebab-case style for every flag and
anomaly, each a filter word; a short arrow keeps its tags before ``win=``/``ack=``; the line
under the ladder says what a tag means; ``n`` / ``N`` say so when there is no flag to go to.
The capture (uihelp.lossy_frames): connection 0 clean, 1 duplicate ACKs and a retransmission,
2 clean, 3 a zero window."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import Flow, track, wait_until, write_frames_pcap
from uihelp import Notes, lossy_frames

from tcpview.engine.analysis.query import ConnQuery, ConnRows
from tcpview.engine.core.tcp import Analysis, Anomaly
from tcpview.engine.output.ladder import LadderRow, tags
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.ladder import Ladder
from tcpview.ui.widgets.why_line import WhyLine

KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*( #\d+)?$")


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_frames_pcap(tmp_path / "flags.pcap", lossy_frames())


async def _loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


def _messages(notes: Notes) -> list[str]:
    return [str(n.message) for n in notes]


def test_every_tag_is_short_kebab_case_and_a_filter_word() -> None:
    """Every analysis flag's and anomaly's tag: kebab-case, at most 17 characters; ``an:TAG``
    filters on that very flag, and so do the JSON's names (``an:rst_out_of_window``)."""
    for a in Analysis:
        row = LadderRow(0, 0.0, 1, True, 0, "", "", "", analysis=int(a), dup_ack=2)
        (text, _kind), = tags(row)
        assert KEBAB.match(text) and len(text) <= 17, text
        word = text.split(" #")[0]
        for term in (f"an:{word}", f"analysis:{a.name.lower()}"):
            q = ConnQuery.parse(term)
            assert not q.errors and q.analysis == [int(a)] and not q.anomalies, term
    for b in Anomaly:
        row = LadderRow(0, 0.0, 1, True, 0, "", "", "", anomaly=int(b))
        (text, kind), = tags(row)
        assert kind == "anomaly" and KEBAB.match(text) and len(text) <= 17, text
        for term in (f"an:{text}", f"analysis:{b.name.lower()}"):
            q = ConnQuery.parse(term)
            assert not q.errors and q.anomalies == [int(b)] and not q.analysis, term
    assert "rst-out-of-win" in [t for t, _k in tags(LadderRow(0, 0.0, 1, True, 0, "", "", "",
                                                             anomaly=int(Anomaly.RST_OUT_OF_WINDOW)))]


def test_an_anomaly_filters_the_connections_that_have_it() -> None:
    a = Flow(cport=40000, t0=0.0)
    a.handshake()
    a.c("FPU", ack=5)  # an Xmas scan's segment
    b = Flow(cport=40001, t0=1.0, frames=a.frames)
    b.handshake()
    tl = track(a.frames).tl
    rows = ConnRows()
    for term, want in (("an:xmas", [0]), ("is:anomaly", [0]), ("an:syn-fin", []), ("an:xmas port:40001", [])):
        rows.set_query(term)
        assert list(rows.compute(tl, None)) == want, term


async def test_a_short_arrow_keeps_its_tags_before_win_and_ack(capture: Path) -> None:
    """At 80 columns the duplicate ACKs' rows show ``[dup-ack #n]`` whole (their win= and ack=
    give way); at 120 everything fits."""
    for size, whole in (((80, 24), False), ((120, 40), True)):
        app = TcpviewApp(FileSource(str(capture)), tick=3600)
        async with app.run_test(size=size) as pilot:
            await _loaded(app, pilot)
            ladder = app.query_one(Ladder)
            await pilot.press("j", "enter")  # connection 1
            await pilot.pause()
            text = "\n".join(ladder.render_line(y).text for y in range(ladder.size.height))
            for k in (1, 2, 3):
                assert f"[dup-ack #{k}]" in text, (size, text)
            assert "[retrans]" in text
            dup = next(line for line in text.splitlines() if "[dup-ack #1]" in line)
            assert ("win=" in dup) == whole, dup
            assert "…" not in dup.split("[dup-ack")[1]  # nothing of the tag is cut
            plain = next(line for line in text.splitlines() if "SYN,ACK" in line)
            assert "win=" in plain  # a row without tags keeps its window


async def test_the_why_line_says_what_a_tag_means(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(app, pilot)
        ladder, why = app.query_one(Ladder), app.query_one(WhyLine)
        await pilot.press("j", "enter", "ctrl+home", "n")  # connection 1, its first flag
        await pilot.pause()
        assert "Duplicate ACK #1:" in why.explanation and "missing bytes" in why.explanation
        assert why.display
        await pilot.press("n", "n", "n")  # the retransmission
        await pilot.pause()
        assert why.explanation.startswith("Retransmission: the sender sends again bytes")
        await pilot.press("ctrl+home", "j")  # the SYN+ACK: a state change, no tag
        await pilot.pause()
        assert "Duplicate" not in why.explanation and "SYN+ACK" in why.explanation
        assert ladder.row(ladder.cursor) is not None and not tags(ladder.row(ladder.cursor))


async def test_n_says_so_when_there_is_no_flag_to_go_to(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)), tick=3600)
    notes = Notes()
    async with app.run_test(size=(120, 40), message_hook=notes) as pilot:
        await _loaded(app, pilot)
        table, ladder = app.query_one(ConnectionTable), app.query_one(Ladder)
        await pilot.press("enter")  # connection 0's ladder: no flag in it
        await pilot.press("n")
        await pilot.pause()
        assert any(m.startswith("#0 has no segment with an analysis flag") for m in _messages(notes))
        await pilot.press("escape", "ctrl+end", "n")  # the table's last row: no flagged connection below
        await pilot.pause()
        assert table.selected == 3
        await pilot.press("n")
        await pilot.pause()
        assert any(m.startswith("no connection with an analysis flag below this one (2 listed") for m in
                   _messages(notes)), _messages(notes)
        app.action_set_filter("port:41000")  # connection 0 alone: no flag in the table
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert any(m.startswith("no connection listed has a segment with an analysis flag") for m in _messages(notes))
        app.action_set_filter("")
        await pilot.press("j", "enter", "ctrl+end", "n")  # connection 1's last row: nothing after it
        await pilot.pause()
        assert any("no flagged segment after this one in #1 (4 in all; N goes back)" in m for m in _messages(notes))
        assert ladder.cid == 1
