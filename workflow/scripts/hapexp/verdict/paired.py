"""Deep vs linear, paired (rule `performance` → paired.tsv).

Counting significant genes per predictor does not test whether one predictor does better
than another. Per gene, on the same people, two predictors' correlations with the same
expression are *dependent* correlations sharing one variable; Williams' t (Steiger 1980,
eq. 7; `hapexp.stats.williams_t`) tests r(expression, deep) = r(expression, linear) given
r(deep, linear). All three correlations are partial correlations: expression and both
predictions residualized on the covariates (as `hapexp.verdict.performance.gene_table`), so
the sample size is reduced by the k covariates (dof = n − 3 − k); with
`residualize_predictions: false`, raw correlations and k = 0.

Per (deep, linear) pair, over the shared gene set (genes tested by every headline
predictor), Benjamini-Hochberg across the pair's genes: genes where deep > linear and where
linear > deep at the summary's FDR (`paired_counts`). Models fine-tuned on the cohort are
left out (they saw some of these people). The elastic net's out-of-fold predictions enter
as they are: the test is as valid as its per-gene r (see hapexp.verdict.mean_r).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp import stats

PAIRED_COLUMNS = [
    "deep",
    "linear",
    "gene_id",
    "n",
    "dof",
    "r_deep",
    "r_linear",
    "r_deep_linear",
    "williams_t",
    "p",
    "fdr",
]


def paired_genes(
    expression: np.ndarray, deep: np.ndarray, linear: np.ndarray, covariates: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Per row (gene) of genes × people matrices: n, k, r_deep, r_linear, r_deep_linear, t,
    dof, p. `covariates`: people × k, None = intercept only. Rows with missing values use
    their own complete people (covariates restricted to them)."""
    g, n_all = expression.shape
    ok = np.isfinite(expression) & np.isfinite(deep) & np.isfinite(linear)
    out = {key: np.full(g, np.nan) for key in ("r_deep", "r_linear", "r_deep_linear")}
    n = ok.sum(axis=1)
    k = 0 if covariates is None else covariates.shape[1]
    complete = ok.all(axis=1)
    groups = [(np.flatnonzero(complete), np.arange(n_all))] + [
        (np.array([i]), np.flatnonzero(ok[i])) for i in np.flatnonzero(~complete & (n > 3 + k))
    ]
    for rows, cols in groups:
        if not rows.size:
            continue
        q = None if covariates is None else stats.covariate_design(covariates[cols])
        e, d, lin = (stats.residualize(m[np.ix_(rows, cols)], q) for m in (expression, deep, linear))
        out["r_deep"][rows] = stats.rowwise_pearson(d, e)[0]
        out["r_linear"][rows] = stats.rowwise_pearson(lin, e)[0]
        out["r_deep_linear"][rows] = stats.rowwise_pearson(d, lin)[0]
    t, dof, p = stats.williams_t(out["r_deep"], out["r_linear"], out["r_deep_linear"], n, k)
    return {"n": n, "dof": dof, **out, "williams_t": t, "p": p}


def paired_table(
    expression: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    covariates: pd.DataFrame | None,
    perf: pd.DataFrame,
    deep: list[str],
    linear: list[str],
    residualize: bool = True,
) -> pd.DataFrame:
    """paired.tsv (PAIRED_COLUMNS): every (deep, linear) pair of predictors in `perf` on its
    shared gene set (`in_shared_set`) and the people `perf` used (`align_all`)."""
    from hapexp.verdict.performance import align_all

    expr, aligned, cov = align_all(expression, predictions, covariates)
    c = None if cov is None or not residualize or not cov.shape[0] else cov.to_numpy(float).T
    shared = list(dict.fromkeys(perf.loc[perf["in_shared_set"].astype(bool), "gene_id"]))
    frames = []
    for dname in deep:
        for lname in linear:
            if dname not in aligned or lname not in aligned:
                continue
            genes = [g for g in shared if g in aligned[dname][1].index and g in aligned[lname][1].index]
            if not genes:
                continue
            res = paired_genes(
                expr.loc[genes].to_numpy(float),
                aligned[dname][1].loc[genes].to_numpy(float),
                aligned[lname][1].loc[genes].to_numpy(float),
                c,
            )
            t = pd.DataFrame({"deep": dname, "linear": lname, "gene_id": genes, **res})
            t["fdr"] = stats.bh_fdr(t["p"])
            frames.append(t)
    if not frames:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PAIRED_COLUMNS]


def paired_counts(paired: pd.DataFrame, fdr: float = 0.05) -> pd.DataFrame:
    """Per (deep, linear): genes compared, genes where deep > linear and linear > deep at `fdr`."""
    rows = []
    for (d, lin), t in paired.groupby(["deep", "linear"], sort=False):
        sig = t["fdr"].astype(float) < fdr
        rows.append(
            {
                "deep": d,
                "linear": lin,
                "genes": int(np.isfinite(t["p"].astype(float)).sum()),
                "deep_better": int((sig & (t["williams_t"] > 0)).sum()),
                "linear_better": int((sig & (t["williams_t"] < 0)).sum()),
                "n_people": int(t["n"].max()) if len(t) else 0,
            }
        )
    return pd.DataFrame(rows, columns=["deep", "linear", "genes", "deep_better", "linear_better", "n_people"])
