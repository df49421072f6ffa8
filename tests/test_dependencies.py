"""Every package the code imports is declared: ``tcpview/`` imports only the standard library
and the distributions in ``[project] dependencies``; ``tests/`` may add those of the ``test``
extra. A package installed by hand on a developer's machine must never hide a missing line
(a fresh virtual environment would fail to import it)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared(extra: str = "test") -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {_norm(re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0]) for r in reqs}

    return names(project["dependencies"]), names(project["optional-dependencies"][extra])


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _imported(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """Top-level module names imported anywhere under ``folder`` (inside functions too), with
    one file that imports each; not those under ``skip``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        if skip is not None and skip in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                found.setdefault(top, path.name)
    return found


def _undeclared(folder: Path, allowed: set[str], local: set[str], skip: Path | None = None) -> list[str]:
    dists = importlib.metadata.packages_distributions()
    bad = []
    for top, where in sorted(_imported(folder, skip).items()):
        if top in sys.stdlib_module_names or top in local:
            continue
        owners = {_norm(d) for d in dists.get(top, [])}
        if not owners & allowed:
            bad.append(f"{top} (imported in {where}; installed from {sorted(owners) or 'nothing'})")
    return bad


def test_the_package_imports_only_declared_dependencies() -> None:
    """``tcpview.cluster`` may also import the ``cluster`` extra's packages (checked below)."""
    runtime, _ = _declared()
    assert _undeclared(ROOT / "tcpview", runtime, {"tcpview"}, skip=ROOT / "tcpview" / "cluster") == []


def test_the_cluster_imports_only_its_extra() -> None:
    runtime, cluster = _declared("cluster")
    assert _undeclared(ROOT / "tcpview" / "cluster", runtime | cluster, {"tcpview"}) == []


def test_the_tests_import_only_declared_dependencies() -> None:
    runtime, test = _declared()
    local = {"tcpview"} | {p.stem for p in (ROOT / "tests").rglob("*.py")} | {
        p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    assert _undeclared(ROOT / "tests", runtime | test, local) == []


def test_an_undeclared_import_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a module that imports an installed but undeclared package
    (pytest, checked against the runtime dependencies alone)."""
    (tmp_path / "m.py").write_text("def f():\n    import pytest\n")
    runtime, _ = _declared()
    bad = _undeclared(tmp_path, runtime, set())
    assert len(bad) == 1 and bad[0].startswith("pytest "), bad
