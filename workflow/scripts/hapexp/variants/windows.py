"""Windows around genes and sets of regions.

Coordinates: gene `tss` (and gene body start/end) are 1-based (genes.tsv); windows
and regions are 0-based half-open `[start0, end0)`.

Window of a gene (see `gene_window`):
- an integer `W` (tensorQTL; PredictDB's TSS-centred variant): variants with `|POS - tss| <= W`;
- `gene_body_1mb` (PredictDB's `gtex_v7_nested_cv_elnet.R`): variants with
  `start - 1e6 <= POS <= end + 1e6`, start/end the gene body of genes.tsv (1-based);
- a model name: exactly the model's reference window (docs/architecture.md,
  `window_bounds`), i.e. `+`: `[tss0 - L//2, tss0 + L//2)`, `-`: `[tss0 - L//2 + 1, tss0 + L//2 + 1)`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GENE_BODY_WINDOWS = {"gene_body_1mb": 1_000_000}


def resolve_window(window, models: dict | None = None):
    """Normalize a config window: int → ("flank", W); `gene_body_1mb` → ("gene_body",
    1000000); model name → ("model", L)."""
    if isinstance(window, bool):
        raise ValueError(f"invalid window {window!r}")
    if isinstance(window, int | np.integer):
        if window < 0:
            raise ValueError(f"window must be >= 0 bp, got {window}")
        return ("flank", int(window))
    if isinstance(window, str):
        if window.isdigit():
            return ("flank", int(window))
        if window in GENE_BODY_WINDOWS:
            return ("gene_body", GENE_BODY_WINDOWS[window])
        models = models or {}
        if window not in models:
            raise ValueError(
                f"window {window!r} is neither a number of bp, {', '.join(GENE_BODY_WINDOWS)}, nor a model name "
                f"(models: {', '.join(models) or 'none'})"
            )
        from hapexp.models.spec import model_spec

        length = int(model_spec(models[window], window)["window"])
        return ("model", length)
    raise ValueError(f"invalid window {window!r}")


def window_bounds(tss: int, strand: str, length: int) -> tuple[int, int]:
    """0-based half-open reference window of a model of input `length` around a gene
    (1-based `tss`), forward strand; a minus-strand window is shifted by one base so that
    the TSS lands at index L//2 once it is reverse-complemented. Not clipped."""
    tss0 = int(tss) - 1
    shift = 1 if strand == "-" else 0
    return tss0 - length // 2 + shift, tss0 + length // 2 + shift


def gene_window(
    tss: int, strand: str, window, start: int | None = None, end: int | None = None
) -> tuple[int, int]:
    """0-based half-open window `[start0, end0)` of a gene (tss, gene body start/end
    1-based; the body defaults to the TSS); start clipped at 0."""
    kind, w = window
    tss0 = int(tss) - 1
    if kind == "flank":
        start0, end0 = tss0 - w, tss0 + w + 1
    elif kind == "gene_body":
        lo = int(tss) if start is None or pd.isna(start) else int(start)
        hi = int(tss) if end is None or pd.isna(end) else int(end)
        start0, end0 = lo - 1 - w, hi + w
    else:
        start0, end0 = window_bounds(tss, strand, w)
    return max(start0, 0), end0


def window_flank(window) -> int:
    """Bases on each side of the TSS that `window` (resolved) can reach, for region
    pre-filters; a gene-body window reaches further by the body's length (add it)."""
    kind, w = window
    return w // 2 + 1 if kind == "model" else w


def merge_regions(regions: pd.DataFrame) -> pd.DataFrame:
    """Merge overlapping or adjacent 0-based half-open regions (columns chrom, start0,
    end0): chromosomes in order of first appearance, regions sorted by start within one."""
    out = []
    for chrom, df in regions.groupby("chrom", sort=False):
        df = df.sort_values("start0")
        cs, ce = None, None
        for s, e in zip(df["start0"], df["end0"], strict=True):
            if cs is None or s > ce:
                if cs is not None:
                    out.append((chrom, cs, ce))
                cs, ce = int(s), int(e)
            else:
                ce = max(ce, int(e))
        if cs is not None:
            out.append((chrom, cs, ce))
    return pd.DataFrame(out, columns=["chrom", "start0", "end0"])
