"""Read-out: from a model's (batch, bins, tracks) output to one value per track.

Pure numpy (the on-device part — RC averaging, gathering the central bins, weighting
the exon bins — is hapexp.engine.predictor.Predictor.central_bins). Conventions
(docs/architecture.md): the TSS sits at 0-based input index `tss_index`; its output bin
is `c = (tss_index - crop) // bin_size`; the `n` central bins are
`c - n//2 … c - n//2 + n - 1`.

`readout: exons` (RNA-seq coverage models): the value of a track is the sum (or mean)
of its output over the bins that overlap any of the gene's exons, as placed on each
haplotype's window (`hapexp.sequences.coords.map_intervals`), each bin counted once
(the gene read-out of coverage models: bins floor(start/bin) … ceil(end/bin) - 1 of
the output span, any overlap); CAGE/PRO-cap tracks keep the TSS bins. A gene without
any exon bin in the output span reads NaN.
"""

from __future__ import annotations

import numpy as np

# `sample` of the reference genome's rows in predict's tidy table (haplotype 0).
REFERENCE_SAMPLE = "__reference__"


def tss_bin(tss_index, crop: int, bin_size: int):
    """0-based output bin holding input index `tss_index` (int or array)."""
    return (np.asarray(tss_index) - crop) // bin_size


def central_bin_start(tss_index, crop: int, bin_size: int, n: int, n_out_bins: int):
    """First of the `n` central bins (int or array); raises if they leave the output."""
    start = tss_bin(tss_index, crop, bin_size) - n // 2
    if np.any(start < 0) or np.any(start + n > n_out_bins):
        raise ValueError(
            f"{n} central bins around tss_index {tss_index} (crop {crop}, bin {bin_size}) "
            f"fall outside the model's {n_out_bins} output bins"
        )
    return start


def exon_bins(intervals, crop: int, bin_size: int, n_out_bins: int) -> np.ndarray:
    """Output bins overlapping any interval [start, end) of input coordinates (sorted, unique)."""
    iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2) - crop
    span = n_out_bins * bin_size
    iv = np.clip(iv, 0, span)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if not len(iv):
        return np.zeros(0, np.int64)
    lo, hi = iv[:, 0] // bin_size, -(-iv[:, 1] // bin_size)
    return np.unique(np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]))


def exon_weights(rows_intervals, crop: int, bin_size: int, n_out_bins: int, how: str) -> np.ndarray:
    """(rows, bins) float32 weights: 1 (sum) or 1/count (mean) on each row's exon bins, NaN
    rows where no exon bin is in the output span."""
    w = np.zeros((len(rows_intervals), n_out_bins), np.float32)
    for i, iv in enumerate(rows_intervals):
        bins = exon_bins(iv, crop, bin_size, n_out_bins)
        if not len(bins):
            w[i] = np.nan
            continue
        w[i, bins] = 1.0 if how == "sum" else 1.0 / len(bins)
    return w


# predict's per-gene exon statistics ({chunk}.exons.tsv): the gene, then exon_counts' keys.
EXON_STAT_COLUMNS = [
    "gene_id",
    "exons",
    "exons_in_window",
    "exons_clipped",
    "exons_dropped",
    "exons_deleted",
    "exon_bins",
]


def exon_counts(intervals, crop: int, bin_size: int, n_out_bins: int) -> dict:
    """How many exons lie wholly inside, partly inside (clipped) and outside (dropped) the output span."""
    iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2) - crop
    span = n_out_bins * bin_size
    nonempty = iv[:, 1] > iv[:, 0]
    inside = nonempty & (iv[:, 0] >= 0) & (iv[:, 1] <= span)
    outside = nonempty & ((iv[:, 1] <= 0) | (iv[:, 0] >= span))
    return {
        "exons": int(len(iv)),
        "exons_in_window": int(inside.sum()),
        "exons_clipped": int((nonempty & ~inside & ~outside).sum()),
        "exons_dropped": int(outside.sum()),
        "exons_deleted": int((~nonempty).sum()),
        "exon_bins": int(len(exon_bins(intervals, crop, bin_size, n_out_bins))),
    }


def aggregate_bins(x: np.ndarray, how: str, axis: int = 1) -> np.ndarray:
    """Sum or mean over the bin axis, in float64."""
    if how == "sum":
        return x.sum(axis=axis, dtype=np.float64)
    if how == "mean":
        return x.mean(axis=axis, dtype=np.float64)
    raise ValueError(f"bin aggregation must be sum|mean, not {how!r}")


def transform(values: np.ndarray, log: bool) -> np.ndarray:
    """Optional log transform, log(1 + x): model outputs (Softplus) are ≥ 0 and 0 must map to 0."""
    return np.log1p(values) if log else values


def readout_values(
    central: np.ndarray, bin_aggregation: str, log: bool, exon=None, tss_track=None
) -> np.ndarray:
    """(N, n_bins, T) central-bin outputs → (N, T) per-sequence values.

    With `exon` (N, T) exon read-outs, tracks where `tss_track` is False take those.
    """
    values = aggregate_bins(central, bin_aggregation, axis=1)
    if exon is not None:
        use = ~np.asarray(tss_track, bool) if tss_track is not None else np.ones(values.shape[1], bool)
        values[:, use] = np.asarray(exon, dtype=np.float64)[:, use]
    return transform(values, log)


def aggregate_haplotypes(values: np.ndarray, how: str) -> np.ndarray:
    """(..., 2) per-haplotype values → (...) per-sample value (mean or sum)."""
    if how == "mean":
        return values.mean(axis=-1)
    if how == "sum":
        return values.sum(axis=-1)
    raise ValueError(f"haplotype aggregation must be mean|sum, not {how!r}")


def reverse_complement_average(fwd: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Average the forward output with the reverse-complement output flipped back along bins.

    Valid because crop is symmetric: bin i of the RC input covers the bases of
    forward bin (n_bins - 1 - i).
    """
    return (fwd + rc[:, ::-1, :]) / 2
