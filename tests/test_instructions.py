"""What tcpview tells people to run is safe to follow word for word.

- Every install instruction installs this project. A ``pip install`` in README.md and the
  docs (fenced and indented code blocks, inline code; every Markdown file of the repository)
  names a path (a checkout, a built wheel), a URL, or this project's own distribution: never
  a bare name that someone else owns on the package index, as ``tcpview`` there is another
  project. The package's own texts (error messages, ``--help``) are read the same way.
- No instruction widens privileges beyond the one capture program: nothing suggests giving
  capabilities to an interpreter (``setcap`` on ``python3`` gives them to every Python
  program on the host).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]

# pip install options that take a value (the value is not a requirement)
_VALUED = {"-r", "--requirement", "-c", "--constraint", "-t", "--target", "--prefix", "--root", "-i",
           "--index-url", "--extra-index-url", "-f", "--find-links", "--src", "--upgrade-strategy",
           "--python-version", "--platform", "--implementation", "--abi", "--no-binary", "--only-binary",
           "--progress-bar", "-C", "--config-settings", "--trusted-host", "--proxy", "--cert", "--client-cert",
           "--cache-dir", "--log", "--timeout", "--retries", "--exists-action", "--root-user-action", "--report",
           "--python", "--global-option", "--build-option", "--use-feature", "--use-deprecated"}
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
_REDIRECTS = {">", ">>", "<", "<<", ">&", "&>", "<&"}  # the word after one is a file
_PIP = re.compile(r"(?:.*/)?pip(?:3(?:\.\d+)?)?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def code_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """The code of a Markdown text, with line numbers: each line of a fenced block (at any
    indentation, as in a list item), each line of an indented block, each inline code span."""
    fence: str | None = None
    for number, line in enumerate(markdown.splitlines(), 1):
        mark = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is not None:
            if mark and mark.group(1)[0] == fence[0] and len(mark.group(1)) >= len(fence):
                fence = None
            else:
                yield number, line
            continue
        if mark:
            fence = mark.group(1)
            continue
        if re.match(r"( {4}|\t)", line):
            yield number, line
            continue
        for span in re.findall(r"(`+)(.+?)\1", line):
            yield number, span[1]


def pip_installs(command: str) -> list[list[str]]:
    """The arguments of each ``pip install`` in a shell command line (``pip``, ``pip3``, a
    venv's ``.../bin/pip``, ``python -m pip``), up to the end of that command."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:  # an unbalanced quote: read it plainly
        words = command.split()
    found = []
    for i, word in enumerate(words):
        if not (_PIP.match(word) and words[i + 1:i + 2] == ["install"]):  # python -m pip too
            continue
        at = i + 2
        args: list[str] = []
        redirected = False
        for w in words[at:]:
            if w in _SEPARATORS:
                break
            if redirected or w in _REDIRECTS:
                redirected = w in _REDIRECTS
                continue
            args.append(w)
        found.append(args)
    return found


def requirements(args: list[str]) -> list[str]:
    """The requirements among ``pip install`` arguments (what ``-e`` names counts)."""
    reqs, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-e", "--editable"):
            continue
        if a in _VALUED:
            skip = True
            continue
        if a.startswith("-"):
            continue
        reqs.append(a)
    return reqs


def installs_this_project(req: str, dist: str = DIST) -> bool:
    """Whether the requirement ``req`` installs this project: a path (a checkout, ``.[test]``, a
    wheel or source archive), a URL (``git+https://...``), or this distribution by its name."""
    if re.match(r"[a-z][a-z0-9+.-]*:", req):  # git+https://..., file:..., https://...
        return True
    if req.startswith((".", "/", "~")) or "/" in req or req.endswith((".whl", ".tar.gz", ".zip")):
        return True
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
    return name is not None and _norm(name.group()) == _norm(dist)


def strangers(text: str, where: str, markdown: bool = True, dist: str = DIST) -> list[str]:
    """Every ``pip install`` in ``text`` of a requirement that is not this project, as
    ``where:line: requirement``: in the code of a Markdown text, or anywhere in a program's."""
    if markdown:
        commands = code_lines(text)
    else:  # program text: each pip install up to the end of the string it is in
        commands = ((number, m.group()) for number, line in enumerate(text.splitlines(), 1)
                    for m in re.finditer(r"(?:\S*/)?pip[\d.]*\s+install\b[^\"'\n]*", line))
    bad = []
    for number, command in commands:
        for args in pip_installs(command):
            bad += [f"{where}:{number}: {req}" for req in requirements(args)
                    if not installs_this_project(req, dist)]
    return bad


def _docs() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md")
                  if not any(part.startswith(".") for part in p.relative_to(ROOT).parts))


def test_the_distribution_name_is_not_the_strangers() -> None:
    """``tcpview`` on the package index is another project: this one is named otherwise."""
    assert _norm(DIST) != "tcpview"


def test_every_install_instruction_in_the_docs_installs_this_project() -> None:
    docs = _docs()
    assert ROOT / "README.md" in docs and ROOT / "docs" / "ssh-demo.md" in docs
    bad = [b for p in docs for b in strangers(p.read_text(), str(p.relative_to(ROOT)))]
    assert bad == []


def test_the_docs_do_say_how_to_install() -> None:
    """The check above reads the instructions it is meant for (it would pass on none)."""
    readme = [args for _n, line in code_lines((ROOT / "README.md").read_text()) for args in pip_installs(line)]
    assert ["."] in readme and ['.[test]'] in readme
    demo = [requirements(args) for _n, line in code_lines((ROOT / "docs" / "ssh-demo.md").read_text())
            for args in pip_installs(line)]
    assert ["."] in demo and any(r[0].endswith(".whl") for r in demo if r)


def test_the_package_texts_never_install_a_strangers_name() -> None:
    """Error messages and ``--help`` texts: any ``pip install`` in the package's sources."""
    bad = [b for p in sorted((ROOT / "tcpview").rglob("*.py"))
           for b in strangers(p.read_text(), str(p.relative_to(ROOT)), markdown=False)]
    assert bad == []


def test_the_check_finds_a_strangers_name() -> None:
    """The checks above can fail: the SSH recipe as it was, and other ways of writing it."""
    text = """# Demo

```sh
python3 -m venv /opt/tcpview
/opt/tcpview/bin/pip install tcpview
```

Or `python3 -m pip install --upgrade -i https://example.org/simple "requests[socks]>=2" ./x.whl`.

    pip3 install -e . && pip install -r reqs.txt rich; sudo pip install tcpview-tui[test]

- a list item:

  ~~~
  pip install TcpView==1.0.0 . > log.txt  # a comment
  ~~~
"""
    assert strangers(text, "demo.md", dist="tcpview-tui") == [
        "demo.md:5: tcpview", "demo.md:8: requests[socks]>=2", "demo.md:10: rich", "demo.md:15: TcpView==1.0.0"]
    # what this project's name, paths and URLs install is its own
    assert all(installs_this_project(r, "tcpview-tui") for r in (
        ".", ".[test]", "./dist/tcpview_tui-0.1.0-py3-none-any.whl", "tcpview_tui", "Tcpview.TUI[test]>=0.1",
        "git+https://example.org/tcpview.git", "/tmp/tcpview_tui-0.1.0.tar.gz"))
    # prose is not a command; code in prose is
    assert strangers("Never type pip install tcpview here.", "x.md", dist="tcpview-tui") == []
    assert strangers("Never type `pip install tcpview` here.", "x.md", dist="tcpview-tui") == ["x.md:1: tcpview"]
    # the package's texts are read whole
    assert strangers('HINT = "install it: pip install scapy"\n', "x.py", markdown=False, dist="tcpview-tui") == [
        "x.py:1: scapy"]


# -- privileges ----------------------------------------------------------------------------------
# "set" "cap" apart: this file names the command without suggesting it
_CAPS_ON_INTERPRETER = re.compile("set" + r"cap\b[^`]{0,120}?(python|readlink|\$\(which)", re.IGNORECASE)


def interpreter_capabilities(text: str, where: str) -> list[str]:
    """Each place in ``text`` that gives capabilities to an interpreter, as ``where:line``."""
    return [f"{where}:{text.count(chr(10), 0, m.start()) + 1}" for m in _CAPS_ON_INTERPRETER.finditer(text)]


def test_nothing_gives_capabilities_to_an_interpreter() -> None:
    texts = [*_docs(), *sorted((ROOT / "tcpview").rglob("*.py")), ROOT / ".ci" / "run"]
    bad = [b for p in texts if p.exists()
           for b in interpreter_capabilities(p.read_text(), str(p.relative_to(ROOT)))]
    assert bad == []


def test_the_capabilities_check_finds_an_interpreter() -> None:
    """The check above can fail: the advice README.md and the live-capture error gave, over two
    lines; setcap on dumpcap (Debian's way) is not such advice."""
    old = ("It needs root or\n`CAP_NET_RAW`+`CAP_NET_ADMIN` (e.g. `sudo "
           + "setcap cap_net_raw,cap_net_admin+eip\n$(readlink -f $(which python3))`); without them")
    assert interpreter_capabilities(old, "README.md") == ["README.md:2"]
    assert interpreter_capabilities("sudo " + "setcap cap_net_raw=eip /usr/bin/python3.11", "x") == ["x:1"]
    assert interpreter_capabilities("sudo " + "setcap cap_net_raw,cap_net_admin=eip /usr/bin/dumpcap", "x") == []
