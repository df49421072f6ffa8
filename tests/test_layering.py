"""The engine stays headless: model/decode/tracker/store/loader import neither Textual nor scapy.

Run in a fresh interpreter so modules imported by other tests cannot hide a violation.
"""

import subprocess
import sys

import pytest

HEADLESS = [
    "tcpview.engine.model",
    "tcpview.engine.decode",
    "tcpview.engine.tracker",
    "tcpview.engine.store",
    "tcpview.engine.pump",
    "tcpview.engine.ladder",
    "tcpview.sources.pcap",
    "tcpview.sources.frames",
    "tcpview.cli",
]


@pytest.mark.parametrize("module", HEADLESS)
def test_engine_module_imports_no_ui_and_no_scapy(module: str) -> None:
    code = (
        "import sys, importlib; importlib.import_module(%r); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'scapy')); "
        "print(','.join(bad))" % module
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"


def test_summary_command_does_not_import_textual(tmp_path) -> None:
    """`tcpview summary` on a file must not pay for importing the UI."""
    code = (
        "import sys; from tcpview.cli import main; "
        "rc = main(['summary', %r]); "
        "print('textual' in sys.modules, rc)" % str(tmp_path / "missing.pcap")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "2"], out.stdout + out.stderr
