"""The simulator's read-out: gene-oriented personal windows and the oracle's value on them.

This is the simulator's own implementation (personal windows are built here from its
allele table, not through `hapexp.sequences`), and it must equal the inference engine's
read-out for `models.oracle` in config.yaml:

- Window length L = `window` (2048), gene orientation: `+` genes use reference
  `[tss0 - L/2, tss0 + L/2)`, `-` genes `[tss0 - L/2 + 1, tss0 + L/2 + 1)` reverse-
  complemented, so the TSS is at index L/2 (`tss0` = 0-based TSS). Off-chromosome
  bases are N (one-hot zeros).
- Personal windows are anchored on the TSS: the haplotype is built over a wider region,
  the reference TSS base is located in haplotype coordinates (after the length changes
  of indels upstream of it in forward coordinates; a deleted TSS maps to the first
  base after the deletion), and the window is cut around it with the same offsets as
  above. Indels therefore shift the far ends of the window, never the TSS.
- Oracle output bins of 128 bp; TSS bin `c = (L/2) // 128`; the `bins` (2) central bins
  `c - bins//2 ... c - bins//2 + bins - 1` of track 0 are summed; haplotypes averaged.
  The multi-tissue demo reads track k for tissue k the same way (`tracks=`).

Sequences are uint8 ASCII arrays; coordinates are 0-based.
"""

from __future__ import annotations

import numpy as np

N_BASE = ord("N")
_COMP = np.zeros(256, dtype=np.uint8)
_COMP[:] = N_BASE
for _a, _b in zip(b"ACGTN", b"TGCAN", strict=True):
    _COMP[_a] = _b

BIN_SIZE = 128
TRACK = 0
N_CENTRAL_BINS = 2


def revcomp_u8(seq: np.ndarray) -> np.ndarray:
    return _COMP[seq[..., ::-1]]


def ref_slice(ref: np.ndarray, start0: int, end0: int) -> np.ndarray:
    """ref[start0:end0] with N beyond the chromosome ends."""
    out = np.full(end0 - start0, N_BASE, dtype=np.uint8)
    a, b = max(start0, 0), min(end0, len(ref))
    if b > a:
        out[a - start0 : b - start0] = ref[a:b]
    return out


def personal_window(
    ref: np.ndarray, tss0: int, strand: str, window: int, applied: list[tuple[int, str, str]]
) -> np.ndarray:
    """Gene-oriented, TSS-anchored window of a sequence = reference + `applied` variants.

    `applied`: (pos0, ref_allele, alt_allele) with non-overlapping REF spans. The
    haplotype is built over `[tss0 - window, tss0 + window + 1)` so that indels up to a
    net window/2 bp cannot empty the window.
    """
    half = window // 2
    r0, r1 = tss0 - window, tss0 + window + 1
    pieces: list[np.ndarray] = []
    cursor, plen, tss_p = r0, 0, None
    for pos0, ref_allele, alt in sorted(applied):
        if pos0 < r0 or pos0 + len(ref_allele) > r1:
            continue
        if cursor <= tss0 < pos0:
            tss_p = plen + tss0 - cursor
        pieces.append(ref_slice(ref, cursor, pos0))
        plen += pos0 - cursor
        if pos0 <= tss0 < pos0 + len(ref_allele):
            off = tss0 - pos0
            tss_p = plen + (off if off < len(alt) else len(alt))
        pieces.append(np.frombuffer(alt.encode(), dtype=np.uint8))
        plen += len(alt)
        cursor = pos0 + len(ref_allele)
    if tss_p is None:
        tss_p = plen + tss0 - cursor
    pieces.append(ref_slice(ref, cursor, r1))
    seq = np.concatenate(pieces)
    start = tss_p - half if strand == "+" else tss_p - half + 1
    out = seq[start : start + window]
    return revcomp_u8(out) if strand == "-" else out.copy()


def central_bins(window: int, n_bins: int = N_CENTRAL_BINS, bin_size: int = BIN_SIZE) -> list[int]:
    """Bins summed by the readout (docs/architecture.md: TSS bin c, c - n//2 ... c - n//2 + n - 1)."""
    c = (window // 2) // bin_size
    return list(range(c - n_bins // 2, c - n_bins // 2 + n_bins))


class Readout:
    """The oracle readout of gene-oriented windows: sum of the central bins of track 0
    (`tracks=[...]`: of those tracks, one column each)."""

    def __init__(self, oracle, window: int, batch_size: int = 512):
        import torch

        self.torch = torch
        self.model = oracle.double().eval()
        self.bins = central_bins(window)
        self.batch_size = batch_size

    def __call__(self, seqs: np.ndarray, tracks: list[int] | None = None) -> np.ndarray:
        """(n,) readouts of track 0, or (n, len(tracks)) with `tracks`."""
        from hapexp.models.oracle import one_hot

        seqs = np.atleast_2d(seqs)
        out = []
        with self.torch.no_grad():
            for i in range(0, len(seqs), self.batch_size):
                y = self.model(one_hot(seqs[i : i + self.batch_size]))
                if tracks is None:
                    out.append(y[:, self.bins, TRACK].sum(dim=1).numpy())
                else:
                    out.append(y[:, self.bins][:, :, list(tracks)].sum(dim=1).numpy())
        if out:
            return np.concatenate(out)
        return np.zeros(0) if tracks is None else np.zeros((0, len(tracks)))
