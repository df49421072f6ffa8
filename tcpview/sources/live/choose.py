"""Which way a live capture goes: this process's own packet ring, or Wireshark's dumpcap.

With root or ``CAP_NET_RAW``, tcpview opens its own packet socket and ring
(:class:`~tcpview.sources.live.capture.LiveSource`): the fastest way, with drops counted as
they happen. Without, it runs dumpcap when this user may (the ``wireshark`` group:
:class:`~tcpview.sources.live.dumpcap.DumpcapSource`). Without either, one line says how to
get the privilege: never by giving capabilities to the Python interpreter, which would give
them to every Python program on the host.
"""

from __future__ import annotations

from typing import Any

from .capture import LiveSource
from .dumpcap import DumpcapSource
from .ring import CapturePrivilegeError

Capture = LiveSource | DumpcapSource
"""A live capture, whichever way it goes."""
CAPTURES = (LiveSource, DumpcapSource)
"""The classes of :data:`Capture`, for ``isinstance``."""


def open_capture(*args: Any, **kwargs: Any) -> Capture:
    """Open a capture: the packet ring if this process may, else dumpcap.

    The arguments are :class:`~tcpview.sources.live.capture.LiveSource`'s (interface, filter,
    file to save to, ...), which :class:`~tcpview.sources.live.dumpcap.DumpcapSource` takes
    too. The ring checks the interface and compiles the filter before it asks for a socket, so
    a typo is told as a typo whichever way the capture would have gone.

    Raises:
        CapturePrivilegeError: neither way may capture (the line says how to get the privilege).
        LiveError: no such interface, a bad filter, an existing output file (one line).
    """
    try:
        return LiveSource(*args, **kwargs)
    except CapturePrivilegeError:
        pass  # neither root nor CAP_NET_RAW: dumpcap, if this user may run it
    return DumpcapSource(*args, **kwargs)
