"""Live capture through Wireshark's dumpcap, for a user without capture privileges of their own.

Wireshark's answer to "who may capture": one small program, dumpcap, holds the capabilities,
and only the members of one group may run it (Debian's ``dpkg-reconfigure wireshark-common``
makes dumpcap ``root:wireshark``, mode 0750, with ``cap_net_raw,cap_net_admin``). tcpview does
the same rather than give the capabilities to the Python interpreter, which would hand them
to every Python program on the host: when its own packet socket is refused, it runs
``dumpcap -w -`` and reads the pcapng stream dumpcap writes to its standard output with the
reader ``tcpview replay -`` uses (:class:`~tcpview.sources.pcap.CaptureReader`).

- The interface, the BPF filter, the snap length and the buffer size go to dumpcap, whose
  libpcap applies the filter in the kernel and hands over each loopback packet once, as the
  packet ring does.
- The source is open once dumpcap has written the stream's header: its interface block says
  the link type (which ``-w`` needs), and an error (no permission, no such device) is told
  before a viewer starts.
- dumpcap tells its drops when it stops, on standard error ("Packets received/dropped on
  interface ..."); until then :meth:`DumpcapSource.status` has no ``dropped``.
- ``-w`` saves what is read, as the packet ring does (:mod:`~tcpview.sources.live.sink`).
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import re
import select
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...errors import os_problem
from ..linktypes import LINKTYPE_ETHERNET
from .childstream import read_header, stderr_lines
from .ifaces import check_interface
from .ring import (
    DEFAULT_BUFFER_MB,
    WIRESHARK_GROUP,
    CapturePrivilegeError,
    LiveError,
    join_group,
    no_capture_privileges,
)
from .settings import CaptureSettings
from .sink import PcapSink, RingSink

if TYPE_CHECKING:
    from ..batch import FrameBatch

PLACES = ("/usr/bin/dumpcap", "/usr/sbin/dumpcap", "/usr/local/bin/dumpcap")
"""Where distributions install dumpcap, looked at after ``PATH``."""
READ_TIMEOUT_MS = 250
"""How long libpcap may hold captured packets before dumpcap reads them (its read timeout)."""
START_SECONDS = 10.0
"""How long dumpcap may take to open the interface and write the stream's header."""
STOP_SECONDS = 5.0
"""How long dumpcap may take to stop and print its statistics once asked to."""

_DROPS = re.compile(r"Packets received/dropped on interface '(.*)': (\d+)/(\d+)")


def find_dumpcap() -> str | None:
    """dumpcap's path: on ``PATH``, else where distributions put it; None when there is none.

    A file that this user may not run counts (``shutil.which`` would skip it): it says that
    dumpcap is installed and who may run it.
    """
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for path in [os.path.join(d, "dumpcap") for d in dirs] + list(PLACES):
        if os.path.isfile(path):
            return path
    return None


def _group_of(path: str) -> str:
    """The group that may run dumpcap at ``path`` (Debian: wireshark)."""
    try:
        st = os.stat(path)
        if st.st_gid and st.st_mode & stat.S_IXGRP:
            return grp.getgrgid(st.st_gid).gr_name
    except (OSError, KeyError):
        pass
    return WIRESHARK_GROUP


def refusal(path: str | None) -> str:
    """The one line for a user who may run neither a capture of their own nor dumpcap at
    ``path`` (None: dumpcap is not installed)."""
    if path is None:
        return no_capture_privileges(
            why="Wireshark's dumpcap, which captures for the members of its group, is not installed",
            grant=f"install it and join its group: sudo apt install wireshark-common, then {join_group()}")
    group = _group_of(path)
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        gid = grp.getgrnam(group).gr_gid
        listed = user in grp.getgrnam(group).gr_mem
    except KeyError:
        listed, gid = False, None
    if listed and gid not in os.getgroups() and gid != os.getgid():
        return no_capture_privileges(why=f"you are in the {group} group, but this session is not yet",
                                     grant=f"log in again (or start a shell with: newgrp {group})")
    return no_capture_privileges(grant=f"join the {group} group, whose dumpcap captures for tcpview: "
                                 f"{join_group(group)}")


class DumpcapSource(CaptureSettings):
    """Capture on an interface by running dumpcap; a :class:`~tcpview.sources.base.Source`
    with the members of :class:`~tcpview.sources.live.capture.LiveSource` the viewer uses.

    dumpcap is started in the constructor, which returns once it captures (so every error
    surfaces before a UI starts). :meth:`batches` runs on one worker thread; :meth:`status`
    may be called from any thread.

    Args:
        interface: interface name, ``any``, or None for the one holding the default route.
        bpf: tcpdump filter expression, applied in the kernel by dumpcap's libpcap.
        write: also save every captured frame to this pcap file.
        force: allow ``write`` to overwrite an existing file.
        snaplen: bytes kept per frame (default: headers only, whole frames with ``write``).
        buffer_mb: dumpcap's kernel buffer in MiB (its ``-B``).
        ring_size, ring_files: save to a ring of files (:class:`~tcpview.sources.live.sink.RingSink`).
        dumpcap: the program to run (default: :func:`find_dumpcap`).

    Raises:
        CapturePrivilegeError: this user may not run dumpcap, or dumpcap may not capture.
        LiveError: no such interface, a bad filter, dumpcap failed (its own words).
    """

    live = True
    method = "dumpcap"
    """How this source captures, for the status line and the summary."""

    def __init__(
        self,
        interface: str | None = None,
        bpf: str | None = None,
        write: str | None = None,
        force: bool = False,
        snaplen: int | None = None,
        buffer_mb: int = DEFAULT_BUFFER_MB,
        ring_size: int | None = None,
        ring_files: int | None = None,
        dumpcap: str | None = None,
    ) -> None:
        self.settle(interface, bpf, write, snaplen, buffer_mb)
        if self.interface != "any":
            check_interface(self.interface)
        self.linktype = LINKTYPE_ETHERNET
        """The stream's link type (read from its interface block once dumpcap captures)."""
        self.captured = 0
        self.drops: dict[str, int] = {}
        """Packets dumpcap says were dropped, by interface, once it has stopped."""
        self.error: str | None = None
        self.said: list[str] = []
        """What dumpcap wrote to its standard error, line by line."""
        self._closing = threading.Event()
        self._reading: int | None = None  # the thread running batches(), if any
        self._reader_done = threading.Event()
        self._reader_done.set()
        self._early: list[FrameBatch] = []  # frames read while waiting for the header
        self._stopped = False
        path = dumpcap or find_dumpcap()
        if path is None or not os.access(path, os.X_OK):
            raise CapturePrivilegeError(refusal(path))
        self.dumpcap = path
        self._start()
        self.save_or_close(write, force, ring_size, ring_files)


    # -- starting and stopping dumpcap -------------------------------------------------------
    def _start(self) -> None:
        # here, not at the top: saying who may not capture needs neither numpy nor the scanners
        from ..pcap import CaptureReader

        argv = [self.dumpcap, "-i", self.interface, "-s", str(self.snaplen), "-B", str(self.buffer_mb),
                "-q", "-w", "-"]
        if self.bpf:
            argv += ["-f", self.bpf]
        try:
            # its own session: a Ctrl-C meant for tcpview must not stop it before it is asked
            # to (and tells its drops); its messages in English, for the drops' line
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True,
                                          env=dict(os.environ, LC_ALL="C"))
        except PermissionError:
            raise CapturePrivilegeError(refusal(self.dumpcap)) from None
        except OSError as e:
            raise LiveError(os_problem(f"cannot run {self.dumpcap}", e)) from None
        self._listener = threading.Thread(target=self._listen, name="dumpcap-stderr", daemon=True)
        self._listener.start()
        assert self._proc.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        self._reader = CaptureReader("-", fd=self._proc.stdout.fileno(), stop=lambda: time.monotonic() > deadline)
        self._gen, self._early = read_header(self._reader)  # until its interface block
        if not self._reader.linktypes:
            timed_out = time.monotonic() > deadline
            self._stop()
            raise self._failure(timed_out)
        self.linktype = self._reader.linktypes[0]

    def _listen(self) -> None:
        """Read dumpcap's standard error (on a thread of its own, so it never blocks on it)."""
        assert self._proc.stderr is not None
        for line in stderr_lines(self._proc.stderr):
            if len(self.said) < 200:
                self.said.append(line)
            m = _DROPS.match(line)
            if m:
                self.drops[m.group(1)] = int(m.group(3))

    def _says(self) -> str:
        """dumpcap's error, one line: its ``dumpcap: ...`` line and the ``(...)`` after it."""
        for i, line in enumerate(self.said):
            if line.startswith("dumpcap: "):
                more = self.said[i + 1] if i + 1 < len(self.said) and self.said[i + 1].startswith("(") else ""
                return f"{line[len('dumpcap: '):]} {more}".strip()
        return ""

    def _failure(self, timed_out: bool) -> LiveError:
        """Why dumpcap did not start capturing, as the error to raise."""
        says = self._says()
        if "permission" in says.lower() or "not permitted" in says:  # runnable, but without its capabilities
            why = "dumpcap ran, but without its capture capabilities"
            return CapturePrivilegeError(no_capture_privileges(why=why))
        if says:
            return LiveError(f"dumpcap: {says}")
        if timed_out:
            return LiveError(f"dumpcap did not start capturing on {self.interface} in {START_SECONDS:g} s")
        return LiveError(f"dumpcap ended (status {self._proc.returncode}) before capturing on {self.interface}")

    def _stop(self) -> None:
        """Ask dumpcap to stop, read what it still writes (it may be waiting for the pipe to
        take a packet) until it ends, and wait for its last words (the drops)."""
        if self._stopped:
            return
        self._stopped = True
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.terminate()  # dumpcap stops as on Ctrl-C: its statistics, then exit
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        out = proc.stdout
        if out is not None and self._reader_done.is_set():  # nobody else reads the pipe now
            fd = out.fileno()
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0] and not os.read(fd, 1 << 16):
                    break
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._listener.join(2.0)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    # -- Source protocol -----------------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[tuple | None]:
        """Yield records ``(frame, ts, linktype, buf, off, caplen, origlen)`` until ``stop``;
        ``None`` while no packet arrives. (The engine reads :meth:`batches`.)"""
        for batch in self.batches(stop):
            if batch is None:
                yield None
            else:
                yield from batch.records()

    def batches(self, stop: threading.Event) -> Iterator[FrameBatch | None]:
        """The frames of dumpcap's stream a chunk at a time, as they come; ``None`` while idle.
        Ends when ``stop`` is set, the source is closed, or dumpcap ends (then :attr:`error`
        says why)."""
        from ..pcap import CaptureError

        closing = self._closing
        if self._stopped:
            return
        self._reader.stop = lambda: stop.is_set() or closing.is_set()
        self._reading = threading.get_ident()
        self._reader_done.clear()
        sink = self.sink
        try:
            early, self._early = self._early, []
            for batch in itertools.chain(early, self._gen):
                if batch is not None:
                    self.captured += len(batch)
                    if sink is not None:
                        sink = self._save(sink, batch)
                yield batch
                if stop.is_set() or closing.is_set():
                    return
            if not (stop.is_set() or closing.is_set()):  # the stream ended: dumpcap did
                try:
                    self._proc.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
                self._listener.join(1.0)  # its last words
                says = self._says()
                self.error = "dumpcap stopped capturing" + (f": {says}" if says else "")
        except CaptureError as e:
            if not (stop.is_set() or closing.is_set()):
                self.error = f"dumpcap's output: {e}"
        finally:
            self._reader_done.set()

    def _save(self, sink: PcapSink | RingSink, batch: FrameBatch) -> PcapSink | RingSink | None:
        """Write the batch's frames with ``-w``; the sink, or None once it failed."""
        f = batch.frames
        # dumpcap stamps microseconds; a float holds them exactly enough to round back to them
        micros = [round(ts * 1e6) for ts in f.ts.tolist()]
        spans = [(us // 1_000_000, us % 1_000_000 * 1000, off, caplen, orig) for us, off, caplen, orig in
                 zip(micros, f.off.tolist(), f.caplen.tolist(), f.origlen.tolist(), strict=True)]
        sink.write_block(batch.buf.data, spans)
        if sink.error:
            self.error = sink.error
            return None
        return sink

    def progress(self) -> float | None:
        """Always None: a live capture has no end."""
        return None

    def now(self) -> float:
        """Capture time now: dumpcap stamps packets with the wall clock, so idle timers
        (TIME_WAIT expiry) advance with it while nothing arrives. Held back by twice the time
        libpcap may keep packets before dumpcap sees them (dumpcap's read timeout; it writes
        each to the pipe at once), so no timer fires ahead of a packet still on its way, as
        with the packet ring."""
        return time.time() - 2 * READ_TIMEOUT_MS / 1000

    def status(self) -> dict[str, int]:
        """``captured`` frames, ``dropped`` (once dumpcap has stopped and said so), ``saved``
        to ``-w``, and ``skipped`` (frames the decoder could not use) once :attr:`timeline` is set."""
        out = {"captured": self.captured}
        if self.drops:
            out["dropped"] = sum(self.drops.values())
        return self.with_counts(out)

    def close(self) -> None:
        """Stop dumpcap (it then says what it dropped) and close the output file (idempotent).

        A :meth:`batches` loop running on another thread is asked to stop first and given a
        moment to do so, so the pipe is read by one thread at a time.
        """
        self._closing.set()
        if self._reading is not None and self._reading != threading.get_ident():
            self._reader_done.wait(2.0)
        self._stop()
        if self.sink is not None:
            self.sink.close()

    def __enter__(self) -> DumpcapSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
