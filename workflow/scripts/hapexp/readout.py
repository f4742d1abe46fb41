"""Read-out: from a model's (batch, bins, tracks) output to one value per track.

Pure numpy (the engine does the on-device part: RC averaging and gathering the
central bins). Conventions (docs/architecture.md): the TSS sits at 0-based input
index `tss_index`; its output bin is `c = (tss_index - crop) // bin_size`; the `n`
central bins are `c - n//2 … c - n//2 + n - 1`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError

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


def readout_values(central: np.ndarray, bin_aggregation: str, log: bool) -> np.ndarray:
    """(N, n_bins, T) central-bin outputs → (N, T) per-sequence values."""
    return transform(aggregate_bins(central, bin_aggregation, axis=1), log)


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


def load_targets(path) -> pd.DataFrame:
    """Enformer-style targets table: columns index, identifier, description (tab-separated)."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            path, "targets table not found", "copy it from the model's release next to the config"
        )
    df = pd.read_csv(path, sep="\t")
    missing = {"index", "identifier", "description"} - set(df.columns)
    if missing:
        raise InputError(
            path, f"targets table lacks column(s) {sorted(missing)}", "use index/identifier/description"
        )
    return df


def default_track_names(n_tracks: int) -> list[str]:
    return [f"track_{i}" for i in range(n_tracks)]


def resolve_tracks(
    tracks, names: list[str], identifiers: list[str] | None = None, where: str = "model"
) -> list[int]:
    """Tracks given by 0-based index or by name (description or identifier) → indices.

    A name must match exactly one track; an ambiguous description asks for the
    index or identifier instead.
    """
    n = len(names)
    out = []
    for t in tracks:
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not 0 <= t < n:
                raise InputError(
                    "config", f"track index {t} out of range (model has {n})", "use 0 … n-1", where
                )
            out.append(int(t))
            continue
        hits = [i for i, s in enumerate(names) if s == t]
        if identifiers is not None:
            hits += [i for i, s in enumerate(identifiers) if s == t and i not in hits]
        if not hits:
            close = [s for s in names if str(t).lower() in s.lower()][:5]
            raise InputError(
                "config",
                f"no track named {t!r}",
                "give a track index or an exact description/identifier from the targets table"
                + (f"; similar: {close}" if close else ""),
                where,
            )
        if len(hits) > 1:
            raise InputError(
                "config", f"track name {t!r} matches indices {hits}", "give the index instead", where
            )
        out.append(hits[0])
    return out
