"""Live capture on lo at rising packet rates: the highest rate at which nothing is lost.

For each rate, sender processes push small TCP segments (TCP_NODELAY, one write = one
segment) over 127.0.0.1 connections at a paced rate for a few seconds. The packets actually
sent are counted exactly by the kernel: the sum over both ends of every connection of
``tcpi_segs_out`` (TCP_INFO) before and after. The live source captures the same ports into
a Tracker (decode + state machine, what the UI's worker does) and we compare:

    seen    frames the source delivered     (lo's outgoing duplicates dropped in the kernel)
    drops   the kernel's PACKET_STATISTICS drop count
    lost    sent - seen
    us/pkt  CPU time of the capturing process per packet seen

On a small machine the senders (Python, one syscall per segment, and on lo the receiving
side's kernel work too) use most of the CPU; the "sent pkt/s" column says what rate was
really reached, and us/pkt says how much headroom the capture has beyond it.

Then tcpdump captures the same traffic at the same rate (``tcpdump -i lo -w /dev/null``,
default buffer) and its own counters are printed beside.

Run as root (capture needs CAP_NET_RAW):

    python benchmarks/live_bench.py                       # default rates
    python benchmarks/live_bench.py --rates 20000 50000 --seconds 3 --senders 2
    python benchmarks/live_bench.py --feed                # through the UI's Feed as well

Only 127.0.0.1 is used and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcpview.engine.pump import PumpThread
from tcpview.engine.timeline.tracker import Tracker
from tcpview.sources.live.capture import LiveSource

TCPI_SEGS_OUT = 136  # offset of tcpi_segs_out in struct tcp_info (Linux >= 4.2)


def segs_out(s: socket.socket) -> int:
    return struct.unpack_from("<I", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), TCPI_SEGS_OUT)[0]


def sender(listener: socket.socket, rate: float, seconds: float, ready, go, done_q, close) -> None:  # type: ignore[no-untyped-def]
    """One connection over 127.0.0.1; sends ``rate`` one-byte writes per second when told."""
    cli = socket.create_connection(listener.getsockname())
    srv, _ = listener.accept()
    for s in (cli, srv):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    srv.setblocking(False)
    ready.set()
    go.wait()
    base = segs_out(cli) + segs_out(srv)
    start = time.perf_counter()
    end = start + seconds
    sent = 0
    payload = b"x"
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * rate) - sent
        if due <= 0:
            time.sleep(0.0005)
            continue
        for _ in range(min(due, 200)):
            cli.send(payload)
        sent += min(due, 200)
        try:
            while srv.recv(65536):
                pass
        except BlockingIOError:
            pass
    time.sleep(0.3)  # the last ACKs
    try:
        while srv.recv(65536):
            pass
    except BlockingIOError:
        pass
    time.sleep(0.1)
    done_q.put((segs_out(cli) + segs_out(srv) - base, sent, time.perf_counter() - start - 0.4))
    close.wait(30)
    cli.close()
    srv.close()


def run_traffic(rate: float, seconds: float, nsend: int, on_ready) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    """Run the senders; ``on_ready(bpf)`` is called before they start and returns a stopper
    called after they finish. Returns (packets sent, writes, seconds)."""
    ctx = mp.get_context("fork")
    listeners = []
    for _ in range(nsend):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        listeners.append(ls)
    bpf = " or ".join(f"tcp port {ls.getsockname()[1]}" for ls in listeners)
    go, close = ctx.Event(), ctx.Event()
    q = ctx.Queue()
    readies = [ctx.Event() for _ in listeners]
    procs = [ctx.Process(target=sender, args=(ls, rate / nsend, seconds, r, go, q, close), daemon=True)
             for ls, r in zip(listeners, readies, strict=True)]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(10)
    stopper = on_ready(bpf)
    go.set()
    results = [q.get(timeout=seconds + 30) for _ in procs]
    out = stopper()
    close.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    for ls in listeners:
        ls.close()
    sent = sum(r[0] for r in results)
    writes = sum(r[1] for r in results)
    secs = max(r[2] for r in results)
    return sent, writes, secs, out


def bench_tcpview(rate: float, seconds: float, nsend: int, feed: bool) -> dict:
    state: dict = {}

    def start(bpf: str):  # type: ignore[no-untyped-def]
        src = LiveSource("lo", bpf)
        cpu0 = _cpu()
        tr = Tracker()
        if feed:
            from tcpview.engine.pump import Pump

            f = Pump(src, tr)
            stop = threading.Event()
            th = threading.Thread(target=f.run, args=(stop, lambda info: None), daemon=True)
            th.start()
        else:
            cap = PumpThread(src, tr).start()
        time.sleep(0.2)

        def finish():  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 10
            last = -1
            while time.monotonic() < deadline:  # until the backlog is read
                time.sleep(0.3)
                if tr.tl.packets == last:
                    break
                last = tr.tl.packets
            if feed:
                stop.set()
                th.join(10)
            else:
                cap.stop()
            cpu = _cpu() - cpu0
            st = src.status()
            src.close()
            return {"seen": tr.tl.packets, "drops": st["dropped"], "conns": len(tr.tl.conns), "cpu": cpu}

        return finish

    sent, writes, secs, out = run_traffic(rate, seconds, nsend, start)
    state.update(out)
    state.update(sent=sent, writes=writes, secs=secs)
    return state


def _cpu() -> float:
    """CPU seconds used by this process (the capture; the senders are other processes)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


_TCPDUMP_RE = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received": re.compile(r"(\d+) packets? received by filter"),
    "dropped": re.compile(r"(\d+) packets? dropped by kernel"),
}


def bench_tcpdump(rate: float, seconds: float, nsend: int) -> dict:
    def start(bpf: str):  # type: ignore[no-untyped-def]
        p = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-w", "/dev/null", bpf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        # wait for "listening on"
        buf = ""
        while "listening on" not in buf:
            ch = p.stderr.read(1)
            if not ch:
                break
            buf += ch
        time.sleep(0.2)

        def finish():  # type: ignore[no-untyped-def]
            time.sleep(1.5)  # tcpdump hands over packets at least once a second
            p.send_signal(signal.SIGINT)
            err = p.stderr.read()
            p.wait(10)
            return {k: int(m.group(1)) if (m := rx.search(err)) else -1 for k, rx in _TCPDUMP_RE.items()}

        return finish

    sent, writes, secs, out = run_traffic(rate, seconds, nsend, start)
    out.update(sent=sent, writes=writes, secs=secs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[10000, 25000, 50000, 75000, 100000, 150000],
                    help="target write rates (one write = one data segment; ACKs come on top)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--senders", type=int, default=1, help="sender processes (one connection each)")
    ap.add_argument("--feed", action="store_true", help="feed through the UI's Feed (frame store, segment times)")
    ap.add_argument("--no-tcpdump", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (live capture needs CAP_NET_RAW)", file=sys.stderr)
        return 2
    print(f"live capture on lo, {args.seconds:g} s per rate, {args.senders} sender process(es), "
          f"{os.cpu_count()} CPUs, pipeline: {'UI Feed' if args.feed else 'PumpThread -> Tracker'}")
    hdr = (f"{'target w/s':>10} {'sent pkt/s':>10} {'sent':>8} {'seen':>8} {'lost':>6} {'drops':>6} "
           f"{'us/pkt':>6}   "
           f"{'tcpdump: sent':>13} {'captured':>8} {'dropped':>7}")
    print(hdr)
    best = None
    costs: list[float] = []
    for rate in args.rates:
        r = bench_tcpview(rate, args.seconds, args.senders, args.feed)
        lost = r["sent"] - r["seen"]
        pps = r["sent"] / r["secs"] if r["secs"] > 0 else 0.0
        us = r["cpu"] / r["seen"] * 1e6 if r["seen"] else 0.0
        costs.append(us)
        line = f"{rate:>10.0f} {pps:>10.0f} {r['sent']:>8} {r['seen']:>8} {lost:>6} {r['drops']:>6} {us:>6.2f}"
        if not args.no_tcpdump:
            d = bench_tcpdump(rate, args.seconds, args.senders)
            line += f"   {d['sent']:>13} {d['captured']:>8} {d['dropped']:>7}"
        print(line, flush=True)
        if lost == 0 and r["drops"] == 0:
            best = max(best or 0.0, pps)
    if best is None:
        print("no rate without loss")
    else:
        print(f"highest rate with nothing lost: {best:.0f} packets/s")
    if costs:
        us = min(costs[-3:])
        print(f"capture cost {us:.2f} us of CPU per packet (capture, decode, tracker): about "
              f"{1e6 / us:.0f} packets/s on one core once the senders leave it one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
