"""The one kind of error a user can cause, and the one way an ``OSError`` becomes a line.

Every layer raises a subclass of :class:`UserError` for a problem the user can fix (a missing
file, a bad scenario or theme, no capture privileges); the command line prints it as one line
and exits with status 2, never a traceback. What needs privileges says so through
:func:`needs_root`, so every such line reads the same way and none of them widens privileges
beyond what the one task needs.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; its text is one line that says what and where."""


class PrivilegeError(UserError):
    """Something needs privileges this process lacks; the line (made by :func:`needs_root`)
    says how to get them and what works without."""


def needs_root(what: str, *, grant: str = "", instead: str = "", why: str = "") -> str:
    """The one line for "this needs root" (live capture; reading the kernel's trace events).

    It never suggests giving capabilities to an interpreter (``setcap`` on ``python3`` hands
    them to every Python program on the host): only sudo, or a narrower way the caller names.

    Args:
        what: what needs it, first on the line (``live capture``).
        grant: another way to get the privilege, as an instruction (``or join the wireshark
            group ...``); said after "run it with sudo".
        instead: what works without privileges (``tcpview sockets``).
        why: what was found, said in parentheses after ``what`` (``dumpcap is not installed``).
    """
    line = f"{what} needs root{f' ({why})' if why else ''}: run it with sudo"
    if grant:
        line += f", or {grant}"
    if instead:
        line += f"; without privileges try {instead}"
    return line


_HINTS = {errno.EEXIST: "file exists (use --force to overwrite it)"}
"""Words that say more than the system's for an error every caller reports the same way."""

_ERRNO_OF: dict[type[OSError], int] = {
    FileExistsError: errno.EEXIST,
    FileNotFoundError: errno.ENOENT,
    IsADirectoryError: errno.EISDIR,
    NotADirectoryError: errno.ENOTDIR,
    PermissionError: errno.EACCES,
}
"""The error number of an ``OSError`` subclass raised by hand, without one."""


def os_problem(what: object, e: OSError, doing: str = "", *, wanted: str = "") -> str:
    """One line for an ``OSError`` about ``what`` (a path, an interface).

    The reason is the system's own words with a small first letter (``x.pcap: no such file or
    directory``, ``x.pcap: permission denied``); an existing file adds how to overwrite it.

    Args:
        what: what the error is about, first on the line: a path, or what failed
            (``cannot capture on eth0``).
        e: the error.
        doing: what failed, put between ``what`` and the reason:
            ``x.pcap: cannot write: permission denied``.
        wanted: what ``what`` should have been, said when it is a directory:
            ``x: is a directory, not a capture file``.
    """
    code = e.errno or _ERRNO_OF.get(type(e), 0)  # FileExistsError(path) carries no errno
    reason = _HINTS.get(code) or e.strerror or (os.strerror(code) if code else str(e) or type(e).__name__)
    if reason[1:2].islower():  # "Permission denied", but not "RPC struct is bad"
        reason = reason[:1].lower() + reason[1:]
    if wanted and code == errno.EISDIR:
        reason += f", not {wanted}"
    return f"{what}: {doing + ': ' if doing else ''}{reason}"


def read_text(path: str | os.PathLike[str], error: type[UserError], wanted: str) -> str:
    """The text of a UTF-8 file the user named (a scenario, a theme).

    Args:
        path: the file.
        error: what to raise: the reader's own :class:`UserError`.
        wanted: what the file should be (``a scenario file``), for the one-line message.

    Raises:
        UserError: ``error``, when the file cannot be read or is not UTF-8 text.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise error(os_problem(path, e, wanted=wanted)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text, so not {wanted}") from None
