"""The package type-checks: mypy over ``tcpview/`` with the settings in ``pyproject.toml``
(``[tool.mypy]``) reports no error, and no ``# type: ignore`` that is not needed any more or
that does not name its error. mypy is in the ``test`` extra, so the README's test command
runs it. Its cache (``.mypy_cache``) makes a rerun quick; a first run checks everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def test_mypy_passes_on_the_package() -> None:
    out = mypy()
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


def test_mypy_reports_a_type_error_and_a_stale_ignore(tmp_path: Path) -> None:
    """The check above can fail: a wrong argument type, an ignore nothing needs, and one that
    names no error are each reported with the project's settings."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(n: int) -> int:\n    return n\n\n\nf('1')\n"
                   "x: int = 1  # type: ignore[assignment]\n"
                   "y: int = ''  # type: ignore\n")
    # a cache of its own: the run above may be writing the package's at the same time (xdist)
    out = mypy("--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"), str(bad))
    assert out.returncode == 1, out.stdout
    assert "[arg-type]" in out.stdout and "[unused-ignore]" in out.stdout, out.stdout
    assert "[ignore-without-code]" in out.stdout, out.stdout
