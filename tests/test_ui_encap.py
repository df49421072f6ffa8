"""The detail pane of a segment that came through a tunnel names the layers around it (read
again from the frame); a plain segment's has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from encaphelp import MAC_A, MAC_B, OUT_A, OUT_B, conversation, write, write_frames
from uiapphelp import loaded

from tcpview.sources.base import FileSource
from tcpview.ui.app import TcpviewApp


async def _headline(path: Path) -> str:
    from textual.widgets import Static

    from tcpview.ui.screens.detail import DetailScreen

    app = TcpviewApp(FileSource(str(path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(app, pilot)
        await pilot.press("enter")  # the first connection's ladder
        await pilot.press("enter")  # its segment under the cursor in full
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        return str(app.screen.query_one("#detail-head", Static).render())


@pytest.mark.parametrize(("kind", "through"), [
    ("vxlan", "through ethernet {a} → {b} › ipv4 {oa} → {ob} › udp {pa} → {pb} › vxlan vni=42 › ethernet"),
    ("mpls-vlan", "through ethernet {a} → {b} vlan=7 › mpls labels=16"),
])
async def test_the_detail_pane_shows_the_outer_layers(tmp_path: Path, kind: str, through: str) -> None:
    path = tmp_path / f"{kind}.pcap"
    write(path, kind)
    head = await _headline(path)
    assert "#0 10.1.0.1:40000" in head
    ends = [(MAC_A, MAC_B), (OUT_A, OUT_B), (50000, 4789)]
    if "server → client" in head:  # the segment under the cursor came back: the tunnel's ends swap
        ends = [(y, x) for x, y in ends]
    (a, b), (oa, ob), (pa, pb) = ends
    assert through.format(a=a, b=b, oa=oa, ob=ob, pa=pa, pb=pb) in head


async def test_a_plain_segment_has_no_outer_layers_in_the_detail_pane(tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether

    path = tmp_path / "plain.pcap"
    write_frames(path, 1, [bytes(Ether(src=MAC_A, dst=MAC_B) / p) for _fwd, p in conversation()])
    head = await _headline(path)
    assert "#0 10.1.0.1:40000" in head and "through" not in head
