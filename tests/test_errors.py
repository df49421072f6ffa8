"""One line for an OSError, the same words from every layer; one way to say "needs root"."""

import errno
import os

import pytest

from tcpview.errors import PrivilegeError, UserError, needs_root, os_problem


@pytest.mark.parametrize(
    ("error", "kwargs", "line"),
    [
        (FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)), {}, "x.pcap: no such file or directory"),
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES)), {}, "x.pcap: permission denied"),
        (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), {"wanted": "a capture file"},
         "x.pcap: is a directory, not a capture file"),
        (FileExistsError("x.pcap"), {"doing": "cannot write"},
         "x.pcap: cannot write: file exists (use --force to overwrite it)"),
        (IsADirectoryError("x.pcap"), {}, "x.pcap: is a directory"),
        (OSError(errno.EIO, os.strerror(errno.EIO)), {"doing": "read error"}, "x.pcap: read error: input/output error"),
        (OSError("odd"), {}, "x.pcap: odd"),
    ],
)
def test_os_problem_is_one_line_in_the_same_words(error: OSError, kwargs: dict, line: str) -> None:
    assert os_problem("x.pcap", error, **kwargs) == line


def test_every_layer_error_is_a_user_error() -> None:
    """The command line prints any of them as one line, exit 2, with no re-wrapping."""
    from tcpview.sim import ScenarioError
    from tcpview.sources.live.ring import LiveError
    from tcpview.sources.pcap import CaptureError
    from tcpview.ui.themes.spec import ThemeError

    for cls in (CaptureError, LiveError, ScenarioError, ThemeError):
        assert issubclass(cls, UserError), cls


def test_needs_root_is_one_line_in_the_same_words() -> None:
    """What needs root (live capture now; the kernel's trace events and sock_diag to come) says
    so the same way: sudo first, then a narrower way if there is one, then what needs nothing."""
    from tcpview.sources.live.ring import CapturePrivilegeError, LiveError, no_capture_privileges

    assert needs_root("reading the kernel's TCP events") == (
        "reading the kernel's TCP events needs root: run it with sudo")
    assert needs_root("x", grant="join group g", instead="`tcpview demo`", why="no dumpcap") == (
        "x needs root (no dumpcap): run it with sudo, or join group g; without privileges try `tcpview demo`")
    line = no_capture_privileges()
    assert "\n" not in line
    assert line.startswith("live capture needs root: run it with sudo, or join the wireshark group")
    assert issubclass(CapturePrivilegeError, LiveError) and issubclass(CapturePrivilegeError, PrivilegeError)
