"""What a connection carried (``tcpview stream``) and the exports (``tcpview export``), checked
against tshark: Follow TCP Stream's bytes per direction, the frames of ``tcp.stream == N``,
PlantUML's own syntax check, and the counts of segments."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import Flow, cli, corpus_dir, pcapng_bytes, write_frames_pcap

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")

MISSING = re.compile(rb"\[\d+ bytes missing in capture file\]\x00")


def tshark_follow(path: Path, n: int) -> tuple[bytes, bytes, list[str]]:
    """tshark's Follow TCP Stream of stream n: node 0's bytes, node 1's, and node 0's
    address (``ip:port``) and node 1's."""
    out = subprocess.run(["tshark", "-r", str(path), "-q", "-z", f"follow,tcp,raw,{n}"], capture_output=True,
                         text=True, check=True).stdout
    nodes = [bytearray(), bytearray()]
    names = re.findall(r"^Node [01]: (.*)$", out, re.M)
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    for line in body.splitlines():
        if line.startswith("===="):
            break
        if line.strip():
            nodes[1 if line.startswith("\t") else 0] += bytes.fromhex(line.strip())
    return bytes(nodes[0]), bytes(nodes[1]), names


def summary(path: Path) -> list[dict]:
    rc, out, err = cli("summary", str(path), "--json")
    assert rc == 0, err
    return json.loads(out)["connections"]


def raw(path: Path, cid: int, d: str) -> bytes:
    p = subprocess.run([*_cmd(), "stream", str(path), "--conn", str(cid), "--raw", "--dir", d], capture_output=True,
                       timeout=120, check=False, env=_env())
    assert p.returncode == 0, p.stderr
    return p.stdout


def _cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "tcpview"]


def _env() -> dict[str, str]:
    from livehelp import env_with_repo

    return env_with_repo()


def assert_follow_equals_tshark(path: Path) -> int:
    """Every connection's bytes per direction (followed in this process) equal tshark's;
    returns how many bytes there were."""
    from tcpview.engine.analysis.follow import follow_connection
    from tcpview.engine.pump import load

    tl = load(str(path)).timeline
    total = 0
    for c in tl.connections():
        n0, n1, names = tshark_follow(path, c.id)
        f = follow_connection(tl, c.id, str(path))
        client = f"{c.client.ip}:{c.client.port}"
        c2s, s2c = (n0, n1) if names[0] == client else (n1, n0)
        mine = (f.stream(f.node_of(0)), f.stream(f.node_of(1)))
        assert mine == (MISSING.sub(b"", c2s), MISSING.sub(b"", s2c)), c.id
        total += len(c2s) + len(s2c)
    return total


def conversations() -> list:
    """Frames of a few conversations with what makes following hard."""
    frames: list = []
    a = Flow(cport=41000, t0=1.0, frames=frames)  # plain request / response, both closing
    a.handshake()
    a.c("PA", b"GET / HTTP/1.1\r\nHost: x\r\nX-Odd: a\rb\r\n\r\n")  # a lone CR inside a line
    a.s("A")
    a.s("PA", b"HTTP/1.1 200 OK\r\n\r\nhello\x00\x1b[31m\xff")
    a.c("A")
    a.c("FA"), a.s("FA"), a.c("A")
    b = Flow(cport=41001, t0=2.0, frames=frames)  # out of order, then a retransmission that overlaps
    b.handshake()
    s0 = b.nxt[0]
    b.c("PA", b"BBBB", seq=s0 + 4)
    b.c("PA", b"AAAA", seq=s0)
    b.nxt[0] = s0 + 8
    b.c("PA", b"BBCC", seq=s0 + 6)
    b.s("A")
    c = Flow(cport=41002, t0=3.0, frames=frames)  # bytes the capture never had, acknowledged
    c.handshake()
    c.c("PA", b"first")
    c.nxt[0] += 7  # lost before the capture point, never retransmitted in it
    c.c("PA", b"third")
    c.s("A")
    c.s("PA", b"reply")
    c.c("A")
    frames.sort(key=lambda f: f[0])
    return frames


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return write_frames_pcap(tmp_path_factory.mktemp("exp") / "built.pcap", conversations())


def test_stream_raw_equals_tshark_follow(built: Path) -> None:
    assert assert_follow_equals_tshark(built) > 0
    # the command writes those bytes exactly
    n0, n1, _names = tshark_follow(built, 0)
    assert (raw(built, 0, "c2s"), raw(built, 0, "s2c")) == (n0, n1)
    assert raw(built, 1, "c2s") == b"AAAABBBBCC"  # reordered, the overlap once
    assert raw(built, 2, "c2s") == b"firstthird"  # the gap is not filled with anything


def test_stream_text_escapes_and_marks_gaps(built: Path) -> None:
    rc, out, err = cli("stream", str(built), "--conn", "0")
    assert rc == 0, err
    assert "\x1b" not in out and "\\x1b[31m\\xff" in out and "hello\\x00" in out
    # line ends as Wireshark's Follow shows them: CRLF ends a line, a lone CR is escaped
    lines = out.splitlines()
    at = lines.index("GET / HTTP/1.1")
    head = "── 10.0.0.2:80 → 10.0.0.1:41000  frame 6  31 bytes"
    assert lines[at:at + 5] == ["GET / HTTP/1.1", "Host: x", "X-Odd: a\\rb", "", head]
    assert out.count("\\r") == 1
    assert "10.0.0.2:80 → 10.0.0.1:41000  frame" in out
    assert out.endswith("10.0.0.2:80: 39 bytes; 10.0.0.2:80 → 10.0.0.1:41000: 31 bytes\n")
    rc, out, err = cli("stream", str(built), "--conn", "2")
    assert rc == 0, err
    assert "[7 bytes missing in capture file]" in out
    rc, out, err = cli("stream", str(built), "--conn", "2", "--hex")
    assert rc == 0, err
    assert "00000000  66 69 72 73 74" in out and "00000005  74 68 69 72 64" in out


def test_stream_of_real_lossy_traffic_equals_tshark(tmp_path: Path) -> None:
    """Real Linux TCP with random drops on both sides of the capture point (lossnet)."""
    import lossnet

    why = lossnet.missing()
    if why:
        pytest.skip(why)
    pcap = lossnet.capture(tmp_path / "lossy.pcap", seconds=4.0)
    assert assert_follow_equals_tshark(pcap) > 100_000


def test_stream_over_the_corpus_equals_tshark() -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("no capture corpus here")
    for name in ("chrissanders__tcp-retransmissions.pcapng", "arkime__retransmissions.pcap"):
        if (corpus / name).exists():
            assert_follow_equals_tshark(corpus / name)


def _tshark_frames(path: Path, stream: int | None = None) -> list[str]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
           "-e", "frame.cap_len", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.flags"]
    if stream is not None:
        cmd += ["-Y", f"tcp.stream == {stream}"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_export_pcap_holds_exactly_the_streams_frames(built: Path, tmp_path: Path, kind: str) -> None:
    src = built
    if kind == "pcapng":
        frames = conversations()
        src = tmp_path / "built.pcapng"
        src.write_bytes(pcapng_bytes([(1, 6)], [(0, t, b) for t, _lt, b in frames]))
    for cid in (0, 1, 2):
        out = tmp_path / f"c{cid}.{kind}"
        rc, _o, err = cli("export", str(src), "--format", "pcap", "--conn", str(cid), "-o", str(out))
        assert rc == 0, err
        assert _tshark_frames(out) == _tshark_frames(src, cid)
    # a filter: several connections, in capture order
    out = tmp_path / "two.pcap"
    rc, _o, err = cli("export", str(src), "--format", "pcap", "--filter", "port:41001", "-o", str(out))
    assert rc == 0, err
    assert _tshark_frames(out) == _tshark_frames(src, 1)


def test_diagrams_have_one_arrow_per_segment(built: Path, tmp_path: Path) -> None:
    conns = summary(built)
    for c in conns:
        rc, out, err = cli("export", str(built), "--format", "mermaid", "--conn", str(c["id"]))
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0] == "sequenceDiagram"
        arrows = [line for line in lines if re.match(r"^    P\d+->>P\d+: \S", line)]
        assert len(arrows) == c["packets"]
        assert all(re.match(r"^    (participant P\d+ as \S+|P\d+->>P\d+: [^;]+|Note over P\d+: [^;]+)$", line)
                   for line in lines[1:]), lines
        rc, out, err = cli("export", str(built), "--format", "plantuml", "--conn", str(c["id"]))
        assert rc == 0, err
        assert out.startswith("@startuml\n") and out.endswith("@enduml\n")
        assert len(re.findall(r"^P\d+ -> P\d+ : ", out, re.M)) == c["packets"]
        assert "note over P0 : ESTABLISHED" in out
    # all of them in one diagram, checked by PlantUML itself
    path = tmp_path / "all.puml"
    rc, _o, err = cli("export", str(built), "--format", "plantuml", "-o", str(path))
    assert rc == 0, err
    assert len(re.findall(r"^P\d+ -> P\d+ : ", path.read_text(), re.M)) == sum(c["packets"] for c in conns)
    if shutil.which("plantuml") is None:
        pytest.skip("plantuml not installed (CI installs it)")
    p = subprocess.run(["plantuml", "-syntax"], input=path.read_text(), capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0 and p.stdout.startswith("SEQUENCE"), p.stdout + p.stderr


def test_svg_and_csv(built: Path, tmp_path: Path) -> None:
    svg = tmp_path / "ladder.svg"
    rc, _o, err = cli("export", str(built), "--format", "svg", "--conn", "0", "-o", str(svg))
    assert rc == 0, err
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "SYN,ACK" in text and "10.0.0.1:41000" in text
    rc, out, err = cli("export", str(built), "--format", "csv", "--filter", "port:41002")
    assert rc == 0, err
    rows = out.splitlines()
    assert rows[0].startswith("frame,ts,conn,dir,flags,seq,ack")
    assert len(rows) - 1 == summary(built)[2]["packets"]
    assert all(r.split(",")[2] == "2" for r in rows[1:])
    assert any(",lost_segment" in r or " lost_segment" in r for r in rows[1:])


def test_bad_input_is_one_line_and_nothing_is_overwritten(built: Path, tmp_path: Path) -> None:
    keep = tmp_path / "mine.txt"
    keep.write_text("precious")
    cases = [
        ("export", str(built), "--format", "csv", "-o", str(keep)),  # exists
        ("export", str(built), "--conn", "99"),
        ("export", str(built), "--filter", "zeek:NOPE"),
        ("export", str(built), "--format", "gif"),
        ("stream", str(built), "--conn", "7"),
        ("stream", str(built), "--conn", "0", "--raw"),  # which direction?
        ("stream", str(built), "--conn", "0", "--dir", "c2s"),
        ("stream", "-", "--conn", "0"),
        ("stream", str(tmp_path / "absent.pcap"), "--conn", "0"),
    ]
    for args in cases:
        rc, out, err = cli(*args)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert keep.read_text() == "precious"
    rc, _o, err = cli("export", str(built), "--format", "csv", "-o", str(keep), "--force")
    assert rc == 0, err
    assert keep.read_text().startswith("frame,")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tcpview-")] == []


@contextlib.asynccontextmanager
async def stream_pane_of(path: Path, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """The app on capture ``path``, loaded, its stream pane shown (``f``): (app, pilot, pane)."""
    from helpers import wait_until

    from tcpview.sources.base import FileSource
    from tcpview.ui.app import TcpviewApp
    from tcpview.ui.widgets.stream_pane import StreamPane

    app = TcpviewApp(FileSource(str(path)), tick=3600)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        await pilot.press("f")
        await app.workers.wait_for_complete()  # the pane follows the connection on a worker
        await pilot.pause()
        yield app, pilot, app.query_one(StreamPane)


async def test_stream_pane_in_the_app(built: Path) -> None:
    """f shows what the selected connection carried (escaped, no control byte reaches the
    terminal), x switches to hex, a gap is marked; f again brings the ladder back."""
    from tcpview.ui.widgets.ladder import Ladder

    async with stream_pane_of(built, (120, 40)) as (app, pilot, pane):
        assert pane.display and pane.has_focus and not app.query_one(Ladder).display
        text = "\n".join(pane.render_line(y).text.rstrip() for y in range(pane.size.height))
        assert "GET / HTTP/1.1\n" in text and "X-Odd: a\\rb\n" in text and "\\r\n" not in text
        assert "hello\\x00\\x1b[31m\\xff" in text and "\x1b" not in text
        assert "10.0.0.2:80 → 10.0.0.1:41000  frame" in text
        await pilot.press("x")
        await pilot.pause()
        text = "\n".join(pane.render_line(y).text for y in range(pane.size.height))
        assert "00000000  47 45 54 20 2f 20 48 54 54 50" in text  # "GET / HTTP"
        app.query_one("#table").focus()
        await pilot.press("j", "j")  # connection 2, which lost 7 bytes
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = "\n".join(pane.render_line(y).text for y in range(pane.size.height))
        assert "[7 bytes missing in capture file]" in text
        await pilot.press("f")
        await pilot.pause()
        assert app.query_one(Ladder).display and not pane.display


async def test_stream_pane_wraps_long_lines(tmp_path: Path) -> None:
    """A line longer than the pane wraps onto the next rows (all of it stays readable), and
    wraps again when the terminal is resized; a hex dump does not wrap."""
    frames: list = []
    a = Flow(cport=41000, t0=1.0, frames=frames)
    a.handshake()
    cookie = "".join(f"{i:03d}-" for i in range(100))  # 400 characters, each place marked
    a.c("PA", f"Cookie: {cookie}\r\n".encode())
    a.s("A")
    path = write_frames_pcap(tmp_path / "long.pcap", frames)
    async with stream_pane_of(path, (100, 40)) as (_app, pilot, pane):

        def shown() -> list[str]:
            return [pane.render_line(y).text.rstrip() for y in range(1, pane.size.height)]

        width = pane.scrollable_content_region.width
        rows = [r for r in shown() if r and not r.startswith("──")]
        assert len(rows) == -(-len(f"Cookie: {cookie}") // width) > 3
        assert "".join(rows) == f"Cookie: {cookie}"  # every character, in order (CRLF ends the line)
        await pilot.resize_terminal(70, 40)
        await pilot.pause()
        narrower = [r for r in shown() if r and not r.startswith("──")]
        assert len(narrower) > len(rows) and "".join(narrower) == "".join(rows)
        await pilot.press("x")
        await pilot.pause()
        assert all(len(r) <= pane.scrollable_content_region.width for r in shown())
        assert sum(r.startswith("0000") for r in shown()) > 3  # a line per 16 bytes, not wrapped


async def test_e_exports_from_the_app(built: Path, tmp_path: Path) -> None:
    """e asks for FORMAT FILE and writes the selected connection (with a filter: the filtered
    ones); an existing file is left alone."""
    from helpers import wait_until
    from uihelp import Notes

    from tcpview.sources.base import FileSource
    from tcpview.ui.app import TcpviewApp

    app = TcpviewApp(FileSource(str(built)), tick=3600)
    notes = Notes()
    async with app.run_test(size=(120, 40), message_hook=notes) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(lambda: app.loaded, 10, 0.02, pilot.pause)
        one = tmp_path / "one.puml"
        await pilot.press("j", "e", *f"plantuml {one}", "enter")
        assert await wait_until(one.exists, 10, 0.02, pilot.pause)
        assert len(re.findall(r"^P\d+ -> P\d+ : ", one.read_text(), re.M)) == summary(built)[1]["packets"]
        frames = tmp_path / "two.pcap"
        await pilot.press("slash", *"10.0.0.1:4100", "enter")  # all three connections pass
        await pilot.press("e", *f"pcap {frames}", "enter")
        assert await wait_until(frames.exists, 10, 0.02, pilot.pause), [n.message for n in notes]
        assert _tshark_frames(frames) == _tshark_frames(built)
        one.write_text("mine")
        await pilot.press("e", *f"csv {one}", "enter")  # exists: refused, the box stays open
        await pilot.pause()
        assert one.read_text() == "mine"
        assert any("exists" in str(n.message) for n in notes)


def test_following_on_from_an_earlier_cursor_equals_following_at_once(built: Path) -> None:
    """The pane of a growing (live) connection feeds only the new segments to its follow."""
    from tcpview.engine.analysis.follow import follow_connection
    from tcpview.engine.pump import load

    tl = load(str(built)).timeline
    for cid in range(3):
        c = tl.conns[cid]
        for k in range(1, c.n):
            mid = c.record(k - 1)[0]
            early = follow_connection(tl, cid, str(built), mid)
            assert early.fed == c.count_at(mid)
            later = follow_connection(tl, cid, str(built), None, early)
            whole = follow_connection(tl, cid, str(built))
            assert later.chunks == whole.chunks and later.fed == whole.fed == c.n


def test_wrapped_stream_text_never_cuts_an_escape() -> None:
    """The stream pane wraps escaped text between bytes: ``\\xNN`` and ``\\r`` move whole to
    the next row, and the rows together are the text."""
    import itertools
    import random

    from tcpview.engine.analysis.follow import escaped
    from tcpview.ui.widgets.stream_pane import wrap_escaped

    rng = random.Random(7)
    for _ in range(300):
        data = bytes(rng.choice([rng.randrange(256), 13, 65]) for _ in range(rng.randrange(1, 300)))
        data = data.replace(b"\n", b"").replace(b"\\", b"")  # one line; no literal backslash
        tokens = [escaped(bytes([b])) for b in data]
        between = set(itertools.accumulate(len(t) for t in tokens))
        text = "".join(tokens)
        for width in (16, 17, 18, 19, 41, 78):
            rows = wrap_escaped(text, width)
            assert "".join(rows) == text and all(0 < len(r) <= width for r in rows)
            assert set(itertools.accumulate(len(r) for r in rows)) <= between
