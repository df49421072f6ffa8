"""Numbers read from a frame's bytes (a numpy ``uint8`` array), big- and little-endian, as
int64, in the compiled decoders (:mod:`tcpview.engine.core.decode`,
:mod:`tcpview.engine.core.encap`) and from Python alike."""

from __future__ import annotations

import numpy as np

from ...jit import Int, inlined


@inlined
def be16(b: np.ndarray, p: Int) -> Int:
    """The big-endian 16-bit number at ``b[p]``."""
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@inlined
def be32(b: np.ndarray, p: Int) -> Int:
    """The big-endian 32-bit number at ``b[p]``."""
    return (np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16) | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])


@inlined
def le16(b: np.ndarray, p: Int) -> Int:
    """The little-endian 16-bit number at ``b[p]``."""
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@inlined
def le32(b: np.ndarray, p: Int) -> Int:
    """The little-endian 32-bit number at ``b[p]``."""
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@inlined
def be64(b: np.ndarray, p: Int) -> Int:
    """The big-endian 64-bit number at ``b[p]`` (wrapping into int64's sign)."""
    v = np.int64(0)
    for i in range(8):
        v = (v << 8) | np.int64(b[p + i])
    return v
