"""What the compiled decoder needs to know of this kernel's trace buffers, read from tracefs.

- the ring buffer's page layout (``events/header_page``): where the page's time stamp, its
  commit word (bytes of events on the page, and the missed-events flags) and its events are;
- each event's fields (``events/SYSTEM/EVENT/format``): their offsets and sizes differ
  between kernels (``tcp_send_reset`` carried ``sport``/``saddr[4]`` fields until 6.10, and
  ``sockaddr`` arrays since), so :func:`layout` turns them into a table of offsets, one row
  per kind of event, one column per field the decoder knows (``-1``: this kernel's event has
  no such field, or not of the size expected).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# kinds of event (the decoder's rows of the layout table; KEVENT.kind)
K_NONE, K_STATE, K_PROBE, K_RETRANS, K_SEND_RST, K_RECV_RST, K_CONG, K_DESTROY = range(8)
N_KINDS = 8

KIND_OF_EVENT = {
    "sock:inet_sock_set_state": K_STATE,
    "tcp:tcp_probe": K_PROBE,
    "tcp:tcp_retransmit_skb": K_RETRANS,
    "tcp:tcp_send_reset": K_SEND_RST,
    "tcp:tcp_receive_reset": K_RECV_RST,
    "tcp:tcp_cong_state_set": K_CONG,
    "tcp:tcp_destroy_sock": K_DESTROY,
}
"""The tracepoint each kind of event comes from."""

KIND_NAMES = ("", "state", "probe", "retransmit", "send_reset", "receive_reset", "cong_state", "destroy")

# the fields the decoder reads (columns of the layout table), with the size each must have
# (saddr/daddr of 28 bytes: a sockaddr_in or sockaddr_in6, as tcp_probe and tcp_send_reset keep them)
FIELDS = (
    ("skaddr", 8), ("family", 2), ("sport", 2), ("dport", 2), ("saddr", 4), ("daddr", 4),
    ("saddr_v6", 16), ("daddr_v6", 16), ("saddr", 28), ("daddr", 28), ("oldstate", 4),
    ("newstate", 4), ("state", 4), ("snd_cwnd", 4), ("ssthresh", 4), ("srtt", 4), ("snd_wnd", 4),
    ("cong_state", 1), ("data_len", 2), ("snd_nxt", 4), ("snd_una", 4), ("sock_cookie", 8),
    ("protocol", 2),
)
(F_SKADDR, F_FAMILY, F_SPORT, F_DPORT, F_SADDR, F_DADDR, F_SADDR6, F_DADDR6, F_SSA, F_DSA, F_OLD, F_NEW,
 F_STATE, F_CWND, F_SSTHRESH, F_SRTT, F_SNDWND, F_CONG, F_DATALEN, F_SNDNXT, F_SNDUNA, F_COOKIE,
 F_PROTOCOL) = range(len(FIELDS))
N_FIELDS = len(FIELDS)

_FIELD = re.compile(r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);")


class FormatError(ValueError):
    """A ``format`` or ``header_page`` file tcpview cannot read."""


@dataclass(frozen=True)
class EventFormat:
    """One event's id and fields: name -> (offset, size)."""

    name: str
    id: int
    fields: dict[str, tuple[int, int]]


def parse_format(text: str, name: str = "") -> EventFormat:
    """Read an event's ``format`` file.

    Raises:
        FormatError: it has no ``ID:`` line.
    """
    m = re.search(r"^ID:\s*(\d+)", text, re.M)
    if m is None:
        raise FormatError(f"{name or 'event'}: no ID in its format file")
    fields = {}
    for f in _FIELD.finditer(text):
        decl = f["decl"].strip()
        base = decl.split("[")[0].split()[-1].lstrip("*")
        fields[base] = (int(f["off"]), int(f["size"]))
    return EventFormat(name, int(m[1]), fields)


@dataclass(frozen=True)
class PageFormat:
    """Where a ring-buffer page keeps its time stamp, commit word and events."""

    ts_off: int
    commit_off: int
    commit_size: int
    data_off: int
    size: int
    """The page's whole size: what one read of ``trace_pipe_raw`` returns."""


def parse_header_page(text: str, subbuf_size: int | None = None) -> PageFormat:
    """Read ``events/header_page`` (``subbuf_size``: the instance's sub-buffer size in bytes,
    when the kernel lets it differ from a page).

    Raises:
        FormatError: a field is missing.
    """
    fields = {}
    for f in _FIELD.finditer(text):
        fields[f["decl"].split()[-1]] = (int(f["off"]), int(f["size"]))
    try:
        ts, commit, data = fields["timestamp"], fields["commit"], fields["data"]
    except KeyError as e:
        raise FormatError(f"header_page: no {e.args[0]} field") from None
    size = subbuf_size or data[0] + data[1]
    return PageFormat(ts[0], commit[0], commit[1], data[0], size)


def layout(formats: dict[str, EventFormat]) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's tables for the events enabled: ``kind_of`` (event id -> kind; 0 for
    events it skips) and ``offsets`` (kind x field -> offset, -1 where absent; the last
    column: the least length an event of that kind has, the end of its last field read)."""
    kind_of = np.zeros(65536, dtype=np.int8)
    offsets = np.full((N_KINDS, N_FIELDS + 1), -1, dtype=np.int32)
    offsets[:, N_FIELDS] = 8
    for name, fmt in formats.items():
        kind = KIND_OF_EVENT.get(name)
        if kind is None or not 0 <= fmt.id < 65536:
            continue
        kind_of[fmt.id] = kind
        for col, (field, size) in enumerate(FIELDS):
            have = fmt.fields.get(field)
            if have is not None and have[1] == size:
                offsets[kind, col] = have[0]
                offsets[kind, N_FIELDS] = max(offsets[kind, N_FIELDS], have[0] + size)
    return kind_of, offsets


def read_formats(instance: Path, events: list[str]) -> dict[str, EventFormat]:
    """The ``format`` of each enabled ``system:event`` in an instance."""
    out = {}
    for ev in events:
        system, name = ev.split(":")
        out[ev] = parse_format((instance / "events" / system / name / "format").read_text(), ev)
    return out


def read_page_format(root: Path, instance: Path) -> PageFormat:
    """The page layout, with the instance's sub-buffer size where the kernel has one."""
    sub = None
    try:
        sub = int((instance / "buffer_subbuf_size_kb").read_text().split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return parse_header_page((root / "events" / "header_page").read_text(), sub)
