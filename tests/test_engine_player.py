"""The player: the viewer's cursor over a capture's segment times (play, speeds, steps,
seeks), and a live capture's pause and return to live."""

from __future__ import annotations

import pytest

from tcpview.engine.player import MAX, SPEEDS, Player, SegmentTimes, speed_label


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
