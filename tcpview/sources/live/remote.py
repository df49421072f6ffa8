"""One remote host's capture over ssh: its tcpdump's pcap stream, read as ``replay -`` reads one.

``ssh -o BatchMode=yes [options] [user@]host sh -c SCRIPT ...`` runs a small POSIX shell
script on the host (:data:`SCRIPT`) that starts ``tcpdump -U -w - --immediate-mode`` with the
interface, snap length, kernel buffer (:data:`BUFFER_MB`) and BPF filter given, and every second sends it ``SIGUSR1``, on which
tcpdump writes its counts to its standard error ("N packets dropped by kernel"): ssh carries
that back, and :class:`RemoteHost` reads it on a thread of its own for the host's drops. The
pcap stream on ssh's standard output is read with :class:`~tcpview.sources.pcap.CaptureReader`
(its :class:`~tcpview.sources.drain.Drain` empties the pipe on a thread of its own).

- Every word sent to the host is quoted (:func:`shlex.quote`): the filter, the interface and the
  tcpdump command go to the script as its arguments, never into its text, so a filter cannot
  become a shell command there. The host's login shell must be a POSIX one (sh, bash, zsh...).
- The script leaves out of the capture the ssh connection that carries it (``$SSH_CONNECTION``:
  its two addresses and ports); capturing it would capture its own packets, again and again.
- Capturing needs privileges on the host: log in as root, as a user who may capture (Debian:
  the ``wireshark`` group does not cover tcpdump; ``setcap cap_net_raw,cap_net_admin=eip`` on
  tcpdump, or its own group, does), or have ``sudo -n tcpdump`` run it (``tcpdump`` option).
- The source is open once the stream's pcap header came (tcpdump writes it once it captures);
  an unreachable host, a refused login, a missing tcpdump or a refused capture is told before
  a viewer starts, in one line naming the host.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import os_problem
from .childstream import read_header, stderr_lines
from .ring import LiveError

if TYPE_CHECKING:
    from ..batch import FrameBatch

START_SECONDS = 20.0
"""How long a host may take to log in and start capturing (ssh's own ConnectTimeout is 10 s)."""
STOP_SECONDS = 3.0
"""How long ssh may take to end once asked to, and to say its last words after its stream ended."""

BUFFER_MB = 32
"""The host's tcpdump's kernel buffer (``-B``), as tcpview's own capture's: tcpdump's default,
2 MiB, holds tens of milliseconds of a busy host's packets, and a host whose CPUs are all busy
can keep tcpdump waiting longer than that (measured on loopback churn: with ``-B 32768`` no
drops where the default lost some)."""

SSH_DEFAULTS = ("BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5", "ServerAliveCountMax=3",
                "LogLevel=ERROR")
"""ssh options always given, after the user's (ssh takes the first value it is given for each):
never a prompt (there is no terminal to answer it), and a host that vanishes from the network is
noticed within about 15 s."""

SCRIPT = r"""i=$1 f=$2 s=$3 b=$4; shift 4
own() { echo "tcp and host ${1%%\%*} and port $2 and host ${3%%\%*} and port $4"; }
if [ -n "${SSH_CONNECTION:-}" ]; then
  o=$(own $SSH_CONNECTION)
  if [ -n "$f" ]; then f="($f) and not ($o)"; else f="not ($o)"; fi
fi
if [ -n "$i" ]; then set -- "$@" -i "$i"; fi
"$@" -U -w - -s "$s" -B "$b" --immediate-mode -- "$f" &
p=$!
( while sleep 1; do kill -USR1 "$p" 2>/dev/null || exit 0; done ) &
t=$!
wait "$p"; r=$?
kill "$t" 2>/dev/null
exit "$r"
"""
"""What runs on the host: ``sh -c SCRIPT tcpview IFACE FILTER SNAPLEN BUFFER_KIB TCPDUMP...``. It adds to
the filter the exclusion of its own ssh connection, starts tcpdump in the background, asks it
for its counts every second (a ``kill`` that is refused, e.g. a tcpdump run by sudo as root,
ends the asking: the drops are then unknown) and ends with tcpdump's exit status."""

_DROPS = re.compile(r"(\d+) packets? dropped by kernel")
_NOISE = re.compile(r"^(tcpdump: )?(listening on |\d+ packets? (captured|received|dropped))|^\d+ packets? ")


@dataclass(frozen=True)
class RemoteSpec:
    """Where to capture: ``[user@]host[:iface]`` or ``ssh://[user@]host[:port][/iface]``
    (an IPv6 address in brackets: ``[fe80::1]:eth0``).

    Attributes:
        text: the spec as given, the host's name in what is shown.
        user: the login name (None: ssh's choice, ``~/.ssh/config`` or the local user).
        host: the host name or address, as ssh takes it (an alias of ``~/.ssh/config`` too).
        port: the ssh port (None: ssh's choice).
        iface: the interface to capture on (None: the default one given, else tcpdump's).
    """

    text: str
    user: str | None
    host: str
    port: int | None
    iface: str | None

    def target(self) -> str:
        """The ``[user@]host`` ssh is given."""
        return f"{self.user}@{self.host}" if self.user else self.host


def short_name(spec: str) -> str:
    """A host's spec without ``ssh://`` and the login name, for narrow places (a column, the
    status line): ``root@web1:eth0`` -> ``web1:eth0``."""
    rest = spec[len("ssh://"):] if spec.startswith("ssh://") else spec
    return rest.rpartition("@")[2] or spec


def parse_remote(text: str) -> RemoteSpec:
    """The :class:`RemoteSpec` a ``--remote`` value names.

    Raises:
        LiveError: an empty host, a bad port, or a name ssh would take for an option.
    """
    spec, port, uri = text.strip(), None, False
    if spec.startswith("ssh://"):
        uri = True
        spec, _slash, iface = spec[len("ssh://"):].partition("/")
    user, at, rest = spec.rpartition("@")
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise LiveError(f"--remote {text}: an address in brackets is [ADDRESS] or [ADDRESS]:IFACE")
        after = tail[1:]
    else:
        host, _colon, after = rest.partition(":")
    if uri:
        if after:
            if not after.isdigit() or not 0 < int(after) < 65536:
                raise LiveError(f"--remote {text}: not a port: {after!r}")
            port = int(after)
    else:
        iface = after
    if not host or (at and not user) or host.startswith("-") or user.startswith("-"):
        raise LiveError(f"--remote {text}: not [USER@]HOST[:IFACE] or ssh://[USER@]HOST[:PORT][/IFACE]")
    return RemoteSpec(text.strip(), user or None, host, port, iface or None)


def remote_command(iface: str | None, bpf: str | None, snaplen: int, tcpdump: Sequence[str],
                   buffer_mb: int = BUFFER_MB) -> str:
    """The command line the host's shell runs (every word quoted: see the module's docstring)."""
    words = ["sh", "-c", SCRIPT, "tcpview", iface or "", bpf or "", str(snaplen), str(buffer_mb * 1024), *tcpdump]
    return " ".join(shlex.quote(w) for w in words)


def ssh_argv(spec: RemoteSpec, command: str, options: Sequence[str] = (), ssh: str = "ssh") -> list[str]:
    """The ssh command line: the host's own port first, then the user's ``-o`` options (ssh
    keeps the first value of each), then :data:`SSH_DEFAULTS`; no terminal, no standard input,
    no forwarding."""
    argv = [ssh, "-T", "-n", "-x", "-a"]
    if spec.port is not None:
        argv += ["-p", str(spec.port)]
    for opt in [*options, *SSH_DEFAULTS]:
        argv += ["-o", opt]
    return [*argv, "--", spec.target(), command]


class RemoteHost:
    """One host's capture: ssh started in the constructor; :meth:`wait_started` waits for the
    stream's header, :meth:`read` reads the stream on the caller's thread, handing each batch
    to ``take``; :attr:`state`, :attr:`drops` and :attr:`problem` may be read from any thread.

    Args:
        spec: where to capture.
        iface: the interface when ``spec`` names none (None: tcpdump's default).
        bpf: the capture filter (tcpdump syntax), the same on every host.
        snaplen: bytes kept per packet.
        options: ssh ``-o`` options (``Port=2222``, ``IdentityFile=~/.ssh/k``...).
        tcpdump: the command that runs tcpdump on the host (``["sudo", "-n", "tcpdump"]``).
        ssh: the ssh client to run.
        buffer_mb: tcpdump's kernel buffer on the host (``-B``), MiB.

    Raises:
        LiveError: ssh cannot be run here.
    """

    def __init__(self, spec: RemoteSpec, iface: str | None, bpf: str | None, snaplen: int,
                 options: Sequence[str] = (), tcpdump: Sequence[str] = ("tcpdump",), ssh: str = "ssh",
                 buffer_mb: int = BUFFER_MB) -> None:
        self.spec = spec
        self.label = spec.text
        self.iface = spec.iface or iface
        self.tcpdump = list(tcpdump)
        self.state = "starting"
        """``starting``, ``capturing``, then ``ended`` (see :attr:`problem`) or ``closed``."""
        self.problem: str | None = None
        """Why the capture ended, one line naming the host (None while it runs, or closed)."""
        self.drops: int | None = None
        """Packets the host's kernel dropped, as its tcpdump last said (None: not said yet)."""
        self.captured = 0
        self.linktype = 0
        self.said: list[str] = []
        self._closing = threading.Event()
        self._early: list[FrameBatch] = []
        argv = ssh_argv(spec, remote_command(self.iface, bpf, snaplen, self.tcpdump, buffer_mb), options, ssh)
        try:
            # its own session: a Ctrl-C meant for tcpview must not end it before it is asked to
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True,
                                          env=dict(os.environ, LC_ALL="C"))
        except OSError as e:
            raise LiveError(os_problem(f"{self.label}: cannot run {ssh}", e)) from None
        self._listener = threading.Thread(target=self._listen, name="tcpview-ssh-stderr", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        """Read ssh's standard error (the host's tcpdump's and the script's too)."""
        assert self._proc.stderr is not None
        for line in stderr_lines(self._proc.stderr):
            m = _DROPS.search(line)
            if m:
                self.drops = int(m.group(1))
            elif len(self.said) < 100:
                self.said.append(line)

    def wait_started(self, deadline: float) -> None:
        """Wait (until ``time.monotonic()`` passes ``deadline``) for the stream's header.

        Raises:
            LiveError: the host could not be reached or logged in to, or its tcpdump did not
                start capturing (one line naming the host).
        """
        from ..pcap import CaptureReader

        assert self._proc.stdout is not None
        self._reader = CaptureReader("-", fd=self._proc.stdout.fileno(),
                                     stop=lambda: time.monotonic() > deadline or self._closing.is_set())
        self._reader.source = self.label  # its errors name the host
        self._gen, self._early = read_header(self._reader)
        if not self._reader.linktypes:
            timed_out = time.monotonic() > deadline
            self.close()
            raise LiveError(self._failure(f"did not start capturing in {START_SECONDS:g} s" if timed_out else ""))
        self.linktype = self._reader.linktypes[0]
        self.state = "capturing"

    def _failure(self, default: str = "") -> str:
        """Why the capture did not start or ended, one line naming the host."""
        code = self._proc.poll()
        self._listener.join(1.0)  # its last words
        said = [line for line in self.said if not _NOISE.search(line)]
        why = said[-1] if said else ""
        if code == 127 or why.endswith(("not found", "No such file or directory")) and self.tcpdump[-1] in why:
            why = (f"{self.tcpdump[-1]} was not found there (install tcpdump, or name it with "
                   "--remote-tcpdump)")
        elif "permission" in why.lower() and "tcpdump" in why.lower():
            why += ("; capture there as root (root@HOST), as a user allowed to capture, or with "
                    "--remote-tcpdump 'sudo -n tcpdump'")
        if not why:
            why = default or (f"ssh ended (status {code})" if code is not None else "the stream ended")
        return f"{self.label}: {why}"

    def read(self, stop: Callable[[], bool], take: Callable[[FrameBatch | None], None]) -> None:
        """Read the stream until ``stop()``, :meth:`close` or its end, handing each batch (None
        while idle) to ``take``; at an end nobody asked for, :attr:`problem` says why."""
        from ..pcap import CaptureError

        self._reader.stop = lambda: stop() or self._closing.is_set()
        early, self._early = self._early, []
        try:
            for batch in itertools.chain(early, self._gen):
                if batch is not None:
                    self.captured += len(batch)
                take(batch)
                if stop() or self._closing.is_set():
                    return
            if not (stop() or self._closing.is_set()):
                try:
                    self._proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                self.problem = self._failure()
        except CaptureError as e:
            if not (stop() or self._closing.is_set()):
                self.problem = f"{self.label}: its stream: {e}"
        finally:
            self.state = "ended" if self.problem else "closed"
            self._reader.close()

    def terminate(self) -> None:
        """Ask ssh to end, without waiting (the host's tcpdump ends at its next write, within
        a second: its counts are asked for every second)."""
        self._closing.set()
        if self._proc.poll() is None:
            try:
                self._proc.terminate()
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """End ssh and close its pipes (idempotent); whoever reads the stream has stopped."""
        self.terminate()
        proc = self._proc
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
        self._listener.join(1.0)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if self.state in ("starting", "capturing"):
            self.state = "closed"


def open_hosts(specs: Sequence[RemoteSpec], iface: str | None, bpf: str | None, snaplen: int,
               options: Sequence[str] = (), tcpdump: Sequence[str] = ("tcpdump",),
               buffer_mb: int = BUFFER_MB) -> list[RemoteHost]:
    """Start ssh to every host at once and wait until each captures.

    Raises:
        LiveError: a host did not start capturing (every one that did not, in one line); the
            others are closed.
    """
    hosts: list[RemoteHost] = []
    try:
        for spec in specs:
            hosts.append(RemoteHost(spec, iface, bpf, snaplen, options, tcpdump, buffer_mb=buffer_mb))
        deadline = time.monotonic() + START_SECONDS
        failed: list[str] = []
        for h in hosts:
            try:
                h.wait_started(deadline)
            except LiveError as e:
                failed.append(str(e))
        if failed:
            raise LiveError("; ".join(failed))
    except BaseException:
        for h in hosts:
            h.close()
        raise
    return hosts
