"""The UI tests' capture (uihelp.py) has the states its docstring documents."""

from __future__ import annotations

from pathlib import Path

from uihelp import write_capture


def test_capture_has_the_documented_states(tmp_path: Path) -> None:
    """The tracker agrees with the states uihelp documents (the UI tests rely on them)."""
    from tcpview.engine.pump import load

    tl = load(str(write_capture(tmp_path / "k.pcap"))).timeline
    assert len(tl.conns) == 4
    names = [tuple(tl.connection(i).model_dump()[s]["state"] for s in ("client", "server")) for i in range(4)]
    assert names == [("FIN_WAIT_2", "CLOSE_WAIT"), ("TIME_WAIT", "CLOSED"), ("CLOSED", "CLOSED"),
                     ("SYN_SENT", "SYN_RECEIVED")]
