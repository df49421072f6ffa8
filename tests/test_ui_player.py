"""The player as a user meets it: a demo scenario that waits at its beginning, ``replay
--speed``, ``+`` up to 1000x, and what the speed means while live.

The demo and ``--speed`` are also run as the real command in tmux at 80x24 (what a user sees);
the rest drives the real app with Pilot.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, cli_here, wait_until
from uihelp import T0, write_capture

from tcpview.cli import build_parser
from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp
from tcpview.ui.widgets.conn_table import ConnectionTable
from tcpview.ui.widgets.player_bar import PlayerBar


def bar(app: TcpviewApp) -> str:
    """The player bar's text."""
    return app.query_one(PlayerBar).render().plain


def toasts(app: TcpviewApp) -> list[str]:
    """The notifications on screen (``run_test(notifications=True)`` shows them)."""
    return [str(t.render()) for t in app.screen.query("Toast")]


async def loaded(app: TcpviewApp, pilot) -> None:  # type: ignore[no-untyped-def]
    assert await wait_until(lambda: app.loaded, 20, 0.02, pilot.pause)
    await pilot.pause()


# -- a scenario waits at its beginning ---------------------------------------------------------
async def test_demo_scenario_opens_paused_at_its_beginning() -> None:
    from tcpview.cli.sim import demo_source

    args = build_parser().parse_args(["demo", "--scenario", "handshake", "--speed", "0.1"])
    source, opts = demo_source(args)
    app = TcpviewApp(source, **opts)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.query_one(ConnectionTable)
        # nothing has happened yet, and the bar says how to start
        assert "paused — space to play" in bar(app) and "0.1x" in bar(app)
        assert not app.player.playing and app.player.offset() == 0.0
        assert len(table.rows) == 0
        await pilot.press("right")  # the SYN
        assert len(table.rows) == 1 and app.tl.states_at(app.player.query_time())[0].tolist() == [2, 1]
        await pilot.press("space")  # plays at the demo's speed, 0.1x: about a second for 0.1 s
        assert app.player.playing and "▶ 0.1x" in bar(app) and "paused" not in bar(app)
        assert app.player.offset() < 0.1
        assert await wait_until(lambda: not app.player.playing, 10, 0.02, pilot.pause)
        assert app.player.offset() == pytest.approx(app.player.duration)  # played to its end
        assert "TIME_WAIT" in table.render_line(1).text


async def test_an_endless_demo_is_still_live() -> None:
    from tcpview.cli.sim import demo_source

    source, opts = demo_source(build_parser().parse_args(["demo", "--seed", "3"]))
    assert source.live and "paused_at_start" not in opts
    app = TcpviewApp(source, **opts)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(lambda: app.tl.packets > 0, 20, 0.02, pilot.pause)
        await pilot.pause()
        assert "LIVE" in bar(app) and "paused" not in bar(app)
        app.session.stop.set()


# -- speeds ------------------------------------------------------------------------------------
async def test_replay_speed_option_and_plus_up_to_1000x(tmp_path: Path) -> None:
    from tcpview.cli.replay import replay_source

    cap = str(write_capture(tmp_path / "known.pcap"))
    source, opts = replay_source(build_parser().parse_args(["replay", cap, "--speed", "0.25"]))
    app = TcpviewApp(source, **opts)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert "‖ 0.25x" in bar(app)
        await pilot.press("g", "space")
        assert await wait_until(lambda: app.player.offset() > 0, 5, 0.02, pilot.pause)
        await pilot.press("space")
        # + walks the listed speeds from there: 0.5, 1, 2, 5, 10, 100, 1000, then max
        seen = []
        for _ in range(8):
            await pilot.press("plus")
            seen.append(re.search(r"‖ (\S+)", bar(app))[1])  # type: ignore[index]
        assert seen == ["0.5x", "1.0x", "2.0x", "5.0x", "10.0x", "100x", "1000x", "max"]
    source, opts = replay_source(build_parser().parse_args(["replay", cap, "--speed", "max"]))
    assert opts["speed"] == float("inf")


@pytest.mark.parametrize("bad", ["0", "-2", "fast", "inf", "nan"])
def test_replay_speed_refuses_a_bad_value(tmp_path: Path, bad: str) -> None:
    cap = str(write_capture(tmp_path / "known.pcap"))
    rc, out, err = cli_here("replay", cap, f"--speed={bad}")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tcpview: error: argument --speed: not a speed")


async def test_speed_keys_while_live_say_what_the_speed_is_for(tmp_path: Path) -> None:
    growing = write_capture(tmp_path / "growing.pcap")
    app = TcpviewApp(FileSource(str(growing), follow=True), tick=0.02)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        assert await wait_until(lambda: app.tl.packets == 19, 10, 0.02, asyncio.sleep)
        assert app.player.following
        await pilot.press("plus")
        assert app.player.speed == 2.0
        said = await wait_until(lambda: [t for t in toasts(app) if "speed 2.0x" in t], 5, 0.02, pilot.pause)
        assert said and "replaying the past" in said[0] and "L" in said[0]
        # paused in the past, the bar shows the speed; space plays from there at it
        await pilot.press("space", "g")
        assert "‖ 2.0x" in bar(app)
        await pilot.press("minus", "minus", "minus", "minus", "minus", "space")
        assert app.player.playing and not app.player.following and "▶ 0.1x" in bar(app)
        assert await wait_until(lambda: app.player.position() > T0, 5, 0.02, pilot.pause)
        assert len([t for t in toasts(app) if "for replaying the past" in t]) == 1  # said while live only


async def test_speed_keys_pressed_again_while_live_say_the_speed_alone(tmp_path: Path) -> None:
    """The explanation comes once; each key pressed after it says the speed in a short toast
    (Textual's toasts stack: three long ones covered most of an 80x24 screen)."""
    growing = write_capture(tmp_path / "growing.pcap")
    app = TcpviewApp(FileSource(str(growing), follow=True), tick=0.02)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        assert await wait_until(lambda: app.tl.packets == 19, 10, 0.02, asyncio.sleep)
        await pilot.press("plus", "plus", "minus")
        said = await wait_until(lambda: [t for t in toasts(app) if "speed" in t], 5, 0.02, pilot.pause)
        assert len(said) == 3, said
        assert "replaying the past" in said[0] and "speed 2.0x" in said[0]
        assert [t.splitlines()[-1] for t in said[1:]] == ["speed 5.0x", "speed 2.0x"], said


# -- the real command, as a user sees it -------------------------------------------------------
class _Tmux:
    """A private tmux server (its own socket) with one window running ``command``."""

    def __init__(self, root: Path, command: list[str], cols: int = 80, rows: int = 24) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is needed for this test")
        self.base = [tmux, "-S", str(root / "tmux.sock")]
        env = dict(os.environ, TERM="xterm-256color",
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("TMUX", None)
        run = f"cd {shlex.quote(str(REPO))} && {shlex.join(command)}"
        subprocess.run([*self.base, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(cols),
                        "-y", str(rows), run], check=True, env=env)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "t"], check=True, capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "t", *keys], check=True)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def test_demo_in_a_terminal_waits_for_space(tmp_path: Path) -> None:
    t = _Tmux(tmp_path, [sys.executable, "-m", "tcpview", "demo", "--scenario", "handshake"])
    try:
        screen = wait_until(lambda: s if "paused — space to play" in (s := t.screen()) else None, 60, 0.1)
        assert screen, t.screen()
        assert "demo handshake" in screen and "Connections 0" in screen and "00:00.000 / 00:00.104" in screen
        t.keys("Right")
        assert wait_until(lambda: "SYN_SENT" in t.screen(), 10, 0.1), t.screen()
        t.keys("Space")
        assert wait_until(lambda: "TIME_WAIT" in (s := t.screen()) and "paused" not in s, 10, 0.1), t.screen()
        t.keys("q")
    finally:
        t.kill()


async def test_a_stream_says_live_while_its_producer_writes_and_ended_after(monkeypatch):
    """``producer | tcpview replay -``: LIVE while the pipe is open, ENDED once the producer
    stopped (it is not live any more), with every connection it sent. Meanwhile its drawing
    takes the stream's smaller share of the time, and reads the views in short turns (its
    producer may need the CPUs); not once the stream ended. The passes over the segments are
    carried on by the thread that reads the stream, not by the one that draws."""
    import signal
    import threading

    from helpers import many_connections, pcap_bytes

    import tcpview.ui.app as app_module
    from tcpview.pacer import pacing
    from tcpview.ui.app import DRAW_SHARE, STREAM_DRAW_SHARE

    ahead, real = [], app_module.read_ahead

    def read_ahead(tl):  # type: ignore[no-untyped-def]
        ahead.append(threading.current_thread() is threading.main_thread())
        real(tl)

    monkeypatch.setattr(app_module, "read_ahead", read_ahead)

    frames = many_connections(5)
    data = pcap_bytes((ts, raw) for ts, _lt, raw in frames)
    r, w = os.pipe()
    app = TcpviewApp(FileSource("-", fd=r))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            os.write(w, data)
            assert await wait_until(lambda: len(app.tl.conns) == 5, 20, 0.02, pilot.pause)
            await pilot.pause()
            assert "LIVE" in bar(app) and "ENDED" not in bar(app)
            assert await wait_until(lambda: app.draw_share == STREAM_DRAW_SHARE, 5, 0.05, pilot.pause)
            assert STREAM_DRAW_SHARE < DRAW_SHARE
            assert pacing() and signal.getitimer(signal.ITIMER_PROF)[1] > 0
            assert ahead and not any(ahead)  # on the reading thread only
            seen = app.tl.cached("limits")  # the diagnosis's pass, carried to the last segment
            assert seen is not None and seen[1] == app.tl.view().n_seg
            os.close(w)
            w = -1
            assert await wait_until(lambda: "ENDED" in bar(app), 20, 0.05, pilot.pause), bar(app)
            assert "LIVE" not in bar(app) and len(app.tl.conns) == 5
            assert not pacing() and signal.getitimer(signal.ITIMER_PROF)[1] == 0
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


async def test_a_stream_far_behind_its_producer_redraws_its_views_seldom():
    """While a stream's reader is behind its producer by BEHIND_BYTES or more (the relay
    holds that much: here its count is raised by 8 MiB), the ticks redraw the views at most
    once every CATCH_UP_SECONDS (the bar says how far behind); caught up, they redraw as the
    packets come again."""
    from helpers import many_connections, pcap_bytes

    from tcpview.ui.app import CATCH_UP_SECONDS

    head = pcap_bytes([])  # the file header; then each frame's record on its own
    records = [pcap_bytes([(ts, raw)])[len(head):] for ts, _lt, raw in many_connections(60)]
    r, w = os.pipe()
    source = FileSource("-", fd=r)
    app = TcpviewApp(source)
    real_status = source.status
    held = {"bytes": 0}

    def status() -> dict[str, int]:  # what a relay holding held["bytes"] more would say
        st = real_status()
        return dict(st, waiting=st.get("waiting", 0) + held["bytes"])

    source.status = status  # type: ignore[method-assign]
    drawn = [0]
    refresh = app.refresh_views

    def counted(force: bool = False, settle: bool = True) -> None:
        drawn[0] += 1
        refresh(force, settle)

    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.refresh_views = counted  # type: ignore[method-assign]
            os.write(w, head + b"".join(records[:20]))
            assert await wait_until(lambda: len(app.tl.conns) > 0, 20, 0.02, pilot.pause)

            async def pour(recs: list[bytes], seconds: float) -> int:
                """Write ``recs`` a few at a time over ``seconds``; the draws meanwhile."""
                await pilot.pause(0.3)
                start = drawn[0]
                step = max(1, len(recs) // 10)
                for k in range(0, len(recs), step):
                    os.write(w, b"".join(recs[k:k + step]))
                    await pilot.pause(seconds / 10)
                return drawn[0] - start

            held["bytes"] = 8 << 20
            assert await wait_until(lambda: "MiB behind" in bar(app), 5, 0.05, pilot.pause), bar(app)
            behind = await pour(records[20:300], CATCH_UP_SECONDS * 0.8)
            held["bytes"] = 0
            assert await wait_until(lambda: "MiB behind" not in bar(app), 5, 0.05, pilot.pause), bar(app)
            caught_up = await pour(records[300:600], CATCH_UP_SECONDS * 0.8)
            assert behind <= 1 < 3 <= caught_up, (behind, caught_up)
    finally:
        os.close(w)
        os.close(r)


async def test_ticks_leave_the_cpu_alone_between_draws_that_take_long(tmp_path: Path) -> None:
    """Playing through thousands of connections, each refresh reads them all: the next tick's
    refresh waits until the last one's time, four times over, has passed (so drawing takes at
    most a quarter of the time, and a stream's producer keeps its CPU), and never a second."""
    import time

    from helpers import many_connections, pcap_bytes

    from tcpview.ui.app import DRAW_SHARE, SETTLE_SECONDS

    cap = tmp_path / "many.pcap"
    cap.write_bytes(pcap_bytes((ts, raw) for ts, _lt, raw in many_connections(4000)))
    app = TcpviewApp(FileSource(str(cap)), tick=0.01, speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        await pilot.press("g", "space")
        assert app.draw_share == DRAW_SHARE  # a file: no producer beside it
        draws: list[tuple[float, float]] = []
        real = app.refresh_views

        def timed(*args, **kwargs):  # the real refresh, its start and end noted
            t0 = time.monotonic()
            real(*args, **kwargs)
            draws.append((t0, time.monotonic()))

        app.refresh_views = timed  # type: ignore[method-assign]
        await asyncio.sleep(2.0)
        app.refresh_views = real  # type: ignore[method-assign]
        assert app.player.playing and len(draws) >= 3
        gaps = [(b[0] - a[0], min(SETTLE_SECONDS, (a[1] - a[0]) / app.draw_share)) for a, b in zip(draws, draws[1:])]
        assert all(gap >= want - 0.005 for gap, want in gaps), gaps
        assert all(gap <= SETTLE_SECONDS + 0.5 for gap, _want in gaps), gaps


async def test_a_stream_that_ended_lists_every_connection() -> None:
    """A stream of tens of thousands of connections read to its end: the table, sorted by newest
    activity as a live one is, lists every connection once the stream has ended (a recompute
    put off while the stream poured in is caught up later, not left with the list of its
    first moments)."""
    import threading
    import time

    from helpers import many_connections, pcap_bytes

    now = time.time() - 20  # captured a moment ago, as a live stream is
    data = pcap_bytes((now + ts, raw) for ts, _lt, raw in many_connections(30000))
    r, w = os.pipe()

    def produce() -> None:
        os.write(w, data)
        os.close(w)

    threading.Thread(target=produce, daemon=True).start()
    app = TcpviewApp(FileSource("-", fd=r))
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ConnectionTable)
        assert await wait_until(lambda: "ENDED" in bar(app), 30, 0.05, pilot.pause)
        total = app.tl.conn_count_at(app.player.query_time())
        assert total == 30000
        assert await wait_until(lambda: len(table.rows) == total, 5, 0.05, pilot.pause), len(table.rows)
        assert table.model.sort == "idle"
