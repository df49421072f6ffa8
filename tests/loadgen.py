"""A load of new TCP connections on lo: many per second, each accepted and closed by the
server first (so the server's side ends in TIME_WAIT), then closed by the client.

Used by the kernel-only tests and the kernel events benchmark: ``run(port, seconds)`` in a
process of its own (``python tests/loadgen.py PORT SECONDS``) prints how many connections it
made. It listens on ``PORT`` itself.
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def run(port: int, seconds: float, rate: float = 5000.0) -> int:
    """Connect to a listener of its own on ``port``, ``rate`` connections a second (or as
    many as it can) for ``seconds``; returns how many connections were made."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    stop = threading.Event()

    def serve() -> None:
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                s, _ = ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            s.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    n = 0
    start = time.monotonic()
    end = start + seconds
    while (now := time.monotonic()) < end:
        if n > (now - start) * rate:
            time.sleep(0.001)
            continue
        c = socket.socket()
        c.connect(("127.0.0.1", port))
        c.recv(1)  # the server's FIN: the server closed first
        c.close()
        n += 1
    stop.set()
    t.join()
    ls.close()
    return n


if __name__ == "__main__":
    print(run(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 5000.0), flush=True)
