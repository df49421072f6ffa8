"""``tcpview live`` on lo, in the real Textual app (Pilot): the capture's status line and the
interface picker.

The status line says what the capture counted: packets the kernel dropped before the app read
them (announced, and shown in the warning colour), frames captured and frames skipped. The
interface picker (key i) lists the interfaces; switching starts a fresh timeline, a failed
switch keeps the old capture, saving goes on into the same file, and another interface is
captured there. Moved from test_live_app.py.
"""

from __future__ import annotations

from helpers import wait_until
from livehelp import need_root
from uihelp import Notes, palette_offers


async def test_live_app_says_when_the_kernel_dropped_packets(lo_traffic):
    """Packets lost before the app could read them (a small ring filled while nobody read)
    are announced: the states shown may be wrong."""
    need_root()
    import socket

    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp

    t = lo_traffic
    port = t.listener("flood")
    src = LiveSource("lo", f"tcp port {port}", buffer_mb=2)
    try:
        cli, srv = t.pair("flood")
        for s in (cli, srv):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(25000):
            cli.send(b"x")
            srv.send(b"y")
            if i % 50 == 0:
                srv.recv(4096)
        dropped = src.status()["dropped"]
        assert dropped > 0
        app = LiveApp(src)
        notes = Notes()
        async with app.run_test(size=(120, 30), message_hook=notes) as pilot:
            assert await wait_until(lambda: any("dropped" in n.message for n in notes), 8, 0.05, pilot.pause)
            note = next(n for n in notes if "dropped" in n.message)
            import re

            told = int(re.search(r"(\d+) in all", note.message).group(1))
            assert told >= dropped and note.severity == "warning"  # a late ACK may add one more
            # and the status line says so for as long as the capture runs, in the warning colour
            from tcpview.ui.widgets.capture_status import CaptureStatus

            line = app.query_one(CaptureStatus)
            assert _status_figures(app)["dropped"] >= dropped and line.has_class("-dropped")
            assert line.styles.background != app.query_one("Footer").styles.background
            await pilot.press("q")
    finally:
        src.close()


# -- the status line and the interface picker (key i) -------------------------------------------
def _status_figures(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The figures the status line shows, read back from its text."""
    import re

    from tcpview.ui.widgets.capture_status import CaptureStatus

    text = app.query_one(CaptureStatus).plain()
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"(captured|dropped|skipped|saved) ([\d,]+)", text)}


def _send_udp(port: int, n: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for _ in range(n):
            u.sendto(b"not tcp", ("127.0.0.1", port))


async def test_status_line_counts_captured_and_skipped_frames(lo_traffic):
    """The status line's captured count is the frames the tracker got, and its skipped count
    the frames the decoder could not use (here: UDP datagrams the filter let through)."""
    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.widgets.capture_status import CaptureStatus

    t = lo_traffic
    port = t.listener("status")
    src = LiveSource("lo", f"port {port}")  # TCP and UDP to that port
    app = LiveApp(src)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            t.time_wait("status")
            _send_udp(port, 3)  # one frame each on lo (the outgoing copy is dropped)
            tl = app.tl
            assert await wait_until(lambda: tl.packets > 3 and sum(tl.skipped.values()) == 3
                                    and _status_figures(app).get("captured") == tl.packets,
                                    8, 0.05, pilot.pause)
            fig = _status_figures(app)
            assert fig["skipped"] == sum(tl.skipped.values()) == 3
            assert set(tl.skipped) == {"not tcp"}
            assert fig["captured"] == tl.packets == tl.tcp_packets + 3
            assert fig["dropped"] == 0 and "saved" not in fig
            line = app.query_one(CaptureStatus)
            assert not line.has_class("-dropped") and line.tooltip and "3 not tcp" in str(line.tooltip)
            assert line.region.y == app.screen.region.height - 2  # just above the footer
            await pilot.press("q")
    finally:
        src.close()


async def test_picker_lists_lo_and_switching_starts_a_fresh_timeline(lo_traffic):
    """``i`` lists lo with 127.0.0.1 (marked as the current one); choosing it starts the
    capture over: the old connection is gone from the new timeline, new traffic is in it."""
    need_root()
    from textual.widgets import OptionList

    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.screens.iface_picker import InterfacePicker
    from tcpview.ui.widgets.player_bar import PlayerBar

    t = lo_traffic
    port = t.listener("switch")
    src = LiveSource("lo", f"tcp port {port}")
    switched = []
    app = LiveApp(src, on_switch=switched.append)
    notes = Notes()
    try:
        async with app.run_test(size=(120, 30), message_hook=notes) as pilot:
            first = t.time_wait("switch")
            old_tl = app.tl
            assert await wait_until(lambda: len(old_tl.conns) == 1, 8, 0.05, pilot.pause)
            await pilot.press("i")
            assert await wait_until(lambda: isinstance(app.screen, InterfacePicker)
                                    and app.screen.interfaces is not None, 8, 0.05, pilot.pause)
            picker = app.screen
            by_name = {i.name: i for i in picker.interfaces}
            assert "127.0.0.1/8" in by_name["lo"].addresses and by_name["lo"].up
            ol = picker.query_one(OptionList)
            assert ol.get_option_at_index(ol.highlighted).id == "lo"  # the current one
            assert str(ol.get_option_at_index(ol.highlighted).prompt).startswith("● lo")
            assert ol.get_option_at_index(ol.option_count - 1).id == "any"
            await pilot.press("enter")
            assert await wait_until(lambda: app.source is not src and app.switching is None,
                                    8, 0.05, pilot.pause)
            assert switched == [app.source] and app.source.interface == "lo"
            assert app.source.bpf == src.bpf and app.source.snaplen == src.snaplen
            assert app.tl is not old_tl and app.tl.packets == 0
            assert app.query_one(PlayerBar).source_name == app.source.name
            assert await wait_until(lambda: _status_figures(app).get("captured") == 0, 8, 0.05, pilot.pause)
            second = t.time_wait("switch")
            tl = app.tl
            assert await wait_until(lambda: len(tl.conns) == 1
                                    and _status_figures(app).get("captured") == tl.packets
                                    and tl.packets > 0, 8, 0.05, pilot.pause)
            c = tl.conns[0]
            assert (c.cport, c.sport) == (second[0][1], second[1][1]) != (first[0][1], first[1][1])
            assert len(old_tl.conns) == 1  # the old capture stopped feeding its timeline
            assert not app.loaded  # the old capture's end is not this one's
            # ... even when the old feed's last message comes after the switch
            from tcpview.engine.pump import BatchInfo
            from tcpview.ui.messages import SourceEnded

            app.post_message(SourceEnded(BatchInfo(0, None, done=True, error="the old capture's end")))
            await pilot.pause()  # until the app has handled its messages
            assert not app.loaded and app.load_error is None
            assert not any("old capture" in n.message for n in notes)
            await pilot.press("q")
    finally:
        for s in {src, *switched}:
            s.close()


async def test_a_failed_switch_keeps_the_old_capture(lo_traffic):
    """An interface that is not there: one error notification; capture goes on as it was.
    The picker is also in the command palette."""
    need_root()
    from textual.command import CommandPalette

    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.screens.iface_picker import InterfacePicker

    t = lo_traffic
    port = t.listener("keep")
    src = LiveSource("lo", f"tcp port {port}")
    app = LiveApp(src)
    notes = Notes()
    try:
        async with app.run_test(size=(120, 30), message_hook=notes) as pilot:
            await pilot.press("ctrl+p")
            assert await wait_until(lambda: isinstance(app.screen, CommandPalette), 8, 0.05, pilot.pause)
            for ch in "another interface":
                await pilot.press("space" if ch == " " else ch)
            assert await palette_offers(app, pilot, "another interface")
            await pilot.press("enter")
            assert await wait_until(lambda: isinstance(app.screen, InterfacePicker), 8, 0.05, pilot.pause)
            await pilot.press("escape")
            assert await wait_until(lambda: not isinstance(app.screen, InterfacePicker), 8, 0.05, pilot.pause)
            tl = app.tl
            app.switch_interface("tcpvnone0")
            assert await wait_until(lambda: app.switching is None, 8, 0.05, pilot.pause)
            errors = [n for n in notes if n.severity == "error"]
            assert len(errors) == 1 and "no such interface" in errors[0].message
            assert app.source is src and app.tl is tl
            t.time_wait("keep")
            assert await wait_until(lambda: len(tl.conns) == 1, 8, 0.05, pilot.pause)
            await pilot.press("q")
    finally:
        src.close()


async def test_saving_goes_on_into_the_same_file_across_a_switch(lo_traffic, tmp_path):
    """With -w, switching to an interface with the same link type keeps writing the same
    file (tcpdump reads every packet of both captures from it); one whose frames are of
    another kind (``any``: cooked) is refused and the capture goes on."""
    need_root()
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp

    t = lo_traffic
    port = t.listener("save")
    out = tmp_path / "both.pcap"
    src = LiveSource("lo", f"tcp port {port}", write=str(out))
    switched = []
    app = LiveApp(src, on_switch=switched.append)
    notes = Notes()
    try:
        async with app.run_test(size=(120, 30), message_hook=notes) as pilot:
            first = t.time_wait("save")
            assert await wait_until(lambda: len(app.tl.conns) == 1 and _status_figures(app).get("saved")
                                    == app.tl.packets, 8, 0.05, pilot.pause)
            n_first = app.tl.packets
            app.switch_interface("any")
            assert await wait_until(lambda: app.switching is None, 8, 0.05, pilot.pause)
            refused = [n for n in notes if n.severity == "error"]
            assert len(refused) == 1 and "one kind" in refused[0].message and app.source is src
            app.switch_interface("lo")
            assert await wait_until(lambda: app.source is not src and app.switching is None,
                                    8, 0.05, pilot.pause)
            new = app.source
            assert new.sink is not None and new.sink.path == str(out) and src.sink is None
            second = t.time_wait("save")
            assert await wait_until(lambda: len(app.tl.conns) == 1 and _status_figures(app).get("saved")
                                    == n_first + app.tl.packets, 8, 0.05, pilot.pause)
            await pilot.press("q")
        new.close()
        saved = new.sink.count
        assert saved == n_first + app.tl.packets
        lines = _tcpdump_lines(out)
        assert len(lines) == saved
        for (cli, _srv) in (first, second):
            assert any(f"127.0.0.1.{cli[1]} >" in ln for ln in lines)
    finally:
        for s in {src, *switched}:
            s.close()


def _tcpdump_lines(path) -> list[str]:  # type: ignore[no-untyped-def]
    """One line per packet in a capture file, as tcpdump reads it."""
    import subprocess

    return subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def _ip(*args: str) -> bool:
    import subprocess

    return subprocess.run(["ip", *args], capture_output=True, check=False).returncode == 0


def _make_interface(name: str, peer: str, net: int):  # type: ignore[no-untyped-def]
    """A dummy interface (or a veth pair where dummy is not built) with 198.18.NET.1/24 and a
    fixed neighbour .2, so a SYN to .2 leaves through it; None if neither can be made."""
    ip = _ip
    if not (ip("link", "add", name, "type", "dummy") or ip("link", "add", name, "type", "veth", "peer", "name", peer)):
        return None
    ok = (ip("addr", "add", f"198.18.{net}.1/24", "dev", name) and ip("link", "set", name, "up")
          and (not ip("link", "show", peer) or ip("link", "set", peer, "up"))
          and ip("neigh", "replace", f"198.18.{net}.2", "lladdr", "02:00:00:00:00:02", "dev", name, "nud", "permanent"))
    if not ok:
        ip("link", "del", name)
        return None
    return f"198.18.{net}.2"


async def test_switching_to_another_interface_captures_there(lo_traffic):
    """An interface made for the test: chosen in the picker, the capture moves there — the
    bar and the status line name it, and a SYN leaving through it is in the new timeline."""
    need_root()
    import os
    import socket

    import pytest
    from textual.widgets import OptionList

    from tcpview.engine.core.tcp import STATE_NAMES
    from tcpview.sources.live.capture import LiveSource
    from tcpview.ui.live_app import LiveApp
    from tcpview.ui.screens.iface_picker import InterfacePicker
    from tcpview.ui.widgets.capture_status import CaptureStatus
    from tcpview.ui.widgets.player_bar import PlayerBar

    name, peer, net = f"tcpv{os.getpid() % 100000}", f"tcpw{os.getpid() % 100000}", os.getpid() % 250 + 1
    far = _make_interface(name, peer, net)
    if far is None:
        pytest.skip("cannot make a test interface (no dummy or veth support)")
    t = lo_traffic
    port = t.listener("elsewhere")
    src = LiveSource("lo", f"tcp port {port}")
    switched = []
    app = LiveApp(src, on_switch=switched.append)
    s = socket.socket()
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            t.time_wait("elsewhere")
            assert await wait_until(lambda: len(app.tl.conns) == 1, 8, 0.05, pilot.pause)
            await pilot.press("i")
            assert await wait_until(lambda: isinstance(app.screen, InterfacePicker)
                                    and app.screen.interfaces is not None, 8, 0.05, pilot.pause)
            info = next(i for i in app.screen.interfaces if i.name == name)
            assert f"198.18.{net}.1/24" in info.addresses
            ol = app.screen.query_one(OptionList)
            ol.highlighted = next(k for k in range(ol.option_count) if ol.get_option_at_index(k).id == name)
            await pilot.press("enter")
            assert await wait_until(lambda: app.source.interface == name and app.switching is None,
                                    8, 0.05, pilot.pause)
            assert app.query_one(PlayerBar).source_name.startswith(f"live {name}")
            s.setblocking(False)
            s.connect_ex((far, port))  # the SYN leaves through the test interface; nobody answers
            tl = app.tl
            assert await wait_until(lambda: len(tl.conns) == 1, 8, 0.05, pilot.pause)
            c = tl.conns[0]
            assert c.server_text() == f"{far}:{port}" and STATE_NAMES[c.state[0]] == "SYN_SENT"
            assert await wait_until(lambda: app.query_one(CaptureStatus).plain().startswith(name)
                                    and _status_figures(app).get("captured") == tl.packets,
                                    8, 0.05, pilot.pause)
            await pilot.press("q")
    finally:
        s.close()
        for x in {src, *switched}:
            x.close()
        _ip("link", "del", name)  # the veth peer goes with it


def test_interface_list_from_ip_and_from_the_kernel_agree():
    """The two ways of listing interfaces (``ip -j addr``, and the kernel's own files and
    ioctls when ip is missing) give the same names and lo's loopback addresses."""
    import shutil
    import socket
    import subprocess

    import pytest

    from tcpview.sources.live.ifaces import interfaces_from_kernel, parse_ip_addr_json

    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    done = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("this ip has no JSON output")
    from_ip = {i.name: i for i in parse_ip_addr_json(done.stdout)}
    from_kernel = {i.name: i for i in interfaces_from_kernel()}
    assert set(from_ip) == set(from_kernel) == {n for _i, n in socket.if_nameindex()}
    for name, a in from_ip.items():
        b = from_kernel[name]
        assert a.index == b.index == socket.if_nametoindex(name)
        assert a.state == b.state
        assert set(b.addresses) <= set(a.addresses)  # the ioctl sees only the primary IPv4 address
        assert {x for x in a.addresses if ":" in x} == {x for x in b.addresses if ":" in x}
    assert "127.0.0.1/8" in from_ip["lo"].addresses and from_ip["lo"].up
