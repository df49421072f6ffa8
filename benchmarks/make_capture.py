"""Make a large capture of real loopback HTTP traffic for the engine benchmark.

nginx serves 127.0.0.1 while two wrk clients load it: one on keep-alive connections (long
connections, many data segments) and one sending ``Connection: close`` (a new connection per
request, so there are many connections and many TIME_WAITs). tcpdump records the port with
``-c COUNT``, so the capture holds exactly COUNT packets; the clients are stopped when it is
done. Everything stays on 127.0.0.1.

Without nginx or wrk (``apt-get install nginx-light wrk`` on Debian), a small asyncio HTTP
server and client make the same mix (``--engine python``), only more slowly.

Usage::

    python benchmarks/make_capture.py [-o /tmp/tcpview-bench/loopback.pcap] [-c 1000000]

The default output is outside the repository: the capture is never committed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_OUT = Path(tempfile.gettempdir()) / "tcpview-bench" / "loopback.pcap"

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = / {{ return 200 "ok\\n"; }}
        location = /page {{ root {prefix}/www; try_files /page.html =404; }}
    }}
}}
"""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"make_capture: nothing listens on 127.0.0.1:{port}")


def start_tcpdump(out: Path, port: int, count: int, snaplen: int) -> subprocess.Popen:
    """tcpdump on lo for ``count`` packets; returns once it says it is listening."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    p = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-s", str(snaplen), "-B", "65536", "-c", str(count), "-w", str(out),
         f"tcp and host 127.0.0.1 and port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    seen = b""
    while b"listening on" not in seen:
        chunk = p.stderr.read1(4096) if hasattr(p.stderr, "read1") else p.stderr.read(1)
        if not chunk:
            raise SystemExit(f"make_capture: tcpdump failed: {seen.decode(errors='replace')}")
        seen += chunk
    return p


def stop(p: subprocess.Popen | None, sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Stop one process we started, by its pid."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def report_drops(dump: subprocess.Popen | None) -> None:
    """Print tcpdump's closing statistics (packets captured / dropped by the kernel)."""
    if dump is None or dump.stderr is None:
        return
    for line in dump.stderr.read().decode(errors="replace").splitlines():
        if "packets" in line:
            print("tcpdump:", line.strip())


def run_nginx_wrk(out: Path, count: int, snaplen: int, keepalive: int, close: int, limit: float) -> None:
    """The nginx + wrk traffic (see the module docstring)."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="tcpview-nginx-"))
    os.chmod(prefix, 0o755)
    (prefix / "www").mkdir()
    (prefix / "www" / "page.html").write_bytes(b"<p>" + b"tcpview " * 2000 + b"</p>\n")  # ~16 KB
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
    nginx = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    dump = wrk_ka = wrk_close = wrk_page = None
    try:
        wait_listening(port)
        dump = start_tcpdump(out, port, count, snaplen)
        url = f"http://127.0.0.1:{port}"
        dur = f"{int(limit)}s"
        wrk_ka = subprocess.Popen(["wrk", "-t1", f"-c{keepalive}", f"-d{dur}", url + "/"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wrk_page = subprocess.Popen(["wrk", "-t1", "-c2", f"-d{dur}", url + "/page"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wrk_close = subprocess.Popen(["wrk", "-t1", f"-c{close}", f"-d{dur}", "-H", "Connection: close", url + "/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            dump.wait(limit + 30)
        except subprocess.TimeoutExpired:
            print("make_capture: time limit reached before the packet count", file=sys.stderr)
    finally:
        for p in (wrk_ka, wrk_page, wrk_close):
            stop(p)
        stop(dump)
        report_drops(dump)
        stop(nginx, signal.SIGQUIT)
        shutil.rmtree(prefix, ignore_errors=True)


# -- fallback: asyncio server and clients ---------------------------------------------------------
async def _serve(port: int) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                close = b"connection: close" in head.lower()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + (b"Connection: close\r\n" if close else b"")
                             + b"\r\nok\n")
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)


async def _client(port: int, keepalive: bool, done: threading.Event) -> None:
    req = b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"" if keepalive else b"Connection: close\r\n") + b"\r\n"
    while not done.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            for _ in range(1000 if keepalive else 1):
                if done.is_set():
                    break
                writer.write(req)
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(3)
            if not keepalive:
                await reader.read()  # the server closes first
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run_python(out: Path, count: int, snaplen: int, keepalive: int, close: int, limit: float) -> None:
    """The asyncio fallback traffic."""
    port = free_port()
    done = threading.Event()

    async def main() -> None:
        server = await _serve(port)
        tasks = [asyncio.create_task(_client(port, True, done)) for _ in range(keepalive)]
        tasks += [asyncio.create_task(_client(port, False, done)) for _ in range(close)]
        while not done.is_set():
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()

    dump = start_tcpdump(out, port, count, snaplen)

    def watch() -> None:
        try:
            dump.wait(limit)
        except subprocess.TimeoutExpired:
            print("make_capture: time limit reached before the packet count", file=sys.stderr)
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        asyncio.run(main())
    finally:
        stop(dump)
        report_drops(dump)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help=f"capture file (default {DEFAULT_OUT})")
    ap.add_argument("-c", "--count", type=int, default=1_000_000, help="packets to capture (default 1000000)")
    ap.add_argument("--snaplen", type=int, default=128, help="bytes kept per packet (headers only; default 128)")
    ap.add_argument("--keepalive-conns", type=int, default=4, help="wrk keep-alive connections (default 4)")
    ap.add_argument("--close-conns", type=int, default=8, help="wrk Connection: close connections (default 8)")
    ap.add_argument("--limit", type=float, default=300, help="give up after this many seconds (default 300)")
    ap.add_argument("--engine", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--force", action="store_true", help="overwrite an existing capture")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("make_capture: needs root (tcpdump on lo)", file=sys.stderr)
        return 2
    if shutil.which("tcpdump") is None:
        print("make_capture: tcpdump is not installed", file=sys.stderr)
        return 2
    if a.out.exists() and not a.force:
        print(f"make_capture: {a.out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    engine = a.engine
    if engine == "auto":
        engine = "nginx" if shutil.which("nginx") and shutil.which("wrk") else "python"
    t0 = time.monotonic()
    if engine == "nginx":
        run_nginx_wrk(a.out, a.count, a.snaplen, a.keepalive_conns, a.close_conns, a.limit)
    else:
        run_python(a.out, a.count, a.snaplen, a.keepalive_conns, a.close_conns, a.limit)
    size = a.out.stat().st_size if a.out.exists() else 0
    print(f"{a.out}: {size / 1e6:.1f} MB, made with {engine} in {time.monotonic() - t0:.1f} s")
    return 0 if size > 24 else 1


if __name__ == "__main__":
    sys.exit(main())
