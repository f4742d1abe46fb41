"""Sasse et al. (2023)'s random-weights null (`concordance.legacy_null`), kept for
comparison with the published numbers: `legacy_z`, `legacy_p` in performance.tsv."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp.stats import covariate_design, residualize, rowwise_pearson
from hapexp.variants.genotypes import span_dosages


def legacy_random_weights_null(
    r_observed: float,
    dosages: np.ndarray,
    expression: np.ndarray,
    n_draws: int = 1000,
    seed: int = 0,
    covariates: np.ndarray | None = None,
) -> tuple[float, float]:
    """Sasse et al. (2023)-style legacy statistic for one gene (option `concordance.legacy_null`).

    Null predictors are random linear combinations of the gene's window dosages
    (weights ~ N(0, 1)); their correlations with expression form the null. Returns
    (z, p_empirical): z = r_observed / sd(null r) -- the anchors' "t-statistic" that
    divides by the null's standard deviation -- and the two-sided empirical p
    (1 + #{|r_null| >= |r_obs|}) / (1 + n_draws). Kept for comparison with the
    published numbers only: the null conditions on the local LD structure but z is
    not t-distributed; the default analysis uses the exact t-test and BH FDR.
    `covariates` (samples × k): null predictions are residualized on them as the
    observed prediction was (None: raw, as the anchors).
    """
    g = np.asarray(dosages, dtype=float)  # variants × samples
    y = np.asarray(expression, dtype=float)
    if g.ndim != 2 or g.shape[0] == 0 or not np.isfinite(r_observed):
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_draws, g.shape[0]))
    null_pred = w @ g  # draws × samples
    if covariates is not None:
        q = covariate_design(covariates)
        null_pred = residualize(null_pred, q)
        y = residualize(y[None, :], q)[0]
    r_null, _ = rowwise_pearson(null_pred, np.broadcast_to(y, null_pred.shape), floor=0.0)
    r_null = r_null[np.isfinite(r_null)]
    if len(r_null) < 2:
        return np.nan, np.nan
    sd = r_null.std(ddof=1)
    z = r_observed / sd if sd > 0 else np.nan
    p = (1 + np.sum(np.abs(r_null) >= abs(r_observed))) / (1 + len(r_null))
    return float(z), float(p)


def legacy_columns(
    perf: pd.DataFrame,
    expression: pd.DataFrame,
    genes: pd.DataFrame,
    windows: dict[str, int],
    vcf_path,
    n_draws: int,
    seed: int,
    covariates: pd.DataFrame | None = None,
    policies: dict | None = None,
) -> pd.DataFrame:
    """Add `legacy_z`, `legacy_p` (Sasse et al.'s random-weights null) for predictors in `windows`.

    The null's variants are those of the `variants` policy in the predictor's input
    window around the TSS (0-based [tss0 − L/2, tss0 + L/2)); with `covariates` the null
    predictions are residualized as the observed ones.
    """
    from hapexp.variants.policy import record_mask

    perf = perf.copy()
    perf["legacy_z"] = np.nan
    perf["legacy_p"] = np.nan
    g = genes.set_index("gene_id")
    samples = list(expression.columns)
    cov = (
        None
        if covariates is None or not covariates.shape[0]
        else covariates.loc[:, samples].to_numpy(float).T
    )
    cache: dict[tuple[str, int], pd.DataFrame] = {}
    for i, row in perf.iterrows():
        L = windows.get(row["predictor"])
        if L is None or row["gene_id"] not in g.index or row["gene_id"] not in expression.index:
            continue
        key = (row["gene_id"], L)
        if key not in cache:
            info = g.loc[row["gene_id"]]
            tss0 = int(info["tss"]) - 1
            # every record overlapping the window, missing calls NaN (dropped below)
            dos = span_dosages(vcf_path, str(info["chrom"]), tss0 - L // 2, tss0 + L // 2, samples)
            dos = dos[dos.notna().all(axis=1)]
            alleles = [v.split("_")[-2:] for v in dos.index]
            keep, _ = record_mask(
                [a[0] for a in alleles], [a[1] for a in alleles], dos.mean(axis=1).to_numpy() / 2, policies
            )
            cache[key] = dos[keep]
        z, p = legacy_random_weights_null(
            row["pearson_r"],
            cache[key].to_numpy(),
            expression.loc[row["gene_id"]].to_numpy(),
            n_draws,
            seed,
            covariates=cov,
        )
        perf.loc[i, ["legacy_z", "legacy_p"]] = z, p
    return perf
