"""A socket's ``struct tcp_info`` as sock_diag gives it (``INET_DIAG_INFO``), decoded on demand.

The layout is the kernel's (``include/uapi/linux/tcp.h``); it has only grown at its end over
the years, so a field is given by this kernel when the attribute is long enough to hold it
(:meth:`TcpInfo.get` is None otherwise). The raw bytes are kept and a field is unpacked when it
is asked for: a refresh of 30,000 sockets decodes only the rows on screen.

Units are the kernel's: times in microseconds (``rtt``, ``rttvar``, ``rto``, ``ato``,
``min_rtt``, ``rcv_rtt`` and the chrono counters ``busy_time``, ``rwnd_limited``,
``sndbuf_limited``), the ``last_*`` times in milliseconds, rates in bytes a second, the
congestion window and ssthresh in segments. :meth:`TcpInfo.ss_text` writes them as ``ss -ti``
does (iproute2's ``misc/ss.c``, ``tcp_show_info``).
"""

from __future__ import annotations

import struct

_LAYOUT = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("app_limited", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"), ("delivery_rate", "Q"),
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    ("dsack_dups", "I"), ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"),
)


def _fields() -> dict[str, tuple[int, struct.Struct]]:
    out, at = {}, 0
    for name, code in _LAYOUT:
        s = struct.Struct("=" + code)
        at = (at + s.size - 1) // s.size * s.size  # C alignment (the u64s are 8-aligned)
        out[name] = (at, s)
        at += s.size
    return out


FIELDS = _fields()
"""name -> (offset, struct) of each field of ``struct tcp_info`` (without the ``tcpi_``)."""

_BASICS = struct.Struct("=BBBB4xII60xII")
"""state, ca_state, retransmits, probes; rto, ato (offset 8); snd_ssthresh, snd_cwnd (offset 76)."""

INFINITE_SSTHRESH = 0x7FFFFFFF
"""TCP_INFINITE_SSTHRESH: still in the first slow start."""
UNLIMITED = (1 << 64) - 1
"""A rate of ~0: no limit (``max_pacing_rate`` unset)."""

TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE, TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN = 1, 2, 4, 8, 16

JSON_FIELDS = ("rtt_us", "rttvar_us", "cwnd", "ssthresh", "mss", "retrans", "lost", "unacked", "delivery_rate",
               "pacing_rate", "bytes_acked", "bytes_received", "busy_us", "rwnd_limited_us", "sndbuf_limited_us")
"""The keys of :meth:`TcpInfo.as_json`, in order."""
_JSON_SOURCE = dict(zip(JSON_FIELDS, ("rtt", "rttvar", "snd_cwnd", "snd_ssthresh", "snd_mss", "total_retrans",
                                      "lost", "unacked", "delivery_rate", "pacing_rate", "bytes_acked",
                                      "bytes_received", "busy_time", "rwnd_limited", "sndbuf_limited"), strict=True))


class TcpInfo:
    """One socket's ``tcp_info``, kept as the kernel's bytes and read field by field.

    Args:
        raw: the ``INET_DIAG_INFO`` attribute's payload.
        cong: the congestion control's name (``INET_DIAG_CONG``), None when not given.
    """

    __slots__ = ("cong", "raw")

    def __init__(self, raw: bytes, cong: str | None = None) -> None:
        self.raw = raw
        self.cong = cong

    def get(self, name: str) -> int | None:
        """Field ``name`` (``rtt``, ``snd_cwnd``... as in the kernel without ``tcpi_``), None
        when this kernel's tcp_info is too short to hold it."""
        at, s = FIELDS[name]
        if len(self.raw) < at + s.size:
            return None
        return s.unpack_from(self.raw, at)[0]

    def basics(self) -> tuple[int, int, int, int, int, int | None]:
        """(retransmits, probes, rto µs, ato µs, cwnd, ssthresh or None) in one unpacking: what
        a table of thousands of sockets reads of each."""
        if len(self.raw) < _BASICS.size:
            g = self.get
            return g("retransmits") or 0, g("probes") or 0, g("rto") or 0, g("ato") or 0, g("snd_cwnd") or 0, \
                self.ssthresh
        _s, _ca, retransmits, probes, rto, ato, ssthresh, cwnd = _BASICS.unpack_from(self.raw)
        return retransmits, probes, rto, ato, cwnd, None if not ssthresh or ssthresh >= INFINITE_SSTHRESH else ssthresh

    @property
    def rtt_us(self) -> int | None:
        """The smoothed round-trip time in µs."""
        return self.get("rtt")

    @property
    def cwnd(self) -> int | None:
        """The congestion window in segments."""
        return self.get("snd_cwnd")

    @property
    def ssthresh(self) -> int | None:
        """The slow-start threshold in segments; None while it is infinite (the first slow
        start: ss does not show it then either) and for a listener (0)."""
        v = self.get("snd_ssthresh")
        return None if not v or v >= INFINITE_SSTHRESH else v

    def as_json(self) -> dict[str, int | None]:
        """The fields ``tcpview sockets --json`` gives (see :data:`JSON_FIELDS`): times in µs,
        rates in bytes a second, ``retrans`` every retransmission of the connection
        (``tcpi_total_retrans``); None for a field this kernel does not give (and for an
        infinite ssthresh, an unlimited pacing rate)."""
        out = {k: self.get(src) for k, src in _JSON_SOURCE.items()}
        out["ssthresh"] = self.ssthresh
        if out["pacing_rate"] == UNLIMITED:
            out["pacing_rate"] = None
        return out

    def ss_text(self) -> str:
        """The fields as ``ss -ti`` writes them on a socket's second line (the same names,
        units and order; fields that are zero left out as ss leaves them)."""
        g = self.get
        out: list[str] = []
        listening = g("state") == 10  # a listener's unacked and sacked are its queue and backlog
        opts = g("options") or 0
        out += [w for bit, w in ((TCPI_OPT_TIMESTAMPS, "ts"), (TCPI_OPT_SACK, "sack"), (TCPI_OPT_ECN, "ecn"),
                                 (TCPI_OPT_ECN_SEEN, "ecnseen")) if opts & bit]
        if self.cong:
            out.append(self.cong)
        if opts & TCPI_OPT_WSCALE:
            ws = g("wscale") or 0
            out.append(f"wscale:{ws & 0xF},{ws >> 4}")
        rto = g("rto")
        if rto:
            out.append(f"rto:{_ms(rto)}")
        if g("backoff"):
            out.append(f"backoff:{g('backoff')}")
        if g("rtt"):
            out.append(f"rtt:{_ms(g('rtt') or 0)}/{_ms(g('rttvar') or 0)}")
        if g("ato"):
            out.append(f"ato:{_ms(g('ato') or 0)}")
        for name, field in (("mss", "snd_mss"), ("pmtu", "pmtu"), ("rcvmss", "rcv_mss"), ("advmss", "advmss")):
            if g(field):
                out.append(f"{name}:{g(field)}")
        out.append(f"cwnd:{g('snd_cwnd')}")
        if self.ssthresh is not None and self.ssthresh < 0xFFFF:
            out.append(f"ssthresh:{self.ssthresh}")
        for name in ("bytes_sent", "bytes_retrans", "bytes_acked", "bytes_received", "segs_out", "segs_in",
                     "data_segs_out", "data_segs_in"):
            if g(name):
                out.append(f"{name}:{g(name)}")
        rtt, cwnd, mss = g("rtt"), g("snd_cwnd"), g("snd_mss")
        if rtt and cwnd and mss:
            out.append(f"send {_bps(cwnd * mss * 8 * 1_000_000 / rtt)}")
        for name, field in (("lastsnd", "last_data_sent"), ("lastrcv", "last_data_recv"),
                            ("lastack", "last_ack_recv")):
            if g(field):
                out.append(f"{name}:{g(field)}")
        pacing = g("pacing_rate")
        if pacing and pacing != UNLIMITED:
            most = g("max_pacing_rate")
            out.append(f"pacing_rate {_bps(pacing * 8)}"
                       + (f"/{_bps(most * 8)}" if most and most != UNLIMITED else ""))
        if g("delivery_rate"):
            out.append(f"delivery_rate {_bps((g('delivery_rate') or 0) * 8)}")
        if g("delivered"):
            out.append(f"delivered:{g('delivered')}")
        if (g("app_limited") or 0) & 1:
            out.append("app_limited")
        busy = g("busy_time")
        if busy:
            out.append(f"busy:{busy // 1000}ms")
            for name in ("rwnd_limited", "sndbuf_limited"):
                v = g(name)
                if v:
                    out.append(f"{name}:{v // 1000}ms({v * 100 / busy:.1f}%)")
        if g("unacked") and not listening:
            out.append(f"unacked:{g('unacked')}")
        if g("retrans") or g("total_retrans"):
            out.append(f"retrans:{g('retrans')}/{g('total_retrans')}")
        for name in ("lost", "sacked", "dsack_dups"):
            if g(name) and not (listening and name == "sacked"):
                out.append(f"{name}:{g(name)}")
        if g("reordering") not in (None, 3):
            out.append(f"reordering:{g('reordering')}")
        if g("reord_seen"):
            out.append(f"reord_seen:{g('reord_seen')}")
        if g("rcv_rtt"):
            out.append(f"rcv_rtt:{_ms(g('rcv_rtt') or 0)}")
        for name in ("rcv_space", "rcv_ssthresh"):
            if g(name):
                out.append(f"{name}:{g(name)}")
        if g("notsent_bytes"):
            out.append(f"notsent:{g('notsent_bytes')}")
        if g("min_rtt"):
            out.append(f"minrtt:{_ms(g('min_rtt') or 0)}")
        if g("snd_wnd"):
            out.append(f"snd_wnd:{g('snd_wnd')}")
        return " ".join(out)


def _ms(us: int) -> str:
    """µs as ss writes milliseconds (``%g``: 0.018, 204, 1.5)."""
    return f"{us / 1000:g}"


def _bps(bits: float) -> str:
    """A rate in bits a second as ``ss`` writes it (it writes ``bps`` whole, ``-i`` alone)."""
    return f"{bits:.0f}bps"
