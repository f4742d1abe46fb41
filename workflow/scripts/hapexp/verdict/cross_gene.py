"""Cross-gene performance: each model's reference-genome prediction against the mean
expression level across genes (what the models were trained to do; Huang et al. 2023
Fig. 1b), from the optional expression-level matrix (un-residualized) or else the
expression input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp import stats

log = logging.getLogger(__name__)


def mean_expression(raw: pd.DataFrame) -> tuple[pd.Series, str]:
    """Mean expression per gene across samples; log2(x + 1) first when all values are >= 0.

    Counts/TPM are heavy-tailed across genes, so Pearson on the raw scale would be
    driven by a few genes; the scale used is returned and written to cross_gene.tsv.
    """
    values = raw.to_numpy(dtype=float)
    if np.nanmin(values) >= 0:
        return pd.Series(np.nanmean(np.log2(values + 1), axis=1), index=raw.index), "log2(x+1)"
    return pd.Series(np.nanmean(values, axis=1), index=raw.index), "as given"


def level_columns(level: pd.DataFrame, samples: list[str]) -> pd.DataFrame:
    """The analysed individuals' columns of an expression-level matrix: matched exactly or
    by the id before the first "." (Geuvadis GD660 libraries: HG00096.1.M_111124_6); all
    columns when none match."""
    want = set(samples)
    keep = [c for c in level.columns if c in want or str(c).split(".")[0] in want]
    if not keep:
        log.warning("expression level: no column matches an analysed sample; using all %d", level.shape[1])
        return level
    return level.loc[:, keep]


def cross_gene(
    raw_expression: pd.DataFrame, references: dict[str, pd.Series], source: str = "expression"
) -> pd.DataFrame:
    """Per model: reference-genome prediction vs mean expression level across genes.
    `source` names the matrix the levels come from (written to cross_gene.tsv)."""
    mean, scale = mean_expression(raw_expression)
    rows = []
    for name, ref in references.items():
        genes = [g for g in ref.index if g in mean.index]
        x = ref.loc[genes].to_numpy(dtype=float)
        y = mean.loc[genes].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            pr, sr = stats.pearson(x, y), stats.spearman(x, y)
            pp, sp = stats.r_pvalue([pr, sr], len(x))
        else:
            pr = pp = sr = sp = np.nan
        rows.append(
            {
                "model": name,
                "n_genes": int(len(x)),
                "spearman_r": float(sr),
                "spearman_p": float(sp),
                "pearson_r": float(pr),
                "pearson_p": float(pp),
                "expression_scale": scale,
                "expression_source": source,
            }
        )
    return pd.DataFrame(rows)


def expression_levels(path, fmt: str, samples: list[str] | None = None) -> pd.DataFrame:
    """The expression levels the cross-gene correlation uses (genes × samples, Ensembl
    versions stripped): the matrix at `path`, restricted to the analysed `samples` when it
    is an expression-level matrix with columns of its own (`level_columns`)."""
    from hapexp.inputs.formats import read_expression, strip_version

    levels = read_expression(path, fmt)
    if samples is not None:
        levels = level_columns(levels, samples)
    levels.index = strip_version(levels.index)
    return levels


def read_references(models: list[str], paths) -> dict[str, pd.Series]:
    """Each model's reference-genome prediction per gene (predict/{model}.reference.tsv),
    Ensembl versions stripped."""
    from hapexp.inputs.formats import strip_version

    refs = {}
    for name, p in zip(models, paths, strict=True):
        ref = pd.read_csv(p, sep="\t", dtype={"gene_id": str}).set_index("gene_id")["value"]
        ref.index = strip_version(ref.index)
        refs[name] = ref
    return refs
