"""How the command line fails: one line on stderr, exit status 2."""

from __future__ import annotations

from ..errors import UserError

EXIT_USAGE = 2


class UsageError(UserError):
    """A problem with what the user asked for on the command line; printed as one line, exit 2."""
