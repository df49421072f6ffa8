"""Simulated hosts and their TCP endpoints, following RFC 9293.

A :class:`Host` owns its endpoints (TCBs) and answers segments for ports with no endpoint as
RFC 9293 section 3.10.7.1/3.10.7.2 say (RST for a closed port; a new endpoint for a SYN on a
listening port). A :class:`Tcb` is one endpoint: send and receive sequence variables, receive
buffer and window, retransmission (RFC 6298 timer, fast retransmit after three duplicate ACKs
as RFC 5681), the persist timer with one-byte zero-window probes, keep-alives, TIME_WAIT.

What is simplified, on purpose: there is no congestion control (a sender sends what the peer's
window allows), every segment that carries data or a FIN is acknowledged at once (no delayed
ACKs), and SACK blocks are sent but the sender only uses them through fast retransmit. The
shapes of the exchanges -- the thing tcpview shows -- are those of a real stack.

Times are integer microseconds of simulated time (``engine.now``).
"""

from __future__ import annotations

from ..engine.model import (  # noqa: F401  (re-exported)
    ACK,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN,
    FIN_WAIT_1,
    FIN_WAIT_2,
    HALF,
    LAST_ACK,
    LISTEN,
    PSH,
    RST,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    URG,
    M,
)
from .host import Host  # noqa: F401  (re-exported)
from .segments import (  # noqa: F401  (re-exported)
    DATA_RETRIES,
    PERSIST_MAX,
    RTO_INITIAL,
    RTO_MAX,
    SECOND,
    Seg,
    _opts_dict,
    le,
    lt,
    sdiff,
)
from .tcb import Tcb  # noqa: F401  (re-exported)
