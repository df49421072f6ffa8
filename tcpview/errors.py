"""The one kind of error a user can cause, and the one way an ``OSError`` becomes a line.

Every layer raises a subclass of :class:`UserError` for a problem the user can fix (a missing
file, a bad scenario or theme, no capture privileges); the command line prints it as one line
and exits with status 2, never a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; its text is one line that says what and where."""


def os_problem(what: object, e: OSError, doing: str = "") -> str:
    """One line for an ``OSError`` about ``what`` (a path, an interface): ``x.pcap: No such
    file or directory``, or with ``doing``: ``x.pcap: cannot write: Permission denied``."""
    reason = e.strerror or str(e) or type(e).__name__
    return f"{what}: {doing + ': ' if doing else ''}{reason}"
