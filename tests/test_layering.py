"""The layers stay apart: the import-linter contracts in pyproject.toml hold, no module takes
part in an import cycle (imports inside functions count), and the headless commands stay
headless when they run.
"""

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept() -> None:
    """Layers cli > ui > kernel | sim > engine > sources; no Textual/rich below the UI; no
    scapy in the engine; no cycle between sibling packages or modules."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "KEPT" in out.stdout


def test_import_linter_reports_a_broken_contract(tmp_path) -> None:
    """The check above can fail: a contract the code breaks (the CLI does import the engine)."""
    cfg = tmp_path / "broken.toml"
    cfg.write_text('[tool.importlinter]\nroot_package = "tcpview"\n\n[[tool.importlinter.contracts]]\n'
                   'name = "cli without engine"\ntype = "forbidden"\nsource_modules = ["tcpview.cli"]\n'
                   'forbidden_modules = ["tcpview.engine"]\n')
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(cfg)!r}, no_cache=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout[-2000:]


def _module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    mods = sorted(m for m in graph.modules if m.startswith("tcpview"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in mods:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if not w.startswith("tcpview"):
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_module_is_part_of_an_import_cycle() -> None:
    graph = grimp.build_graph("tcpview", exclude_type_checking_imports=False, cache_dir=None)
    assert _module_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check above can fail: a graph with a -> b -> a has one cycle."""
    graph = grimp.ImportGraph()
    for m in ("tcpview", "tcpview.a", "tcpview.b", "tcpview.c"):
        graph.add_module(m)
    graph.add_import(importer="tcpview.a", imported="tcpview.b")
    graph.add_import(importer="tcpview.b", imported="tcpview.a")
    graph.add_import(importer="tcpview.c", imported="tcpview.a")
    assert _module_cycles(graph) == [["tcpview.a", "tcpview.b"]]


def test_summary_command_does_not_import_textual(tmp_path) -> None:
    """`tcpview summary` on a file must not pay for importing the UI."""
    code = (
        "import sys; from tcpview.cli import main; "
        "rc = main(['summary', %r]); "
        "print('textual' in sys.modules, rc)" % str(tmp_path / "missing.pcap")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.split() == ["False", "2"], out.stdout + out.stderr


def test_summary_json_does_not_import_pydantic(tmp_path) -> None:
    """`tcpview summary --json` writes from the columns: the models (pydantic, slow to import
    and ~16 MB) are for the views and exports that build them."""
    from helpers import Flow, write_frames_pcap

    f = Flow()
    f.handshake()
    path = write_frames_pcap(tmp_path / "one.pcap", f.frames)
    code = (
        "import sys, io, contextlib; from tcpview.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    rc = main(['summary', %r, '--json'])\n"
        "print('pydantic' in sys.modules, rc, len(out.getvalue()) > 0)" % str(path)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.split() == ["False", "0", "True"], out.stdout + out.stderr
