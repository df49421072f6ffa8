"""The outer layers of a segment that came through a tunnel or an encapsulation, read again
from its frame, and a connection's tunnels (Zeek's ``tunnel_parents``).

The compiled loop keeps one bit per segment (``columns.seg_tunneled``): what the layers
were is read again, in Python, only for the segments shown or exported. The walk is the
loop's own (:func:`tcpview.engine.core.decode.layers`); this module only names each layer
and its addresses, for the JSON (``"outer": [...]`` on a segment) and the detail pane.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable

import numpy as np

from ..core import encap as k
from ..core.columns import SEG_TUNNEL_SHIFT
from ..core.decode import layers

LINK_NAMES = {1: "ethernet", 113: "linux-sll", 276: "linux-sll2", 9: "ppp", 50: "ppp", 104: "cisco-hdlc",
              51: "pppoe", 105: "802.11", 127: "802.11", 192: "ppi", 0: "loopback", 108: "loopback",
              239: "nflog", 242: "ipoib"}
"""The name of a frame's link layer, by link type (raw IP has none)."""

def _u(data: bytes, p: int, n: int) -> int:
    return int.from_bytes(data[p:p + n], "big") if p + n <= len(data) else 0


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ethernet(data: bytes, p: int) -> dict:
    d: dict = {"layer": "ethernet", "src": _mac(data[p + 6:p + 12]), "dst": _mac(data[p:p + 6])}
    q, vlans = p + 12, []
    while _u(data, q, 2) in k.VLAN_TYPES and q + 4 <= len(data):
        vlans.append(_u(data, q + 2, 2) & 0xFFF)
        q += 4
    if vlans:
        d["vlan"] = vlans
    return d


def _ip(data: bytes, kind: int, p: int) -> dict:
    if kind == 0x0800:
        return {"layer": "ipv4", "src": socket.inet_ntop(socket.AF_INET, data[p + 12:p + 16]),
                "dst": socket.inet_ntop(socket.AF_INET, data[p + 16:p + 20])}
    return {"layer": "ipv6", "src": socket.inet_ntop(socket.AF_INET6, data[p + 8:p + 24]),
            "dst": socket.inet_ntop(socket.AF_INET6, data[p + 24:p + 40])}


def _mpls(data: bytes, p: int) -> dict:
    labels = []
    while p + 4 <= len(data):
        labels.append(_u(data, p, 4) >> 12)
        if data[p + 2] & 1:
            break
        p += 4
    return {"layer": "mpls", "labels": labels}


def _gre(data: bytes, p: int) -> dict:
    fl, proto = _u(data, p, 2), _u(data, p + 2, 2)
    d: dict = {"layer": "gre", "proto": f"0x{proto:04x}"}
    if fl & 7 == 1:
        d["call_id"] = _u(data, p + 6, 2)  # PPTP
    elif fl & 0x2000:
        d["key"] = _u(data, p + (8 if fl & 0x8000 else 4), 4)
    return d


def describe(kind: int, data: bytes, p: int) -> dict:
    """One layer of ``data`` at ``p`` (a kind of :mod:`tcpview.engine.core.encap`) as a dict:
    its name (``layer``) and what tells it apart (addresses, ports, labels, ids)."""
    if kind in (0x0800, 0x86DD):
        return _ip(data, kind, p)
    if kind == k.K_ETH:
        return _ethernet(data, p)
    if kind in (0x8847, 0x8848):
        return _mpls(data, p)
    if kind == k.K_GRE:
        return _gre(data, p)
    if kind == k.K_UDP:
        return {"layer": "udp", "sport": _u(data, p, 2), "dport": _u(data, p + 2, 2)}
    if kind == k.K_VXLAN:
        return {"layer": "vxlan", "vni": _u(data, p + 4, 3)}
    if kind == k.K_GENEVE:
        return {"layer": "geneve", "vni": _u(data, p + 4, 3), "proto": f"0x{_u(data, p + 2, 2):04x}"}
    if kind == k.K_ERSPAN:
        return {"layer": "erspan", "version": "II" if data[p] >> 4 == 1 else "III", "session": _u(data, p, 2) & 0x3FF}
    if kind == 0x88E7:
        return {"layer": "pbb", "isid": _u(data, p + 1, 3)}
    if kind == 0x8903:
        return {"layer": "fabricpath", "ftag": _u(data, p, 2) >> 6, "ttl": _u(data, p, 2) & 0x3F}
    if kind == 0x8864:
        return {"layer": "pppoe", "session": _u(data, p + 2, 2)}
    if kind == k.K_PWCW:
        return {"layer": "pw-control-word", "sequence": _u(data, p + 2, 2)}
    names = {k.K_TEREDO: "teredo", k.K_AYIYA: "ayiya"}
    return {"layer": names.get(kind, f"0x{kind:04x}")}


def outer_layers(linktype: int, data: bytes, origlen: int) -> list[dict]:
    """The layers around a segment's own IP header in frame ``data``, outermost first: its
    link layer, then each encapsulation and tunnel as :func:`describe` names it; [] when
    the frame carries its segment directly (or carries none)."""
    walked = layers(data, origlen, linktype)
    if len(walked) < 2:
        return []
    out = []
    if linktype == 1:
        out.append(_ethernet(data, 0))
    elif linktype in LINK_NAMES:
        out.append({"layer": LINK_NAMES[linktype]})
    out += [describe(kind, data, p) for kind, p in walked[:-1]]
    return out


def tunnels(outer: list[dict]) -> list[dict]:
    """The IP tunnels among ``outer``'s layers (Zeek's tunnel types: ip, gre, vxlan, geneve,
    teredo, ayiya), each with its outer endpoints: ``{"tunnel", "src", "dst"}`` and, over
    UDP, ``"sport"``/``"dport"``."""
    found = []
    names = {"vxlan", "geneve", "teredo", "ayiya", "gre"}
    for i, layer in enumerate(outer):
        if layer["layer"] not in ("ipv4", "ipv6"):
            continue
        nxt = outer[i + 1] if i + 1 < len(outer) else {"layer": "ip"}
        t = {"tunnel": "", "src": layer["src"], "dst": layer["dst"]}
        if nxt["layer"] == "udp":
            after = outer[i + 2]["layer"] if i + 2 < len(outer) else ""
            t["tunnel"] = after if after in names else "udp"
            t["sport"], t["dport"] = nxt["sport"], nxt["dport"]
        elif nxt["layer"] in ("gre", "ipv4", "ipv6", "ip"):
            t["tunnel"] = "gre" if nxt["layer"] == "gre" else "ip"
        else:
            continue
        found.append(t)
    return found


def tunneled_rows(view) -> np.ndarray:
    """The segment rows of ``view`` that came through a tunnel or an encapsulation."""
    return np.flatnonzero((view.segs.fl[: view.n_seg] >> SEG_TUNNEL_SHIFT) & 1)


def readable(source: str | None) -> bool:
    """Whether frames can be read again from ``source`` (a capture file, not a stream)."""
    return source is not None and source != "-" and os.path.isfile(source)


def outer_by_frame(view, source: str | None, cids: Iterable[int] | None = None) -> dict[int, list[dict]]:
    """:func:`outer_layers` of every tunneled segment (of connections ``cids``, else of all),
    by frame number, read again from capture file ``source``; {} when nothing came through a
    tunnel or the frames cannot be read again."""
    rows = tunneled_rows(view)
    if source is None or not len(rows) or not readable(source):
        return {}
    if cids is not None:
        ids = view.conns.cid[view.segs.conn[rows].astype(np.int64)]
        rows = rows[np.isin(ids, np.fromiter(cids, dtype=np.int64))]
    return outer_of_frames(source, view.segs.frame[rows].astype(np.int64).tolist())


def with_outer(line: str, outer: list[dict] | None) -> str:
    """A segment's compact JSON (``model_dump_json``) with its ``"outer"`` layers added."""
    if not outer:
        return line
    return line[:-1] + ',"outer":' + json.dumps(outer, separators=(",", ":")) + "}"


def outer_of_frames(path: str, numbers: Iterable[int]) -> dict[int, list[dict]]:
    """:func:`outer_layers` of frames ``numbers`` of capture file ``path``, by frame number."""
    from ...sources.extract import read_frames

    return {n: outer_layers(f.linktype, f.data, f.origlen) for n, f in read_frames(path, numbers).items()}


def tunnel_parents(view, path: str | None) -> dict[int, list[dict]]:
    """Each tunneled connection's tunnels (:func:`tunnels`), by connection id, from the first
    and last tunneled segment of each direction (read again from capture file ``path``); a
    tunnel seen both ways is given once, as first seen."""
    rows = tunneled_rows(view)
    if path is None or not len(rows) or not readable(path):
        return {}
    segs = view.segs
    key = segs.conn[rows].astype(np.int64) * 2 + ((segs.fl[rows] >> 8) & 1)
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    first = order[np.r_[True, k_sorted[1:] != k_sorted[:-1]]]
    last = order[np.r_[k_sorted[1:] != k_sorted[:-1], True]]
    picked = np.unique(np.concatenate([rows[first], rows[last]]))
    frames = segs.frame[picked].astype(np.int64)
    outer = outer_of_frames(path, frames.tolist())
    parents: dict[int, list[dict]] = {}
    seen: dict[int, set] = {}
    for row, frame in zip(picked.tolist(), frames.tolist(), strict=True):
        cid = int(view.conns.cid[int(segs.conn[row])])
        for t in tunnels(outer.get(frame, [])):
            ends = frozenset(((t["src"], t.get("sport")), (t["dst"], t.get("dport"))))
            if (t["tunnel"], ends) not in seen.setdefault(cid, set()):
                seen[cid].add((t["tunnel"], ends))
                parents.setdefault(cid, []).append(t)
    return parents


def outer_text(outer: list[dict]) -> str:
    """``outer``'s layers on one line, outermost first (``ipv4 192.0.2.1 → 198.51.100.2 ›
    udp 50000 → 4789 › vxlan vni=42``), for the detail pane."""
    parts = []
    for layer in outer:
        words = [layer["layer"]]
        if "src" in layer:
            words.append(f"{layer['src']} → {layer['dst']}")
        if "sport" in layer:
            words.append(f"{layer['sport']} → {layer['dport']}")
        for key, value in layer.items():
            if key not in ("layer", "src", "dst", "sport", "dport"):
                words.append(f"{key}={'/'.join(map(str, value)) if isinstance(value, list) else value}")
        parts.append(" ".join(words))
    return " › ".join(parts)
