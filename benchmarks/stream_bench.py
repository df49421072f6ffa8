"""A capture stream on stdin under connection churn: does tcpview keep up with its producer?

``tcpdump -U -w - 'tcp port P'`` on lo writes one record per packet into a pipe while worker
processes open and close connections as fast as they can (``churn_bench.Churn``). A consumer
that reads the pipe too slowly makes tcpdump block, its kernel buffer fill and packets drop
("N packets dropped by kernel", which tcpdump prints when it stops). In one run, the same
churn each time on a fresh port, four consumers:

1. ``cat > /dev/null``: what the machine can do at all;
2. ``tcpview summary - --json``: its TIME_WAIT count beside ``ss``'s, taken after the churn
   stopped (TIME_WAIT lasts 60 s: none expires in between);
3. ``tcpview replay -``, the viewer, in a real terminal (tmux): its counters bar's TIME_WAIT
   beside ``ss``'s, read from the screen once the stream ended;
4. ``load``: ``cat`` again, beside a process that does nothing but burn as much CPU as the last
   tcpview consumer took (``--load SHARE``: that share of a CPU), in 5 ms turns, at nice 10, in
   a session of its own: what tcpview's CPU alone, without its reading, costs tcpdump.

Each tcpview consumer's CPU seconds (its processes', through GNU time) are on its row.

Each row also says how many of the drops came in the churn's first two seconds (tcpdump is
asked with SIGUSR1), while the consumer starts: tcpview loads its engine, the viewer draws.

Each pipeline runs in a tmux window, as a user types it at a terminal: tcpdump and its
consumer in a session of their own, apart from the churn's processes (a busy host's services).
Where the kernel shares the CPUs between sessions first (Linux's autogroup; a session's cgroup
under systemd does the same), the consumer's CPU counts against tcpdump's share, and tcpdump
waits for a CPU behind the churn sooner. Measured here: ``summary -`` in the bench's own session,
beside the churn, lost no packet in 11 runs of 11; at a terminal, it lost some in 7 runs of 8,
up to 3% (before its start took its CPU in short turns, as the viewer's does).

Run as root (tcpdump needs CAP_NET_RAW), with tmux installed::

    python benchmarks/stream_bench.py                 # 15 s each, 2 workers
    python benchmarks/stream_bench.py --seconds 20 --workers 3
    python benchmarks/stream_bench.py --only replay --seconds 10 --rounds 8   # a median
    python benchmarks/stream_bench.py --only replay --buffer 32768   # tcpdump -B 32768

tcpview's modules are compiled to bytecode first, as ``pip install`` does: without it (and
with ``PYTHONDONTWRITEBYTECODE`` set), every start would compile them again, a third of a
second of CPU that an installed tcpview never spends. Its compiled kernels are made first too
(``python -m tcpview.engine.warm``): a cache left cold by an edit of the engine would otherwise
be compiled during the first run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.churn_bench import Churn, free_port, time_wait
from benchmarks.measure import GNU_TIME, REPO, child_env, load1

_STATS = re.compile(r"(\d+) packets? (captured|dropped by kernel)")
_STATS_LINE = re.compile(r"packets? received by filter, (\d+) packets? dropped by kernel")
"""The one line of counts tcpdump writes on SIGUSR1 (and not at its end)."""


def _tcpdump_stats(path: str) -> dict[str, int]:
    text = Path(path).read_text(errors="replace")
    return {k: int(n) for n, k in _STATS.findall(text)}


def _signal_tcpdump(port: int, sig: str) -> None:
    """Send ``sig`` (``INT``, ``USR1``) to this run's tcpdump (its filter names the port)."""
    subprocess.run(["pkill", f"-{sig}", "-f", f"tcpdump .*tcp port {port}$"], check=False)


def _stop_tcpdump(port: int) -> None:
    """SIGINT to this run's tcpdump: it prints its counts and ends, and the consumer sees the
    end of the stream."""
    _signal_tcpdump(port, "INT")


EARLY = 2.0
"""Seconds of churn after which tcpdump is asked for its drops so far (SIGUSR1): those of the
consumer's start (tcpview loads its engine, and the viewer draws its first screen, meanwhile)."""


def _churn(port: int, seconds: float, workers: int, err: str) -> tuple[int, float, int]:
    """Churn for ``seconds``: the connections made, their rate, and tcpdump's drops in the
    first :data:`EARLY` seconds."""
    churn = Churn(port, workers)
    t0 = churn.start()
    time.sleep(min(EARLY, seconds))
    _signal_tcpdump(port, "USR1")
    time.sleep(max(0.0, seconds - EARLY))
    conns = churn.finish()
    early = _STATS_LINE.findall(Path(err).read_text(errors="replace"))
    return conns, conns / (time.monotonic() - t0), int(early[0]) if early else 0


def _producer(port: int, err: str, buffer: int | None) -> str:
    """tcpdump writing ``port``'s packets to stdout; ``buffer``: its kernel buffer (``-B``, KiB;
    None: its own default, 2 MiB on Linux)."""
    size = "" if buffer is None else f"-B {buffer} "
    return f"tcpdump -i lo -n {size}-U -w - 'tcp port {port}' 2>{shlex.quote(err)}"


def _wait_listening(err: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(err) and "listening on" in Path(err).read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit("stream_bench: tcpdump did not start: " + Path(err).read_text(errors="replace")[-300:])


def _in_terminal(consumer: str, port: int, err: str, buffer: int | None) -> str:
    """Start tcpdump into ``consumer`` (a shell command reading stdin) in a 120x40 tmux window,
    as a user types it at a terminal: the pipeline in a session of its own, apart from the
    churn's (see the module's docstring). The tmux session's name."""
    session = f"tcpview-stream-{port}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in child_env().items()
                   if k in ("PYTHONPATH", "NUMBA_CACHE_DIR") or k.startswith("TCPVIEW_"))
    cmd = f"cd {shlex.quote(str(REPO))} && {_producer(port, err, buffer)} | env {env} {consumer}"
    subprocess.run(["tmux", "new", "-d", "-s", session, "-x", "120", "-y", "40", "bash", "-c", cmd], check=True)
    return session


def _screen(session: str) -> str | None:
    """What the tmux window shows (None: it has closed, its command ended)."""
    got = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False)
    return got.stdout if got.returncode == 0 else None


def _wait_closed(session: str, seconds: float) -> None:
    """Wait, up to ``seconds``, for the tmux window's command to end."""
    deadline = time.monotonic() + seconds
    while _screen(session) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def _under_churn(port: int, seconds: float, workers: int, err: str) -> dict:
    """Churn on ``port`` once its tcpdump listens; then tcpdump stopped (the consumer sees the
    end of its stream). The figures of the run, and ``ss``'s TIME_WAIT count."""
    _wait_listening(err)
    conns, rate, early = _churn(port, seconds, workers, err)
    time.sleep(1.0)  # the last closes reach TIME_WAIT
    ss_tw = time_wait(port)
    _stop_tcpdump(port)
    return {"connections": conns, "rate": rate, "ss_tw": ss_tw, "early": early}


def _timed(consumer: str, cpu_file: str) -> str:
    """``consumer`` (a command) run under GNU time, which writes the CPU seconds it and every
    process it waited for took into ``cpu_file`` (as it is where GNU time is not installed)."""
    if GNU_TIME is None:
        return consumer
    return f"{GNU_TIME} -f '%U %S' -o {shlex.quote(cpu_file)} {consumer}"


def _cpu(cpu_file: str) -> float | None:
    """The CPU seconds :func:`_timed` wrote (None: none written)."""
    try:
        user, system = Path(cpu_file).read_text().split()[-2:]
        return float(user) + float(system)
    except (OSError, ValueError):
        return None


def run_pipe(consumer: str, seconds: float, workers: int, tmp: str, buffer: int | None) -> dict:
    """tcpdump into ``consumer`` (a shell command reading stdin, writing to stdout) under churn."""
    port = free_port()
    err, out = os.path.join(tmp, f"tcpdump-{port}.err"), os.path.join(tmp, f"out-{port}")
    cpu_file = os.path.join(tmp, f"cpu-{port}")
    sink = shlex.quote(out) if "tcpview" in consumer else "/dev/null"
    session = _in_terminal(f"{_timed(consumer, cpu_file)} > {sink}", port, err, buffer)
    try:
        row = _under_churn(port, seconds, workers, err)
        _wait_closed(session, 600)  # it reads what is left
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    row.update(load=load1(), cpu=_cpu(cpu_file), **_tcpdump_stats(err))
    if "tcpview" in consumer:
        summary = json.loads(Path(out).read_text())
        row["tw"] = summary["counters"].get("TIME_WAIT", 0)
        row["seen"] = summary["packets"]
    return row


def run_viewer(seconds: float, workers: int, tmp: str, buffer: int | None) -> dict:
    """tcpdump into ``tcpview replay -`` in a 120x40 tmux window; the TIME_WAIT count read from
    its counters bar once the stream ended."""
    port = free_port()
    err, cpu_file = os.path.join(tmp, f"tcpdump-{port}.err"), os.path.join(tmp, f"cpu-{port}")
    session = _in_terminal(_timed(f"{shlex.quote(sys.executable)} -m tcpview replay -", cpu_file), port, err, buffer)
    try:
        row = _under_churn(port, seconds, workers, err)
        tw = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the viewer reads what is left in the pipe
            time.sleep(1.0)
            screen = _screen(session) or ""
            m = re.search(r"TIME_WAIT\s+(\d+)", screen)
            if m and tw == int(m.group(1)) and "ENDED" in screen:  # the stream ended, all of it read
                break
            tw = int(m.group(1)) if m else None
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False, capture_output=True)
        _wait_closed(session, 10)  # it quits: GNU time writes its figures
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    return {**row, "tw": tw, "load": load1(), "cpu": _cpu(cpu_file), **_tcpdump_stats(err)}


def load_consumer(share: float) -> str:
    """``cat``, beside a process that takes ``share`` of a CPU doing nothing else (see
    :func:`burn`), in a session of its own at nice 10, as tcpview's command runs: what
    tcpview's CPU alone, without its reading, costs tcpdump."""
    burner = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} --burn {share:.3f} --while $$"
    return f"bash -c {shlex.quote(f'setsid nice -n 10 {burner} & cat')}"


def burn(share: float, pid: int) -> int:
    """Take ``share`` of a CPU, in turns of 5 ms of CPU each followed by a rest, as long as
    the process ``pid`` lives."""
    turn = 0.005
    rest = turn * (1 - share) / share if share > 0 else 1.0
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        t0 = time.thread_time()
        while time.thread_time() - t0 < turn:
            pass
        time.sleep(rest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="churn per consumer")
    ap.add_argument("--workers", type=int, default=2, help="client processes (and half as many servers)")
    ap.add_argument("--only", choices=("cat", "summary", "replay", "load"), action="append",
                    help="run only these consumers (repeatable)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the consumers this many times, taking turns, and end with each one's median "
                         "(a busy machine's drops vary from one minute to the next)")
    ap.add_argument("--buffer", type=int, metavar="KIB",
                    help="tcpdump's kernel buffer in KiB (-B); by default tcpdump's own (2 MiB)")
    ap.add_argument("--load", type=float, metavar="SHARE",
                    help="the share of a CPU the load consumer's process takes (by default the CPU per second "
                         "of churn of the last tcpview consumer in this run, or 0.35 before any)")
    ap.add_argument("--burn", type=float, help=argparse.SUPPRESS)  # (the load consumer's process)
    ap.add_argument("--while", dest="while_pid", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.burn is not None:
        return burn(a.burn, a.while_pid or os.getppid())
    for tool in ("tcpdump", "tmux", "ss"):
        if shutil.which(tool) is None:
            print(f"stream_bench: {tool} is not installed", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("stream_bench: run as root (tcpdump needs CAP_NET_RAW)", file=sys.stderr)
        return 2
    only = a.only or ["cat", "summary", "replay", "load"]
    compileall.compile_dir(str(REPO / "tcpview"), quiet=1)
    # the compiled kernels too, as a second run finds them: a cold cache (after any edit of the
    # engine) would compile them for about 45 CPU-seconds in the middle of the first run
    subprocess.run([sys.executable, "-m", "tcpview.engine.warm"], env=child_env(), cwd=REPO, check=True)
    buffer = "tcpdump's default buffer" if a.buffer is None else f"tcpdump -B {a.buffer}"
    print(f"{os.cpu_count()} CPUs; load {load1():.2f}; {a.seconds:g} s of churn each, {a.workers} workers; {buffer}")
    print(f"{'consumer of tcpdump -U -w -':<30} {'conns/s':>8} {'captured':>10} {'dropped':>9} {'drop%':>6} "
          f"{f'in {EARLY:g} s':>7} {'TIME_WAIT':>9} {'ss':>7} {'load':>5} {'CPU s':>6}")
    drops: dict[str, list[float]] = {name: [] for name in only}
    share = a.load if a.load is not None else 0.35
    with tempfile.TemporaryDirectory(prefix="tcpview-stream-") as tmp:
        for name in [n for _ in range(max(1, a.rounds)) for n in only]:
            if name == "cat":
                row = run_pipe("cat", a.seconds, a.workers, tmp, a.buffer)
            elif name == "summary":
                row = run_pipe(f"{shlex.quote(sys.executable)} -m tcpview summary - --json", a.seconds, a.workers, tmp,
                               a.buffer)
            elif name == "replay":
                row = run_viewer(a.seconds, a.workers, tmp, a.buffer)
            else:
                row = run_pipe(load_consumer(share), a.seconds, a.workers, tmp, a.buffer)
                row["cpu"] = share * a.seconds  # (what its process was asked to take; cat's own is next to nothing)
            if name in ("summary", "replay") and row.get("cpu") is not None and a.load is None:
                share = min(1.0, row["cpu"] / a.seconds)  # the load consumer takes as much as the last tcpview
            cap, drop = row.get("captured", 0), row.get("dropped by kernel", 0)
            pct = 100 * drop / (cap + drop) if cap + drop else 0.0
            tw = row.get("tw")
            cpu = row.get("cpu")
            label = f"cat + {share:.0%} of a CPU" if name == "load" else name
            print(f"{label:<30} {row['rate']:8.0f} {cap:10d} {drop:9d} {pct:6.2f} {row['early']:7d} "
                  f"{'-' if tw is None else tw:>9} {row['ss_tw']:7d} {row['load']:5.2f} "
                  f"{'-' if cpu is None else f'{cpu:.2f}':>6}", flush=True)
            drops[name].append(pct)
    if a.rounds > 1:
        for name, pcts in drops.items():
            print(f"{name}: median drop {statistics.median(pcts):.2f}%, none dropped in "
                  f"{sum(p == 0 for p in pcts)} of {len(pcts)} runs, at most {max(pcts):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
