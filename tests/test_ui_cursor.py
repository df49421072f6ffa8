"""The viewer, driven with Pilot: every cell of the connection table as of the cursor (the
rtt, retr and notes columns included), and a filter term the table cannot read refused where
it is typed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cursorhelp import as_then, fresh, mixed
from helpers import cli, wait_until, write_frames_pcap

from tcpview.sources.base import FileSource
from tcpview.ui import fmt
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.prompt import Prompt


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return write_frames_pcap(tmp_path / "mixed.pcap", mixed())


async def loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    await app.workers.wait_for_complete()
    await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
    await pilot.pause()


def cells(table: ConnectionTable) -> dict[int, dict[str, str]]:
    """What the table shows on screen: each listed connection's cells by column key."""
    out = {}
    for i, cid in enumerate(table.rows):
        text = table.render_line(1 + i).text
        row, x = {}, 0
        for col in table.columns():
            row[col.key] = text[x: x + col.width].strip()
            x += col.width + 1
        out[int(cid)] = row
    return out


async def test_rtt_retr_and_notes_are_those_of_the_cursor_at_every_step(capture: Path) -> None:
    """g, then one segment at a time to the end: the rtt, retr and notes cells of every row
    are what a fresh read of the frames up to the cursor says (they were the end's values at
    every cursor: SYN_SENT with an rtt and 2 retransmissions)."""
    frames = mixed()
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(140, 40)) as pilot:  # wide enough for rtt, retr and notes beside slow
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        assert {"rtt", "retr", "notes"} <= {c.key for c in table.columns()}
        await pilot.press("g")
        seen_rtt = []
        for step in range(len(frames)):
            if step:
                await pilot.press("right")
            await pilot.pause()
            t = app.player.query_time()
            k = sum(1 for ts, _lt, _raw in frames if ts <= t)
            notes, irtt, retr, _ana = as_then(fresh(frames[:k]))
            shown = cells(table)
            width = {c.key: c.width for c in table.columns()}
            assert sorted(shown) == list(range(len(notes))), step
            for cid, row in shown.items():
                assert row["notes"] == fmt.ellipsize(",".join(notes[cid]), width["notes"]), (step, cid)
                assert row["rtt"] == (fmt.rtt(float(irtt[cid])) if irtt[cid] > 0 else ""), (step, cid)
                assert row["retr"] == (fmt.count(int(retr[cid])) if retr[cid] else ""), (step, cid)
            seen_rtt.append(shown[0]["rtt"])
        assert seen_rtt[0] == "" and seen_rtt[-1] != ""  # it appears on the way, not before


async def test_n_in_the_table_finds_connections_flagged_up_to_the_cursor(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        await pilot.press("g", *["right"] * 9)  # connection 0's retransmission is the 11th frame
        await pilot.pause()
        table.focus()
        table.move_cursor(len(table.rows) - 1)
        await pilot.press("N")  # back to a flagged one: none has a flag yet
        await pilot.pause()
        assert table.cursor == len(table.rows) - 1
        await pilot.press("right")
        await pilot.pause()
        table.focus()
        await pilot.press("N")
        await pilot.pause()
        assert table.selected == 0


@pytest.mark.parametrize(("term", "says"), [
    ("state:bogus", ["unknown state 'bogus'", "CLOSE_WAIT", "TIME_WAIT"]),
    ("analysis:foo", ["unknown analysis 'foo'", "retransmission"]),
    ("bogus:xyz", ["unknown key 'bogus:'", "state:", "analysis:"]),
    ("port:80 is:what", ["unknown note 'what'", "refused"]),
])
async def test_a_bad_term_is_refused_as_it_is_typed(capture: Path, term: str, says: list[str]) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        table, prompt = app.query_one(ConnectionTable), app.query_one(Prompt)
        everything = list(table.rows)
        await pilot.press("slash", *"port:81", "enter")  # a good filter first
        await pilot.pause()
        assert list(table.rows) == [1]
        await pilot.press("slash", *["backspace"] * 7, *term)
        await pilot.pause()
        # the table filters with the last good text typed (a word on the way: "stat"), never
        # with the bad term, and its title says which
        from tcpview.engine.analysis.query import ConnQuery

        applied = table.model.query.text
        assert term not in applied and not ConnQuery.parse(applied).errors
        assert str(table.border_title).endswith(f"filter: {applied}")
        assert prompt.error is not None and all(s in prompt.error for s in says), prompt.error
        shown = " ".join(prompt.render_line(y).text.strip() for y in range(1, prompt.region.height))
        assert prompt.region.height >= 2 and shown.startswith(says[0])
        assert all(s in shown for s in says), shown  # what is valid is on the screen
        await pilot.press("enter")  # refused: the box stays open, saying why
        await pilot.pause()
        assert prompt.is_open and table.model.query.text == applied
        await pilot.press("escape")  # what the box was opened with comes back
        await pilot.pause()
        assert table.model.query.text == "port:81" and list(table.rows) == [1]
        prompt.action_cancel()
        await pilot.press("slash", *["backspace"] * 7)
        prompt.insert_text_at_cursor(term)  # pasted: the bad term at once
        await pilot.pause()
        assert prompt.error is not None and list(table.rows) == everything
        await pilot.press(*["backspace"] * len(term))
        await pilot.pause()
        assert prompt.error is None and prompt.region.height == 1
        assert list(table.rows) == everything  # an empty filter is a good one: applied as typed
        await pilot.press(*"is:refused", "enter")
        await pilot.pause()
        assert not prompt.is_open and list(table.rows) == [1]


async def test_a_bad_filter_from_elsewhere_is_a_warning_and_not_the_filter(capture: Path) -> None:
    app = TcpviewApp(FileSource(str(capture)))
    told: list[str] = []
    notify = app.notify

    def keep(message, **kw):  # type: ignore[no-untyped-def]
        told.append(str(message))
        notify(message, **kw)

    app.notify = keep  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        app.action_set_filter("state:bogus")
        await pilot.pause()
        assert table.model.query.text == "" and "filter:" not in str(table.border_title)
        assert any("unknown state 'bogus'" in m for m in told)


def test_export_refuses_the_same_bad_terms(capture: Path, tmp_path: Path) -> None:
    for term, says in (("bogus:xyz", "unknown key 'bogus:'"), ("state:bogus", "unknown state 'bogus'"),
                       ("ip:nowhere", "bad address 'nowhere'")):
        rc, out, err = cli("export", str(capture), "--format", "jsonl", "--filter", term)
        assert rc == 2 and not out and says in err and len(err.strip().splitlines()) == 1, (term, err)
        assert err.startswith("tcpview: error:")
