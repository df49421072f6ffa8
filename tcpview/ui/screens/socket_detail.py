"""``tcpview sockets``' Enter: everything the kernel says about one connection's sockets, as
``ss -tinpoe`` shows it (state, queues, timer, uid, inode; the main tcp_info figures in words,
then the whole tcp_info as ``ss -ti`` writes it), and the processes that hold them (found as
``ss -p`` finds them, :func:`tcpview.kernel.owners.socket_owners`)."""

from __future__ import annotations

import pwd

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ...kernel.procnet import KernelSocket
from ...kernel.snapshot import KernelConn
from ...textutil import plural, safe
from .modal import ScrollingModal, detail_bindings, detail_css

SIDES = ("client", "server")


def _user(uid: int) -> str:
    try:
        return f"{uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, OverflowError):
        return str(uid)


def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def _rate(bytes_per_s: int | None) -> str:
    return "-" if bytes_per_s is None else f"{bytes_per_s * 8 / 1e6:.3f} Mbit/s"


def info_lines(s: KernelSocket) -> list[tuple[str, str]]:
    """The main tcp_info figures in words (what the sender is doing), then all of it as
    ``ss -ti`` writes it."""
    i = s.info
    if i is None:
        return []
    g = i.get
    rtt, var = g("rtt"), g("rttvar")
    lines = [("rtt", "-" if rtt is None else f"{rtt / 1000:g} ms (variation {(var or 0) / 1000:g} ms)"),
             ("cwnd", f"{i.cwnd} segments of {g('snd_mss')} bytes"),
             ("ssthresh", "- (still in its first slow start)" if i.ssthresh is None else f"{i.ssthresh} segments"),
             ("in flight", f"{g('unacked')} unacked, {g('lost')} lost, {g('retrans')} retransmitted "
                           f"({g('total_retrans')} retransmissions in all)"),
             ("rates", f"delivery {_rate(g('delivery_rate'))}, pacing {_rate(i.as_json()['pacing_rate'])}"),
             ("bytes", f"{g('bytes_acked')} acked, {g('bytes_received')} received")]
    busy = g("busy_time")
    if busy is not None:
        lim = ", ".join(f"{name} {(g(field) or 0) / 1000:g} ms" for name, field in
                        (("receive-window-limited", "rwnd_limited"), ("send-buffer-limited", "sndbuf_limited")))
        lines.append(("sender time", f"busy {busy / 1000:g} ms, of which {lim}"))
    lines.append(("ss -ti", safe(i.ss_text())))
    return lines


def socket_lines(s: KernelSocket, hidden: int) -> list[tuple[str, str]]:
    """``(field, value)`` lines of one socket, every field the kernel gives, said in words."""
    listening = s.state_name == "LISTEN"
    lines = [("state", s.state_name)]
    if listening:
        lines += [("Recv-Q", f"{s.rx_queue}  (connections waiting to be accepted)"),
                  ("Send-Q", f"{'?' if s.send_q is None else s.send_q}  (the backlog: the most that may wait)")]
    else:
        lines += [("Recv-Q", f"{s.rx_queue}  (bytes received, not yet read by the application)"),
                  ("Send-Q", f"{s.tx_queue}  (bytes sent, not yet acknowledged by the peer)")]
    if s.timer:
        count = "retransmissions" if s.timer == 1 else "probes"
        ss_form = f"timer:({s.timer_name},{s.timer_left:.3f}s,{s.timer_count})"
        lines.append(("timer", f"{s.timer_text()}  ({s.timer_count} {count}; ss -o: {ss_form})"))
    else:
        lines.append(("timer", "none"))
    lines += [("uid", _user(s.uid)), ("inode", str(s.inode) if s.inode else "0  (no file: no process holds it)")]
    if s.refcnt is not None:
        lines.append(("refcnt", str(s.refcnt)))
    if s.info is not None and not listening:
        lines += [("rto", _seconds(s.rto)), ("ato", _seconds(s.ato)), *info_lines(s)]
    elif not listening and s.cwnd is not None:
        lines += [("rto", _seconds(s.rto)), ("ato", _seconds(s.ato)), ("cwnd", f"{s.cwnd} segments"),
                  ("ssthresh", "- (still in its first slow start)" if s.ssthresh is None else f"{s.ssthresh} segments")]
    if s.retransmits or s.probes:
        lines.append(("retransmits", f"{s.retransmits} unrecovered, {s.probes} probes sent"))
    if s.owners:
        for o in s.owners:
            lines.append(("process", f"{safe(o.command)}  (pid {o.pid}, fd {o.fd})"))
    elif s.inode:
        why = (f"; {plural(hidden, 'process', 'processes')} could not be looked into (another user's: "
               "run as root to see them)") if hidden else ""
        lines.append(("process", f"none found{why}"))
    else:
        lines.append(("process", "none: the kernel alone holds it (TIME_WAIT, or a half-open connection's request)"))
    return lines


def conn_text(cid: int, conn: KernelConn, hidden: int) -> Text:
    """The connection ``cid``'s sockets in full, the client's end first."""
    out = Text()
    for side in (0, 1):
        ends = conn.client_text() if side == 0 else conn.server_text()
        out.append(f"{SIDES[side]} end  {ends}\n", style="bold")
        s = conn.socket(side)
        if s is None:
            if side == 0 and conn.listening:
                why = "none: a listening socket has no client (NONE)"
            elif conn.state_text(side) == "UNKNOWN":
                why = "on another host: this kernel cannot know its state (UNKNOWN)"
            else:
                why = "no socket on this host: the kernel has closed it (CLOSED)"
            out.append(f"  {why}\n")
        else:
            for name, value in socket_lines(s, hidden):
                out.append(f"  {name:<12}", style="bold")
                out.append(f"{value}\n")
        if side == 0:
            out.append("\n")
    return out


class SocketDetailScreen(ScrollingModal):
    """One connection of the kernel's table in full: each end's socket and its processes."""

    BINDINGS = detail_bindings("socket_detail", "Close the detail")

    DEFAULT_CSS = detail_css("SocketDetailScreen")

    def __init__(self, cid: int, conn: KernelConn, hidden: int) -> None:
        super().__init__()
        self.cid = cid
        self.conn = conn
        self.text = conn_text(cid, conn, hidden)
        """What the screen shows."""

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"#{self.cid}  {self.conn.client_text()} ⇄ {self.conn.server_text()}"
            box.border_subtitle = "esc close"
            with VerticalScroll():
                yield Static(self.text, id="socket-detail")
