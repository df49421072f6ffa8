"""The UI's headless parts: player cursor, why sentences, filter queries, frame store."""

from __future__ import annotations

from pathlib import Path

import pytest
from uihelp import T0, frames, write_capture

from tcpview.engine.player import MAX, SPEEDS, Player, SegmentTimes, speed_label
from tcpview.engine.core.zeek_analyzer import CONN_STATES


def make_player(times: list[float], live: bool = False) -> Player:
    st = SegmentTimes()
    for t in times:
        st.append(t)
    p = Player(st, live=live)
    p.set_bounds(times[0], times[-1])
    p.loaded = True
    return p


def test_segment_times_stay_ordered_for_bisect() -> None:
    st = SegmentTimes()
    for t in (1.0, 2.0, 1.5, 3.0):  # a timestamp that goes backwards
        st.append(t)
    assert list(st.ts) == [1.0, 2.0, 2.0, 3.0]
    assert st.next_after(1.0) == 2.0 and st.next_after(2.0) == 3.0 and st.next_after(3.0) is None
    assert st.prev_before(3.0) == 2.0 and st.prev_before(1.0) is None
    assert st.index_at(2.0) == 3 and st.index_at(None) == 4


def test_replay_play_tick_and_stop_at_end() -> None:
    p = make_player([10.0, 11.0, 12.0, 14.0])
    assert p.following and p.position() == 14.0
    p.toggle()  # at the end: from the start
    assert p.playing and p.position() == 10.0
    assert p.tick(0.5) and p.position() == pytest.approx(10.5)
    p.faster()
    assert p.speed == 2.0
    p.tick(1.0)
    assert p.position() == pytest.approx(12.5)
    p.tick(10.0)
    assert not p.playing and p.position() == 14.0  # stopped at the end
    assert p.fraction() == 1.0


def test_speeds_run_from_a_tenth_to_max() -> None:
    p = make_player([0.0, 1.0])
    for _ in range(20):
        p.slower()
    assert p.speed == 0.1 and speed_label(p.speed) == "0.1x"
    for _ in range(20):
        p.faster()
    assert p.speed == MAX and speed_label(p.speed) == "max"
    assert [speed_label(s) for s in SPEEDS][3] == "1.0x"


def test_max_speed_moves_by_segments_not_time() -> None:
    times = [float(i) for i in range(300)] + [10_000.0]
    p = make_player(times)
    p.to_start()
    p.speed_index = len(SPEEDS) - 1
    p.toggle()
    p.tick(0.001)
    assert p.position() == 3.0  # 1% of 301 segments, whatever the wall time
    p.tick(0.001)
    assert p.position() == 6.0


def test_step_seek_and_jump() -> None:
    p = make_player([10.0, 10.5, 11.0, 20.0])
    p.to_start()
    p.step(1)
    assert p.position() == 10.5
    p.step(2)
    assert p.position() == 20.0
    p.step(1)
    assert p.position() == 20.0
    p.step(-1)
    assert p.position() == 11.0
    p.seek_offset(5.0)
    assert p.position() == 15.0 and p.offset() == 5.0
    p.jump(0.1)
    assert p.position() == pytest.approx(16.0)
    p.seek(-100)
    assert p.position() == 10.0
    p.step(-1)  # before the first segment: the empty world
    assert p.position() < 10.0
    p.step(1)
    assert p.position() == 10.0
    p.seek_fraction(0.5)
    assert p.position() == 15.0


def test_live_pause_freezes_then_plays_the_past_until_it_is_live_again() -> None:
    p = make_player([1.0, 2.0], live=True)
    assert p.following and p.query_time() is None
    p.toggle()
    assert not p.following and p.query_time() == 2.0
    p.set_bounds(1.0, 5.0)  # capture goes on
    assert p.position() == 2.0
    p.slower()
    p.toggle()  # plays the past from the cursor, at the speed
    assert p.playing and not p.following and p.position() == 2.0
    assert p.tick(1.0) and p.position() == pytest.approx(2.5)
    p.toggle()
    assert not p.playing and p.position() == pytest.approx(2.5)
    p.toggle()
    p.tick(10.0)  # caught up with now: live again
    assert p.following and not p.playing and p.position() == 5.0
    p.toggle()
    p.to_end()  # L / End: back to live at once
    assert p.following


def test_any_speed_and_the_listed_ones_around_it() -> None:
    p = Player(SegmentTimes(), speed=3.0)
    assert p.speed == 3.0 and speed_label(p.speed) == "3.0x" and p.speed_index == SPEEDS.index(2.0)
    p.faster()
    assert p.speed == 5.0
    p.speed = 0.3
    assert speed_label(p.speed) == "0.3x"
    p.slower()
    assert p.speed == 0.25
    p.speed = 1 / 3
    assert speed_label(p.speed) == "0.333x"


def test_why_sentences() -> None:
    from tcpview.engine.analysis.why import explain, sentence

    text = explain([(0, 4, 5, "fin_sent"), (1, 4, 7, "fin_received")], sender=0)
    assert text.startswith("Client sent FIN") and "server's application must still call close()" in text
    assert "CLOSE_WAIT" in text
    assert "three-way handshake" in explain([(0, 2, 4, "handshake_ack"), (1, 3, 4, "handshake_ack")], 0)
    assert "refused" in explain([(1, 1, 0, "refused"), (0, 2, 0, "refused")], 1)
    assert "TIME_WAIT ended" in explain([(0, 10, 0, "time_wait_expired")], None)
    assert explain([], 0) == ""
    assert "LAST_ACK" in sentence("fin_sent", 1, "LAST_ACK", 1)


def test_filter_query_parsing() -> None:
    from tcpview.engine.analysis.query import ConnQuery, parse_states

    assert parse_states("close-wait") == {7} and parse_states("tw") == {10}
    assert parse_states("fin_wait") == {5, 6} and parse_states("nope") == set()
    q = ConnQuery.parse("state:CLOSE_WAIT port:443 10.0.0.5 :80 is:reset id:3")
    assert q.either_states == [frozenset({7})] and q.ports == [443] and q.ips == ["10.0.0.5"]
    assert q.words == [":80"] and q.notes == ["reset"] and q.ids == [3] and not q.errors
    bad = ConnQuery.parse("state:bogus port:x is:what")
    assert len(bad.errors) == 3 and bad.empty


def test_frame_store_rereads_file_frames_and_bounds_recent_bytes(tmp_path: Path) -> None:
    import threading

    from scapy.layers.l2 import Ether

    from tcpview.engine.pump import Pump
    from tcpview.sources.base import FileSource

    path = write_capture(tmp_path / "k.pcap")
    feed = Pump(FileSource(str(path)))
    feed.run(threading.Event(), lambda info: None)
    assert len(feed.times) == 19 and feed.times.ts[0] == pytest.approx(T0)
    for i, pkt in enumerate(frames()):
        lt, data = feed.frames.get(i + 1)  # type: ignore[misc]
        assert lt == 1 and data == bytes(pkt)
    assert feed.frames.get(999) is None

    from tcpview.sources.frames import FrameStore

    store = FrameStore(budget=200)
    for i in range(1, 11):
        store.note_bytes(i, 1, bytes(Ether() / (b"x" * 50)))
    assert store.get(1) is None and store.get(10) is not None  # oldest dropped past the budget


def test_states_of_every_connection_agree_with_the_store_back_and_forth(tmp_path: Path) -> None:
    """The bulk per-connection states (kept per cursor and moved forward incrementally) equal
    each connection's own states_at at every time, in either direction."""
    from tcpview.engine.pump import load

    tl = load(str(write_capture(tmp_path / "late.pcap", late=True))).timeline
    times = [0.05, 0.55, 1.65, 61.7, 0.25, 2.05, 70.0, 0.0, 1.75, 100.0, 0.15]
    for off in times + times[::-1]:
        t = T0 + off
        states = tl.states_at(t)
        for c in tl.conns:
            assert tuple(states[c.id]) == c.states_at(t), (off, c.id)
    states = tl.states_at(None)
    assert [tuple(states[c.id]) for c in tl.conns] == [tuple(c.state) for c in tl.conns]
    assert states[1][0] == 0  # conn 1's TIME_WAIT expired (60 s after 1.6) before the SYN at 70 s


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


def test_states_at_jumps_across_a_busy_capture() -> None:
    """Jumps back and forth across a capture with several transitions per connection give
    the store's per-connection states each time."""
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=6)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    assert tl.view().n_trans > 3 * len(tl.conns) > 90  # several transitions per connection
    span = tl.last_ts - tl.first_ts
    for frac in (0.02, None, 0.95, 0.9, 0.05, 0.5, 0.51, 0.3, 0.99, 0.0, None):
        t = None if frac is None else tl.first_ts + span * frac
        states = tl.states_at(t)
        for c in tl.conns:
            assert tuple(states[c.id]) == c.states_at(t), (t, c.id)


def test_sorted_rows_follow_the_store_at_any_cursor() -> None:
    """Each sort column (computed in bulk and kept per cursor) orders the connections as the
    store's own per-connection answers do, at past cursors and at the end, either direction."""
    from tcpview.engine.analysis.query import SORT_KEYS, ConnRows
    from tcpview.engine.core.tcp import Analysis
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=6)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    conns = tl.conns

    def payload(c, k):  # type: ignore[no-untyped-def]
        return sum(c.record(i)[4] for i in range(k))  # the payload length field

    def last_seen(c, k):  # type: ignore[no-untyped-def]
        return c.record(k - 1)[0] if k else c.first_ts

    reference = {
        "client": lambda c, t: (c.family, c.cip, c.cport),
        "server": lambda c, t: (c.family, c.sip, c.sport),
        "cstate": lambda c, t: c.states_at(t)[0],
        "sstate": lambda c, t: c.states_at(t)[1],
        "pkts": lambda c, t: c.count_at(t),
        "bytes": lambda c, t: payload(c, c.count_at(t)),
        "idle": lambda c, t: -last_seen(c, c.count_at(t)),
        "age": lambda c, t: -c.first_ts,
        "notes": lambda c, t: c.notes(),
        "id": lambda c, t: c.id,
        # the analysis columns count as now, whatever the cursor
        "rtt": lambda c, t: float(tl.view().initial_rtts(c.row + 1)[c.row]),
        "retr": lambda c, t: sum(1 for i in range(c.n) if (c.record(i)[10] >> 8) & Analysis.RETRANSMISSION),
        # Zeek's conn_state as of the cursor, in the order of CONN_STATES
        "zeek": lambda c, t: CONN_STATES.index(c.zeek(c.count_at(t))[0]),
    }
    assert set(reference) == set(SORT_KEYS)
    rows = ConnRows()
    span = tl.last_ts - tl.first_ts
    for t in (tl.first_ts + span * 0.4, None, tl.first_ts + span * 0.8, tl.first_ts + span * 0.4):
        ids = range(tl.conn_count_at(t))
        for key in SORT_KEYS:
            for reverse in (False, True):
                rows.sort, rows.reverse = key, reverse
                expected = sorted(ids, key=lambda i: reference[key](conns[i], t), reverse=reverse)  # noqa: B023
                assert list(rows.compute(tl, t)) == expected, (key, reverse, t)


def test_a_loaded_file_leaves_no_python_object_per_connection(tmp_path: Path) -> None:
    """The store is columns: reading many connections adds arrays, not objects the garbage
    collector has to walk (which once paused the viewer for most of a second)."""
    import gc
    import threading

    from helpers import many_connections, write_frames_pcap

    from tcpview.engine.pump import Pump
    from tcpview.sources.base import FileSource

    path = str(write_frames_pcap(tmp_path / "many.pcap", many_connections()))
    gc.collect()
    before = len(gc.get_objects())
    pump = Pump(FileSource(path))
    pump.run(threading.Event(), lambda info: None)
    gc.collect()
    assert pump.done and len(pump.tl.conns) >= 100
    assert len(gc.get_objects()) - before < len(pump.tl.conns)




def test_a_note_filter_sees_a_reset_that_comes_later() -> None:
    """Notes are read as they are now: a connection reset after the filter was typed shows up."""
    from helpers import Flow

    from tcpview.engine.analysis.query import ConnRows
    from tcpview.engine.timeline.tracker import Tracker

    f = Flow(t0=1.0)
    f.handshake()
    f.c("PA", b"hi")
    tr = Tracker()
    tr.feed_records((i + 1, ts, lt, raw, 0, len(raw), len(raw)) for i, (ts, lt, raw) in enumerate(f.frames))
    rows = ConnRows()
    rows.set_query("is:reset")
    assert list(rows.compute(tr.tl, None)) == []
    n = len(f.frames)
    f.s("R")
    ts, lt, raw = f.frames[-1]
    tr.feed_frame(n + 1, ts, lt, raw)
    assert list(rows.compute(tr.tl, None)) == [0]


def test_filters_on_ports_ids_and_addresses_match_the_per_connection_rules() -> None:
    """The column passes give what ConnQuery.static_match says for each connection."""
    from tcpview.engine.analysis.query import ConnQuery, ConnRows, endpoint_texts
    from tcpview.engine.timeline.tracker import Tracker
    from tcpview.sim import Engine, load

    tracker = Tracker()
    frames = Engine(load("busy"), 4).frames(max_seconds=4)
    tracker.feed_records((f.frame, f.ts, 1, f.data, 0, len(f.data), len(f.data)) for f in frames)
    tl = tracker.tl
    c0 = tl.conns[0]
    for text in (f"port:{c0.cport}", "port:80", f"id:3 id:{c0.id}", c0.client_ip_text(),
                 f"{c0.server_ip_text()} port:{c0.sport}", "10.1.", "ip:not-an-ip", "is:partial"):
        rows = ConnRows()
        rows.set_query(text)
        q = ConnQuery.parse(text)
        want = [c.id for c in tl.conns if q.static_match(c, endpoint_texts(c.client_text(), c.server_text()))]
        assert list(rows.compute(tl, None)) == want, text


def test_analysis_filter_terms_name_flags_by_wireshark_name_or_ladder_tag() -> None:
    from tcpview.engine.analysis.query import ConnQuery
    from tcpview.engine.core.tcp import Analysis

    q = ConnQuery.parse("analysis:retransmission an:dup-ack analysis:ooo an:Zero-Win analysis:window_full")
    assert not q.errors
    assert q.analysis == [Analysis.RETRANSMISSION, Analysis.DUP_ACK, Analysis.OUT_OF_ORDER, Analysis.ZERO_WINDOW,
                          Analysis.WINDOW_FULL]
    assert not q.empty
    want = ("unknown analysis 'slow' (a ladder tag: retrans, dup-ack, zero-win, ..., syn-fin, rst-out-of-win; or "
            "Wireshark's name: retransmission...)")
    assert ConnQuery.parse("analysis:slow").errors == [want]
    # the kernel's socket table has no segments: the term is an error there
    assert ConnQuery.parse("analysis:retrans", without=("note", "analysis")).errors


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
