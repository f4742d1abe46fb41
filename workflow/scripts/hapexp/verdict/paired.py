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
left out (they saw some of these people).

The elastic net (out-of-fold predictions, fitted on these people): r_linear and r_deep are
the pooled r's, but the test is on its held-out outer folds, as its own p-value is
(`hapexp.verdict.performance.heldout_pvalues`): Williams' t within each outer fold (the
three partial correlations on the fold's people, dof n_f − 3 − k), its exact normal
score, combined across folds by `hapexp.stats.combine_fold_z` (weights √dof_f, the folds'
1/(K − 1) correlation between folds whose model is fitted, a seeded N(0, 1) for a fold
whose model is empty). One Williams' t on the pooled vector inherits the pooled r's
anti-conservative test.
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


def paired_genes_heldout(expression, deep, linear, covariates, labels, fill) -> dict[str, np.ndarray]:
    """`paired_genes` with `linear` out-of-fold on the outer-fold `labels` (0-based, the same
    for every row; complete rows): the pooled r's, and the p-value of Williams' t combined
    over the folds (module doc; `fill`: rows × K seeded N(0, 1) draws for empty folds).
    `williams_t` is then the combined normal score (its sign: deep − linear)."""
    out = paired_genes(expression, deep, linear, covariates)
    n_folds = int(labels.max()) + 1
    k = 0 if covariates is None else covariates.shape[1]
    zs = np.full((expression.shape[0], n_folds), np.nan)
    w = np.zeros(zs.shape)
    for f in range(n_folds):
        cols = np.flatnonzero(labels == f)
        if cols.size - 3 - k <= 0:
            continue
        sub = paired_genes(expression[:, cols], deep[:, cols], linear[:, cols],
                           None if covariates is None else covariates[cols])  # fmt: skip
        empty = stats.below_floor(linear[:, cols], 1e-12)  # the fold's model is empty
        zs[:, f] = np.where(empty, np.nan, stats.t_to_z(sub["williams_t"], sub["dof"]))
        w[:, f] = np.sqrt(cols.size - 3 - k)
    z, p = stats.combine_fold_z(zs, w, fill)
    testable = np.isfinite(out["williams_t"])
    out["williams_t"] = np.where(testable, z, np.nan)
    out["p"] = np.where(testable, p, np.nan)
    out["dof"] = np.where(testable, np.round((np.where(np.isfinite(zs), w, 0.0) ** 2).sum(axis=1)), np.nan)
    return out


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
    folds: dict | None = None,
) -> pd.DataFrame:
    """paired.tsv (PAIRED_COLUMNS): every (deep, linear) pair of predictors in `perf` on its
    shared gene set (`in_shared_set`) and the people `perf` used (`align_all`). `folds`:
    linear predictor → genes × people outer-fold labels of its out-of-fold predictions
    (tested on its held-out folds, module doc)."""
    from hapexp.verdict.performance import FILL_SEED, align_all

    folds = folds or {}

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
            mats = (
                expr.loc[genes].to_numpy(float),
                aligned[dname][1].loc[genes].to_numpy(float),
                aligned[lname][1].loc[genes].to_numpy(float),
                c,
            )
            if lname in folds:
                lab = folds[lname].reindex(index=genes, columns=list(expr.columns)).to_numpy()
                if np.isnan(lab).any() or (lab != lab[:1]).any():
                    raise ValueError(
                        f"{lname}: outer folds must cover these people and be common to all genes"
                    )
                fill = np.array([stats.keyed_rng(FILL_SEED, f"paired:{g}").standard_normal(int(lab.max()) + 1)
                                 for g in genes])  # fmt: skip
                res = paired_genes_heldout(*mats, lab[0].astype(int), fill)
            else:
                res = paired_genes(*mats)
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
