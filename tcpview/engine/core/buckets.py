"""Frames into buckets by connection: what a run over many workers (``tcpview.cluster``) cuts
an archive's files by, compiled like the loop that reads them afterwards.

A TCP segment the decoder accepts goes to the bucket of its unordered 4-tuple (the connection
table's own hash, :func:`~tcpview.engine.core.connhash.slot`: the same both ways round), so
every segment a 4-tuple ever carries lands in one bucket and the table's rules (a new SYN on
a 4-tuple that is over starts a new connection) run there on all of them. It keeps only its
bytes up to the end of its TCP header: the decoder reads nothing past it (the payload's length
comes from the IP header and the wire length). A frame the decoder refuses only counts; it
goes whole to a bucket by its place in the file, where the decoder refuses it again for the
same reason. The hash keeps every product below 2**63, so plain Python and compiled code give
every frame the same bucket (workers may run either way).
"""

from __future__ import annotations

import numpy as np

from ...jit import Int, kernel
from .connhash import slot
from .decode import O_DPORT, O_DST_HI, O_DST_LO, O_FAM, O_SPORT, O_SRC_HI, O_SRC_LO, O_THL, O_TOFF, OK, decode_frame

_SPAN = 1 << 40  # the hash's range before it is cut to the number of buckets


@kernel
def bucket_frames(buf: np.ndarray, frames, first: Int, buckets: Int, fields: np.ndarray, bucket: np.ndarray,
                  keep: np.ndarray) -> Int:
    """Each frame's bucket (of ``buckets``) and the bytes of it to keep (``keep``): above 0 for
    a segment the decoder accepts (up to its TCP header's end), else minus its captured length
    (it is kept whole). ``first``: the frames' number in the file before the first (a refused
    frame goes by its place); ``fields``: room for one frame's decoded fields. Returns how many
    are segments."""
    n = len(frames)
    segments = 0
    for k in range(n):
        f = frames[k]
        start = np.int64(f.off)
        caplen = np.int64(f.caplen)
        code = decode_frame(buf, start, caplen, np.int64(f.origlen), np.int64(f.linktype), fields)
        if code == OK:
            h = slot(_SPAN, fields[O_FAM], fields[O_SRC_HI], fields[O_SRC_LO], fields[O_SPORT], fields[O_DST_HI],
                     fields[O_DST_LO], fields[O_DPORT])
            bucket[k] = h % buckets
            keep[k] = min(fields[O_TOFF] + fields[O_THL], start + caplen) - start
            segments += 1
        else:
            bucket[k] = (first + k) % buckets
            keep[k] = -caplen
    return segments


@kernel
def copy_frames(buf: np.ndarray, src: np.ndarray, lengths: np.ndarray, out: np.ndarray, dst: np.ndarray) -> Int:
    """Copy ``lengths[k]`` bytes of ``buf`` from ``src[k]`` to ``out`` at ``dst[k]``, for each k
    (a byte at a time: compiled, that is a copy loop; plain Python had better gather with numpy)."""
    for k in range(len(src)):
        s, d = src[k], dst[k]
        for j in range(lengths[k]):
            out[d + j] = buf[s + j]
    return len(src)
