"""``tcpview serve`` in a real browser: textual-serve serves the demo, headless Chromium opens
the page, and the test checks the app's output reached the page's terminal and was drawn in
the asked-for theme's colours. The screenshot is kept as artifacts/web-demo.png.

Chromium is driven over its DevTools protocol (a websocket, through aiohttp, which
textual-serve already needs). The page draws the terminal on a canvas, so the screen is checked
by its pixels and by the bytes the page's websocket received.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers import REPO, cli, wait_until

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
ARTIFACTS = REPO / "artifacts"

# Collects what the page's websocket receives (textual-serve sends the terminal's bytes).
HOOK = """
(() => {
  const Orig = window.WebSocket;
  window.__received = [];
  function Hooked(url, protocols) {
    const ws = protocols === undefined ? new Orig(url) : new Orig(url, protocols);
    ws.addEventListener("message", (e) => {
      const d = e.data;
      if (typeof d === "string") { window.__received.push(d); }
      else if (d instanceof ArrayBuffer) { window.__received.push(new TextDecoder().decode(d)); }
      else if (d && d.arrayBuffer) { d.arrayBuffer().then((b) => window.__received.push(new TextDecoder().decode(b))); }
    });
    return ws;
  }
  Hooked.prototype = Orig.prototype;
  Object.assign(Hooked, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Hooked;
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NO_COLOR", None)
    return env


def _accepts(port: int, proc: subprocess.Popen) -> bool:
    """Whether the server ``proc`` (still running) accepts connections on ``port`` yet."""
    assert proc.poll() is None, "server exited: " + (proc.stderr.read().decode() if proc.stderr else "")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening_on(port: int) -> set[str]:
    """The IPv4 addresses with a socket listening on ``port``, from the kernel's table."""
    import ipaddress

    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, _remote, state = line.split()[1:4]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.add(str(ipaddress.IPv4Address(bytes.fromhex(addr)[::-1])))
    return found


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB pixels of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        prev = line
        rows.append(bytes(line) if channels == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
    return width, height, rows


def colour_counts(rows: list[bytes]) -> dict[tuple[int, int, int], int]:
    """How many pixels have each exact colour."""
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for j in range(0, len(row), 3):
            key = (row[j], row[j + 1], row[j + 2])
            counts[key] = counts.get(key, 0) + 1
    return counts


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params):  # type: ignore[no-untyped-def]
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == my_id:
                assert "error" not in msg, msg
                return msg.get("result", {})

    async def evaluate(self, expression: str):  # type: ignore[no-untyped-def]
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")


async def _browse(url: str, profile: Path, timeout: float = 25.0) -> tuple[bytes, str, bool]:
    """Open ``url`` in headless Chromium; returns (PNG screenshot, websocket text, first byte seen)."""
    import aiohttp

    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",  # type: ignore[list-item]
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--window-size=1200,800", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"

        def devtools_port_written() -> bool:
            if active.exists() and active.read_text().count("\n") >= 1:
                return True
            assert proc.poll() is None, "chromium exited"
            return False

        assert await wait_until(devtools_port_written, 20, 0.1, asyncio.sleep), \
            "chromium did not open its DevTools port"
        port = int(active.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json(content_type=None)
            page = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                dt = DevTools(ws)
                await dt.call("Page.enable")
                await dt.call("Emulation.setDeviceMetricsOverride", width=1200, height=800,
                              deviceScaleFactor=1, mobile=False)
                await dt.call("Page.addScriptToEvaluateOnNewDocument", source=HOOK)
                await dt.call("Page.navigate", url=url)
                first = False
                text = ""

                async def drawn() -> bool:
                    nonlocal first, text
                    first = bool(await dt.evaluate(
                        "document.body && document.body.classList.contains('-first-byte')"))
                    text = await dt.evaluate("(window.__received || []).join('')") or ""
                    return first and "TIME_WAIT" in text and "─▶" in text

                await wait_until(drawn, timeout, 0.25, asyncio.sleep)

                async def faded_in() -> bool:  # the terminal's 0.3 s fade-in transition is over
                    return await dt.evaluate(
                        "getComputedStyle(document.querySelector('.textual-terminal')).opacity") == "1"

                assert await wait_until(faded_in, timeout, 0.05, asyncio.sleep), "the terminal never faded in"
                # and the canvas has drawn what arrived: two animation frames later
                await dt.call("Runtime.evaluate", awaitPromise=True, expression=(
                    "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))"))
                shot = await dt.call("Page.captureScreenshot", format="png")
                text = await dt.evaluate("(window.__received || []).join('')") or text
                return base64.b64decode(shot["data"]), text, first
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_serve_shows_the_demo_in_a_browser(tmp_path: Path) -> None:
    pytest.importorskip("textual_serve")
    from tcpview.ui.themes.catalog import builtin_themes

    port = _free_port()
    theme = builtin_themes()["tcpview-light"]
    server = subprocess.Popen(
        [sys.executable, "-m", "tcpview", "serve", "--port", str(port), "--", "demo", "--seed", "3",
         "--theme", "tcpview-light"],
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: _accepts(port, server), 15, 0.1), f"nothing listening on port {port}"
        png, text, first = asyncio.run(_browse(f"http://127.0.0.1:{port}/", tmp_path / "profile"))
    finally:
        _stop(server)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "web-demo.png").write_bytes(png)
    assert first, "the page's terminal never received the app's output"
    for word in ("tcpview", "demo busy", "TIME_WAIT", "CLOSE_WAIT", "ESTABLISHED", "Connections", "SYN"):
        assert word in text, word
    width, height, rows = decode_png(png)
    assert (width, height) == (1200, 800)
    counts = colour_counts(rows)
    total = width * height

    def rgb(hexcolour: str) -> tuple[int, int, int]:
        h = hexcolour.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)

    # drawn in the light theme asked for on the served command line: its background fills most
    # of the window, and the solid sparkline blocks show the state colours exactly
    assert counts.get(rgb(theme.background), 0) > total * 0.4, sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    assert counts.get(rgb(theme.variables["state-time-wait"]), 0) > 20
    assert counts.get(rgb(theme.variables["state-established"]), 0) > 20
    assert len(counts) > 20  # text, borders and colours, not a blank page


def test_serve_warns_when_bound_beyond_this_host(tmp_path: Path) -> None:
    pytest.importorskip("textual_serve")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tcpview", "serve", "--host", "0.0.0.0", "--port", str(port)],
                              cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: _accepts(port, server), 15, 0.1), f"nothing listening on port {port}"
        line = server.stderr.readline().decode()  # type: ignore[union-attr]
        assert _listening_on(port) == {"0.0.0.0"}
    finally:
        _stop(server)
    assert line.startswith("tcpview: warning: serving on 0.0.0.0:") and "no authentication" in line
    assert line.endswith("\n") and line.count("\n") == 1


def test_serve_binds_loopback_by_default_without_warning(tmp_path: Path) -> None:
    pytest.importorskip("textual_serve")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tcpview", "serve", "--port", str(port)],
                              cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: _accepts(port, server), 15, 0.1), f"nothing listening on port {port}"
        assert _listening_on(port) == {"127.0.0.1"}
    finally:
        _stop(server)
    assert server.stderr.read() == b""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "port out of range"),
        (["--", "summary", "x.pcap"], "does not run the app"),
        (["--", "serve"], "does not run the app"),
        (["--", "demo", "--no-such-option"], "served command `tcpview demo --no-such-option`"),
        (["--", "demo", "--theme", "nosuch"], "unknown theme 'nosuch'"),
    ],
)
def test_serve_bad_arguments_are_one_line_exit_2(args: list[str], message: str) -> None:
    pytest.importorskip("textual_serve")
    code, out, err = cli("serve", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_serve_port_in_use_is_one_line_exit_2() -> None:
    pytest.importorskip("textual_serve")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _out, err = cli("serve", "--port", str(busy.getsockname()[1]))
    assert code == 2
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1" in err
