"""A model window's orientation: reverse complement of uint8 ASCII sequences and where
the TSS lands in a window (docs/architecture.md). The window's reference coordinates are
`hapexp.variants.windows.window_bounds`."""

from __future__ import annotations

import numpy as np

N = ord("N")
COMP = np.full(256, N, dtype=np.uint8)  # complement of each ASCII byte (anything else: N)
for _a, _b in zip(b"ACGTNacgtn", b"TGCANTGCAN", strict=True):
    COMP[_a] = _b
COMP_TABLE = COMP.tobytes()


def revcomp(seq: np.ndarray) -> np.ndarray:
    """Reverse complement of uint8 ASCII sequence(s) along the last axis."""
    # bytes.translate is ~10x faster than a numpy lookup-table gather on uint8.
    flipped = np.ascontiguousarray(seq[..., ::-1])
    return np.frombuffer(flipped.tobytes().translate(COMP_TABLE), dtype=np.uint8).reshape(seq.shape)


def orient_intervals(iv: np.ndarray, length: int, flip: bool) -> np.ndarray:
    """Intervals [start, end) of a window of `length` in the window's orientation: mirrored
    onto the reverse complement when `flip` (a `−` gene read in gene orientation)."""
    return np.stack([length - iv[:, 1], length - iv[:, 0]], 1) if flip else iv


def tss_index(strand: str, length: int, rc_minus: bool) -> int:
    """0-based index of the TSS in a window of `length` (gene orientation when `rc_minus`)."""
    return length // 2 - 1 if (strand == "-" and not rc_minus) else length // 2
