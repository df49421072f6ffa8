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


def beside_kernel(diag: Diagnosis, ends: dict[str, dict]) -> Diagnosis:
    """Fill ``diag.kernel`` from the counters read of its ends on this host and add a line of
    evidence where they disagree with the verdict.

    Args:
        diag: the connection's diagnosis (changed in place and returned).
        ends: ``{"client" | "server": {"busy_us", "rwnd_limited_us", "sndbuf_limited_us",
            "read_at"}}`` for the ends read (empty: none on this host: ``kernel`` stays None).

    The slot is the data sender's counters when it is on this host (``"sender": true``),
    else the other end's (``"sender": false``: a receiver's counters say little of what held
    the data back, and no disagreement is looked for).
    """
    if not ends:
        return diag
    side = diag.sender
    is_sender = side in ends
    if not is_sender:
        side = next(iter(ends))
    got = ends[side]
    diag.kernel = {"side": side, "sender": is_sender, "busy_us": int(got["busy_us"]),
                   "rwnd_limited_us": int(got["rwnd_limited_us"]),
                   "sndbuf_limited_us": int(got["sndbuf_limited_us"]), "read_at": float(got["read_at"])}
    line = disagreement(diag) if is_sender else None
    if line is not None:
        diag.headlines.append(len(diag.evidence))
        diag.evidence.append({"frame": None, "ts": float(got["read_at"]), "text": line})
    return diag


def disagreement(diag: Diagnosis) -> str | None:
    """The evidence line saying the kernel and the verdict disagree (None: they do not)."""
    k = diag.kernel
    if k is None or not k["busy_us"]:
        return None
    busy = k["busy_us"]
    for key, verdict, said in KERNEL_CAUSES:
        if k[key] > DISAGREE_SHARE * busy and diag.verdict != verdict:
            return (f"the kernel disagrees: the {k['side']}'s socket was {said} {100 * k[key] / busy:.0f}% of its "
                    f"{busy / 1e6:.3g} s busy sending (tcp_info {key[:-3]} {k[key] / 1e6:.3g} s), the capture says "
                    f"{LABELS[diag.verdict]}")
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
