"""The kernel's own split of a sender's time beside the breakdown inferred from the packets.

On a live capture, this host's sockets report how long they were busy sending and how much of
that the peer's receive window or their own send buffer held them back (``tcp_info``'s chrono
counters, read by :mod:`tcpview.kernel.chrono` and handed down as plain dictionaries). This
module picks the data sender's counters for a connection's diagnosis (its ``kernel`` slot)
and says so in the evidence where the kernel and the inference disagree: more than half of
the busy time receive-window limited but a verdict other than ``receive_window``, or send-
buffer limited but a verdict other than ``application``.
"""

from __future__ import annotations

from .diagnosis import LABELS, Diagnosis

DISAGREE_SHARE = 0.5
"""The share of its busy time a kernel counter must pass for the kernel to name a cause."""
KERNEL_CAUSES = (("rwnd_limited_us", "receive_window", "receive-window limited"),
                 ("sndbuf_limited_us", "application", "send-buffer limited"))
"""(counter, the verdict it stands for, how it is said): a sender held back by its peer's
window is the receive window's case; one held back by its own send buffer is writing more
than it can send, which the capture sees as the application's pace."""


def kernel_slot(ends: dict[str, dict], sender: str) -> dict | None:
    """The ``kernel`` slot of a connection whose data ``sender`` (``"client"`` or ``"server"``)
    is known, from the counters read of its ends here (``{"client" | "server": {"busy_us",
    "rwnd_limited_us", "sndbuf_limited_us", "read_at"}}``, only the ends read; None when
    empty): the data sender's counters when it is on this host (``"sender": true``), else the
    other end's (``"sender": false``: a receiver's counters say little of what held the data
    back)."""
    if not ends:
        return None
    side = sender if sender in ends else next(iter(ends))
    got = ends[side]
    return {"side": side, "sender": side == sender, "busy_us": int(got["busy_us"]),
            "rwnd_limited_us": int(got["rwnd_limited_us"]), "sndbuf_limited_us": int(got["sndbuf_limited_us"]),
            "read_at": float(got["read_at"])}


def beside_kernel(diag: Diagnosis, ends: dict[str, dict]) -> Diagnosis:
    """Fill ``diag.kernel`` (:func:`kernel_slot`) from the counters read of its ends on this
    host and add a summary line to the evidence where the kernel and the verdict disagree
    (:func:`disagreement`); ``diag`` is changed in place and returned."""
    diag.kernel = kernel_slot(ends, diag.sender)
    line = disagreement(diag.kernel, diag.verdict)
    if line is not None and diag.kernel is not None:
        diag.headlines.append(len(diag.evidence))
        diag.evidence.append({"frame": None, "ts": diag.kernel["read_at"], "text": line})
    return diag


def disagreement(kernel: dict | None, verdict: str) -> str | None:
    """The evidence line saying the data sender's kernel and the verdict disagree (None: they
    do not, or the counters are not the sender's)."""
    if kernel is None or not kernel["sender"] or not kernel["busy_us"]:
        return None
    busy = kernel["busy_us"]
    for key, cause, said in KERNEL_CAUSES:
        if kernel[key] > DISAGREE_SHARE * busy and verdict != cause:
            return (f"the kernel disagrees: the {kernel['side']}'s socket was {said} {100 * kernel[key] / busy:.0f}% "
                    f"of its {busy / 1e6:.3g} s busy sending (tcp_info {key[:-3]} {kernel[key] / 1e6:.3g} s), "
                    f"the capture says {LABELS[verdict]}")
    return None


def kernel_text(kernel: dict) -> str:
    """The counters on one line: ``kernel (server, the sender): busy 1.19 s, rwnd_limited 72%,
    sndbuf_limited 0%``."""
    busy = kernel["busy_us"]
    who = f"{kernel['side']}, the sender" if kernel["sender"] else f"{kernel['side']}, the receiver"
    if not busy:
        return f"kernel ({who}): never busy sending"
    return (f"kernel ({who}): busy {busy / 1e6:.3g} s, rwnd_limited {100 * kernel['rwnd_limited_us'] / busy:.0f}%, "
            f"sndbuf_limited {100 * kernel['sndbuf_limited_us'] / busy:.0f}%")


def kernel_short(kernel: dict) -> str:
    """The counters in a few cells, for the viewer's breakdown bar: ``kernel server rwnd 72%
    sndbuf 0%`` (of its busy time)."""
    busy = kernel["busy_us"]
    if not busy:
        return f"kernel {kernel['side']} not busy"
    return (f"kernel {kernel['side']} rwnd {100 * kernel['rwnd_limited_us'] / busy:.0f}% "
            f"sndbuf {100 * kernel['sndbuf_limited_us'] / busy:.0f}%")
