"""The code passes ruff with the rules in ``pyproject.toml`` (``[tool.ruff.lint]``): pyflakes,
pycodestyle's errors, import order, no stale noqa, and no module reading another's private
attributes (SLF001). ruff is in the ``test`` extra, so the README's test command runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)


def test_ruff_passes_on_the_package_and_the_tests() -> None:
    out = ruff("tcpview", "tests", "benchmarks")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_reports_a_private_read_across_modules(tmp_path: Path) -> None:
    """The check above can fail: another object's private attribute is read."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(tl):\n    return tl._view\n")
    out = ruff("--config", str(ROOT / "pyproject.toml"), str(bad))
    assert out.returncode != 0 and "SLF001" in out.stdout, out.stdout
