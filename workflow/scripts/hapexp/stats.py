"""The statistics every analysis shares, vectorized over rows (tensorQTL `core.py` style).

Nothing here knows genes, models or files: rows are features (genes, variants,
predictions), columns are samples, and every function works on many rows at once.

- Residualization (`covariate_design`, `residualize`, `Residualizer`): with Q an
  orthonormal basis of the centred covariates (samples × k), a row x is centred and
  projected off Q, x0 − (x0 Q) Qᵀ: the least-squares residual on intercept + covariates.
  The expression (`hapexp.inputs.expression`), the eQTL scan (`hapexp.linear.eqtl`) and
  the verdict (`hapexp.verdict.performance`, `hapexp.verdict.legacy_null`) all use it.
  `residualize_fitted`: the coefficients fitted on some samples (training people) and
  applied to all (the split-aware expression, `hapexp.inputs.expression.prepare_expression_split`).
- Principal components (`standardize_genotypes`, `principal_components`): genotype
  PCs as EIGENSOFT/plink compute them (`hapexp.variants.genotype_pcs`).
- Correlation (`rowwise_pearson`, `rowwise_spearman`, scalar `pearson`/`spearman`):
  NaN-aware, between matching rows; r is NaN with fewer than 3 pairs or when either row
  is constant within a relative `floor` (`below_floor`; 0 = exactly constant).
- p-values (`pval_from_t`, `pval_from_r2`, `r_pvalue`): the t-test of a
  (partial) correlation on dof = n − 2 − k (k covariates), two-sided.
- Held-out folds (`t_to_z`, `heldout_fold_test`, `combine_fold_z`): a predictor fitted on the cohort by
  cross-validation tested only on people its models never saw — the partial correlation
  within each outer fold, its exact normal score, combined across folds allowing for the
  folds' correlation (the elastic net's verdict p-value, `hapexp.verdict.performance`).
- Dependent correlations (`williams_t`): Williams' t / Steiger (1980) eq. 7, two
  predictors' correlations with the same expression on the same people.
- Permutation of people (`permuted_mean_r`, `permuted_mean_r_held_out`): Freedman–Lane
  permutation of residuals, one permutation for all rows, of a weighted mean of per-row
  correlations (optionally each row on its own held-out people).
- Multiple testing (`bh_fdr`): Benjamini-Hochberg. Storey's q-values, a port of R's
  qvalue package, live in `hapexp.linear.qvalue`.
- Seeding (`keyed_rng`): a generator per (seed, gene id).
- The beta approximation of permutation p-values (`beta_approx_pval`, tensorQTL's
  `calculate_beta_approx_pval` / `fit_beta_parameters`).
- Scores against eQTL slopes under permutation of people (`slope_score_correlation`,
  `permutation_pvalue`): the r of per-variant scores with the variants' OLS slopes, and its
  null with the phenotype permuted (LD between the variants kept).
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import scipy.optimize
from scipy import special, stats
from scipy.special import loggamma


def keyed_rng(seed: int, key: str) -> np.random.Generator:
    """A generator from a seed and a string key (a gene id): the same draws for a key
    whatever else runs, in any order or process."""
    return np.random.default_rng([int(seed), zlib.crc32(str(key).encode())])


# --------------------------------------------------------------------------- residualization
def covariate_design(cov: np.ndarray) -> np.ndarray:
    """Orthonormal basis (samples × k) of the centered covariates (tensorQTL's Residualizer.Q).

    Raises ValueError when the covariates are collinear (the degrees of freedom
    `n - 2 - k` would then be wrong).
    """
    cov = np.asarray(cov, dtype=float)
    if cov.shape[1] == 0:
        return np.zeros((cov.shape[0], 0))
    c0 = cov - cov.mean(axis=0)
    q, r = np.linalg.qr(c0)
    d = np.abs(np.diag(r))
    if d.size and (d.min() <= 1e-10 * max(d.max(), 1.0)):
        raise ValueError("covariates are collinear (or one is constant) after centering")
    return q


def residualize(x: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """Residuals of each row of `x` (features × samples) on intercept + covariates, with
    `q` their `covariate_design` (None or no columns: intercept only, i.e. centred rows)."""
    x = np.asarray(x, dtype=float)
    x0 = x - x.mean(axis=1, keepdims=True)
    if q is None or q.shape[1] == 0:
        return x0
    return x0 - (x0 @ q) @ q.T


def residualize_fitted(x: np.ndarray, cov: np.ndarray | None, fit: np.ndarray) -> np.ndarray:
    """Residuals of each row of `x` (features × samples) on intercept + covariates (`cov`,
    samples × k; None: intercept only), the least-squares coefficients fitted on the samples
    `fit` (boolean mask) alone and applied to every sample: y − (a + C b) with (a, b) from
    the `fit` columns. On the `fit` columns this is `residualize` of those columns; other
    columns do not influence it. Raises ValueError when the covariates are collinear over
    the `fit` samples."""
    x = np.asarray(x, dtype=float)
    fit = np.asarray(fit, dtype=bool)
    x0 = x - x[:, fit].mean(axis=1, keepdims=True)
    if cov is None or np.asarray(cov).shape[1] == 0:
        return x0
    c0 = np.asarray(cov, dtype=float)
    c0 = c0 - c0[fit].mean(axis=0)
    q = covariate_design(c0[fit])  # the collinearity check, on the samples that fit
    # b = R⁻¹ Qᵀ y over the fit samples, with c0[fit] = Q R (c0[fit] is centred: Q spans it)
    r = q.T @ c0[fit]
    b = np.linalg.solve(r, q.T @ x0[:, fit].T)  # k × features
    return x0 - (c0 @ b).T


class Residualizer:
    """Residualizes rows on intercept + covariates (samples × k, None = none) and knows the
    degrees of freedom left for one more regressor: dof = n − 2 − k."""

    def __init__(self, covariates: np.ndarray | None, n_samples: int | None = None):
        if covariates is None:
            covariates = np.zeros((n_samples, 0))
        covariates = np.asarray(covariates, dtype=float)
        self.q = covariate_design(covariates)
        self.dof = covariates.shape[0] - 2 - covariates.shape[1]

    def transform(self, m: np.ndarray) -> np.ndarray:
        return residualize(np.atleast_2d(m), self.q)


# --------------------------------------------------------------------------- principal components
def standardize_genotypes(dosage: np.ndarray) -> np.ndarray:
    """Variants × samples dosages (0..2, missing already imputed) standardized as
    EIGENSOFT's smartpca and plink's --pca do: (g − 2p) / sqrt(2p(1 − p)), p = the
    variant's in-sample ALT frequency (mean dosage / 2). Rows then have mean 0, and a
    variant in Hardy-Weinberg equilibrium variance 1. A monomorphic row has no variance:
    ValueError."""
    g = np.asarray(dosage, dtype=float)
    p = g.mean(axis=1, keepdims=True) / 2
    sd = np.sqrt(2 * p * (1 - p))
    if (sd <= 0).any():
        raise ValueError(f"{int((sd <= 0).sum())} monomorphic variants cannot be standardized")
    return (g - 2 * p) / sd


def principal_components(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `k` principal components of the samples of `x` (features × samples), by
    SVD of the row-centred matrix: returns (eigenvectors k × samples, unit norm — what
    plink's .eigenvec and EIGENSOFT's .evec hold; singular values of every component;
    fraction of the total variance each component explains). Signs are fixed so that
    each component's largest absolute feature loading is positive: the same answer on
    every BLAS build. ValueError when k exceeds min(features, samples) − 1."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=1, keepdims=True)
    k_max = min(x.shape) - 1
    if k > k_max:
        raise ValueError(
            f"{k} PCs asked but at most {k_max} exist for {x.shape[0]} features × {x.shape[1]} samples"
        )
    # x = W S Vᵀ: V's columns are the samples' eigenvectors, W's the features' loadings.
    w, s, vt = np.linalg.svd(x, full_matrices=False)
    w, vt = w[:, :k], vt[:k]
    signs = np.sign(w[np.abs(w).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    total = float((s**2).sum())
    return vt * signs[:, None], s, (s**2 / total if total > 0 else np.zeros_like(s))


# --------------------------------------------------------------------------- correlation
def below_floor(x: np.ndarray, floor) -> np.ndarray:
    """Rows of `x` (NaN = missing) whose spread is within `floor` × their RMS magnitude:
    sqrt(Σ(x − x̄)²) <= floor · sqrt(Σx²). `floor`: scalar or one per row."""
    x = np.asarray(x, dtype=float)
    mask = np.isfinite(x)
    n = mask.sum(axis=1)
    xm = np.where(mask, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xm.sum(axis=1) / n
    dev = np.where(mask, x - mean[:, None], 0.0)
    floor = np.broadcast_to(np.asarray(floor, dtype=float), (x.shape[0],))
    return (dev * dev).sum(axis=1) <= floor**2 * (xm * xm).sum(axis=1) + 1e-300


def rowwise_pearson(x: np.ndarray, y: np.ndarray, floor=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between matching rows of x and y (n_rows × n_samples), NaN-aware.

    Returns (r, n) where n counts the samples finite in both. r is NaN when a row has
    fewer than 3 usable samples or no variation beyond `floor` (relative, `below_floor`;
    0: exactly constant) on either side.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = np.isfinite(x) & np.isfinite(y)
    n = mask.sum(axis=1)
    xm = np.where(mask, x, np.nan)
    ym = np.where(mask, y, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(mask, x - np.nanmean(xm, axis=1, keepdims=True), 0.0)
        dy = np.where(mask, y - np.nanmean(ym, axis=1, keepdims=True), 0.0)
        sxy = (dx * dy).sum(axis=1)
        r = sxy / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    flat = below_floor(xm, floor) | below_floor(ym, floor)
    r = np.where(flat | (n < 3), np.nan, np.clip(r, -1.0, 1.0))
    return r, n


def rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks per row, NaN kept as NaN (ties averaged, like scipy.stats.spearmanr)."""
    return stats.rankdata(a, axis=1, method="average", nan_policy="omit")


def rowwise_spearman(x: np.ndarray, y: np.ndarray, floor=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho between matching rows (Pearson on ranks of the jointly finite samples).
    Constancy is judged on the values (ranks of rounding noise vary)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = np.isfinite(x) & np.isfinite(y)
    xr = rank_rows(np.where(mask, x, np.nan))
    yr = rank_rows(np.where(mask, y, np.nan))
    rho, n = rowwise_pearson(xr, yr, floor=0.0)
    r_values, _ = rowwise_pearson(x, y, floor)
    return np.where(np.isnan(r_values), np.nan, rho), n


def _one_row(rowwise, x, y, floor) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return np.nan
    r, _ = rowwise(x[None, :], y[None, :], floor)
    return float(r[0])


def pearson(x, y, floor=0.0) -> float:
    """Pearson r of two vectors: `rowwise_pearson` on one row (NaN below 3 values)."""
    return _one_row(rowwise_pearson, x, y, floor)


def spearman(x, y, floor=0.0) -> float:
    """Spearman rho of two vectors: `rowwise_spearman` on one row (NaN below 3 values)."""
    return _one_row(rowwise_spearman, x, y, floor)


# --------------------------------------------------------------------------- p-values
def pval_from_t(t: np.ndarray, dof) -> np.ndarray:
    """Two-sided p-value, 2·T_dof(-|t|) (scipy's t.sf kernel without its wrapper overhead)."""
    return 2.0 * special.stdtr(dof, -np.abs(t))


def pval_from_r2(r2: np.ndarray, dof: float) -> np.ndarray:
    """Two-sided p-value of a correlation given as r², t = sqrt(dof·r² / (1 − r²))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(dof * r2 / (1.0 - r2))
    return pval_from_t(t, dof)


def r_pvalue(r, n, k=0) -> np.ndarray:
    """Two-sided p-value of a (partial) correlation r from n pairs after k covariates:
    the t-test on dof = n − 2 − k (k = 0: scipy.stats.pearsonr's). NaN where r is not
    finite or no degree of freedom is left."""
    r = np.asarray(r, dtype=float)
    df = np.asarray(n, dtype=float) - 2 - np.asarray(k, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # |r| = 1: a finite t far in the tail (its p is the tail's, not 0)
        t = r * np.sqrt(df / np.maximum(1.0 - r * r, 1e-300))
        p = pval_from_t(t, df)
    return np.where(np.isfinite(r) & (df > 0), p, np.nan)


def t_to_z(t, dof) -> np.ndarray:
    """The normal score with the same one-sided tail probability as `t` on `dof` degrees of
    freedom (exact, not Fisher's approximation): z = Φ⁻¹(T_dof(t)), computed on the tail that
    keeps precision. NaN where t or dof is not finite or dof <= 0."""
    t = np.asarray(t, dtype=float)
    dof = np.asarray(dof, dtype=float)
    with np.errstate(invalid="ignore"):
        lower = special.stdtr(dof, -np.abs(t))  # tail probability, precise in the far tail
        z = -special.ndtri(lower) * np.sign(t)
    return np.where(np.isfinite(t) & np.isfinite(dof) & (dof > 0), z, np.nan)


def heldout_fold_test(pred, expr, labels, n_folds: int, fill, cov=None, rank: bool = False):
    """The test of predictions that are out-of-fold (each fold's from a model fitted on the
    other folds' people) against expression, using only within-fold statistics.

    `pred`, `expr`: rows × samples; `labels`: the samples' outer-fold labels 0..n_folds-1,
    the same for every row; `cov`: samples × k covariates (None: intercept only). Per fold f:
    both rows residualized on intercept + covariates over the fold's people, their Pearson r
    (`rank`: of the residualized ranks, the partial Spearman) with t on dof_f = n_f − 2 − k, and its exact
    normal score z_f (`t_to_z`): given the other folds' people, z_f ~ N(0, 1) under the null.

    A fold whose prediction is constant (an empty model) takes its z from `fill` (rows ×
    n_folds standard normal draws, seeded by the caller), as PredictDB draws a uniform p for
    a constant prediction. Dropping such folds instead is biased: whether fold g's model is
    empty depends on fold f's people, so the folds left carry a selected sign (measured on
    null genes: mean z of the folds used −0.56 when one fold of five is, +0.79 when all are).

    Combined: Z = Σ w_f z_f / sqrt(Σ w_f² + c Σ_{f≠g both fitted} w_f w_g), w_f = √dof_f,
    c = 1/(n_folds − 1): fold f's model is trained on fold g's people and fold g's on fold
    f's, so, to first order, z_f and z_g share one of the n_folds − 1 equal terms each is a
    sum of (measured on null genes: 0.20 between two fitted folds of five); a drawn z shares
    nothing. Returns (Z, two-sided p, Σ dof_f over the fitted folds, number of fitted
    folds); NaN where no fold has a fitted z."""
    pred = np.atleast_2d(np.asarray(pred, dtype=float))
    expr = np.atleast_2d(np.asarray(expr, dtype=float))
    fill = np.atleast_2d(np.asarray(fill, dtype=float))
    labels = np.asarray(labels)
    rows = pred.shape[0]
    k = 0 if cov is None else np.asarray(cov).shape[1]
    zs = np.full((rows, n_folds), np.nan)
    w = np.zeros((rows, n_folds))  # √dof_f of every fold with a dof, fitted or not
    for f in range(n_folds):
        cols = np.flatnonzero(labels == f)
        dof = cols.size - 2 - k
        if dof <= 0:
            continue
        q = None if k == 0 else covariate_design(np.asarray(cov, dtype=float)[cols])
        pr, er = pred[:, cols], expr[:, cols]
        if rank:  # Spearman's partial correlation: ranks first, then residualized
            pr, er = rank_rows(pr), rank_rows(er)
        pr, er = residualize(pr, q), residualize(er, q)
        # an empty model's fold: constant before residualizing (its residual is rounding)
        flat = below_floor(pred[:, cols], 1e-12) | below_floor(expr[:, cols], 1e-12)
        r, _ = rowwise_pearson(pr, er)
        r = np.where(flat, np.nan, r)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = r * np.sqrt(dof / np.maximum(1.0 - r * r, 1e-300))
        zs[:, f] = t_to_z(t, dof)
        w[:, f] = math.sqrt(dof)
    z, p = combine_fold_z(zs, w, fill)
    dof_f = np.array([(labels == f).sum() - 2 - k for f in range(n_folds)], dtype=float)
    return z, p, np.where(np.isfinite(zs), dof_f, 0.0).sum(axis=1), np.isfinite(zs).sum(axis=1)


def combine_fold_z(zs, w, fill):
    """Per row, the outer folds' normal scores `zs` (rows × K; NaN: the fold's model is empty,
    its z taken from `fill`) combined with weights `w` (rows × K; 0 for a fold with no dof):
    Z = Σ w_f z_f / sqrt(Σ w_f² + Σ_{f≠g both fitted} w_f w_g / (K − 1)) (`heldout_fold_test`'s
    doc) and its two-sided p. NaN where no fold has a fitted z."""
    zs = np.atleast_2d(np.asarray(zs, dtype=float))
    w = np.broadcast_to(np.asarray(w, dtype=float), zs.shape)
    n_folds = zs.shape[1]
    fitted = np.isfinite(zs) & (w > 0)
    z_all = np.where(fitted, zs, np.asarray(fill, dtype=float))
    c = 1.0 / (n_folds - 1) if n_folds > 1 else 0.0
    wf = np.where(fitted, w, 0.0)
    var = (w * w).sum(axis=1) + c * (wf.sum(axis=1) ** 2 - (wf * wf).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(fitted.any(axis=1), (w * z_all).sum(axis=1) / np.sqrt(var), np.nan)
    return z, np.where(np.isfinite(z), 2.0 * special.ndtr(-np.abs(z)), np.nan)


def slope_score_correlation(scores, genotypes, phenotype, residualizer: Residualizer, perm_ix=None):
    """Pearson r between per-variant `scores` and the OLS slopes of `phenotype` on each
    variant (rows of `genotypes`, variants × samples), on intercept + the covariates of
    `residualizer` (tensorQTL's slope: residualized genotype and phenotype); and the same
    r for the phenotype permuted by each row of `perm_ix` (permutations × samples; the
    residualized phenotype is permuted, then residualized again: Freedman–Lane, as the eQTL
    permutation pass does). The genotypes are not permuted, so LD between the variants
    stays in every null slope vector. Variants without residual variance are left out.
    Returns (r, r under each permutation)."""
    g = residualizer.transform(np.asarray(genotypes, dtype=float))
    ss = np.einsum("ij,ij->i", g, g)
    ok = ss > 1e-12 * max(float(ss.max(initial=0.0)), 1e-300)
    gw = g[ok] / ss[ok, None]  # slope of y on variant v = gw[v] · y_res
    y = residualizer.transform(np.asarray(phenotype, dtype=float))[0]
    ys = y[None, :] if perm_ix is None else np.vstack([y, residualizer.transform(y[np.asarray(perm_ix)])])
    slopes = ys @ gw.T  # (1 + permutations) × variants
    s = np.broadcast_to(np.asarray(scores, dtype=float)[ok], slopes.shape)
    r, _ = rowwise_pearson(slopes, s)
    return float(r[0]), r[1:]


def permutation_pvalue(observed: float, null) -> float:
    """Two-sided permutation p-value (1 + #{|null| ≥ |observed|}) / (1 + #null) over the
    finite null values (a 1e-12 relative tolerance: ties in float arithmetic count); NaN
    when `observed` is not finite or there is no null."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return np.nan
    a = abs(float(observed))
    return float((1 + np.sum(np.abs(null) >= a * (1 - 1e-12))) / (1 + null.size))


# --------------------------------------------------------------------------- dependent correlations
def williams_t(r12, r13, r23, n, k=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Williams' t for H0 ρ12 = ρ13, two correlations that share variable 1 on the same
    n samples (Steiger 1980, Psychol. Bull. 87:245, eq. 7; psych::r.test's "t"):

        t = (r12 − r13) · sqrt((m − 1)(1 + r23) / (2 (m − 1)/(m − 3) |R| + r̄² (1 − r23)³)),
        |R| = 1 − r12² − r13² − r23² + 2 r12 r13 r23,  r̄ = (r12 + r13)/2,  dof = m − 3.

    With k covariates partialled out of all three variables (the r's are partial
    correlations of covariate-residualized vectors), m = n − k: each covariate costs one
    degree of freedom, as in the partial-correlation t-test (`r_pvalue`: n − 2 − k).
    Returns (t, dof, two-sided p); NaN where a value is not finite or m − 3 <= 0."""
    r12, r13, r23 = (np.asarray(v, dtype=float) for v in (r12, r13, r23))
    m = np.asarray(n, dtype=float) - np.asarray(k, dtype=float)
    det = 1.0 - r12 * r12 - r13 * r13 - r23 * r23 + 2.0 * r12 * r13 * r23
    rbar = (r12 + r13) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = 2.0 * (m - 1.0) / (m - 3.0) * det + rbar * rbar * (1.0 - r23) ** 3
        t = (r12 - r13) * np.sqrt((m - 1.0) * (1.0 + r23) / denom)
    dof = m - 3.0
    ok = np.isfinite(t) & (dof > 0)
    t = np.where(ok, t, np.nan)
    return t, np.where(dof > 0, dof, np.nan), np.where(ok, pval_from_t(t, dof), np.nan)


# --------------------------------------------------------------------------- permutation of people
def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay 0)."""
    norm = np.sqrt((x * x).sum(axis=1, keepdims=True))
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def permuted_mean_r(
    e: np.ndarray, p: np.ndarray, q: np.ndarray | None, weights: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums of per-row partial correlations and their Freedman–Lane permutations,
    one permutation of the people for all rows.

    `e`: rows × n, the residuals of the reduced model (the expression on intercept +
    covariates; residualized again here, which changes nothing); `p`: rows × n predictions,
    residualized here on `q` (`covariate_design`, None = intercept only); `weights`: rows × S
    (e.g. 1/|set| for the rows of each gene set); `index`: B × n, permutation b maps person
    i to the residual of person index[b, i]. Returns (observed (S,), permuted (B × S)).

    Statistic: T = Σ_g w_g r_g, r_g the partial r of `hapexp.verdict.performance.gene_table`.
    Freedman–Lane re-residualizes the permuted residuals on the covariates: that leaves the
    numerator ⟨P(e_g∘π), p̃_g⟩ = ⟨e_g∘π, p̃_g⟩ unchanged (p̃_g is orthogonal to [1, covariates]);
    the denominator |P(e_g∘π)| is taken at its expectation over permutations,
    |e_g|·sqrt(1 − k/(n − 1)) (not per permutation: that would cost O(n·k) per gene and
    permutation). So T* is linear in the permutation: T*_s(π) = c Σ_i M_s[π(i), i] with
    M_s = Σ_g w_gs ê_g ⊗ p̂_g (unit rows; one n × n matrix product) and
    c = 1/sqrt(1 − k/(n − 1)); B permutations cost O(B·n) after it, whatever the number of rows.
    Checked against Freedman–Lane with the exact re-residualized r*: 5.0 % vs 5.2 % of 600
    null cohorts at p <= 0.05 with k = 20 covariates for n = 100 people."""
    en = _unit_rows(residualize(e, q))
    pn = _unit_rows(residualize(p, q))
    w = np.asarray(weights, dtype=float)
    index = np.atleast_2d(np.asarray(index))
    cols = np.arange(en.shape[1])
    # Re-residualizing a permuted residual removes on average a fraction k/(n − 1) of its
    # squared norm (E[(e∘π)(e∘π)ᵀ] = |e|²/(n − 1)·(I − 11ᵀ/n) for centred e, Q orthonormal
    # and orthogonal to 1): the permuted correlations are scaled by that expected
    # denominator, |P(e∘π)| ≈ |e|·sqrt(1 − k/(n − 1)), else their spread would be too
    # narrow by k/n (liberal with many expression PCs).
    k = 0 if q is None else q.shape[1]
    scale = 1.0 / np.sqrt(1.0 - k / (en.shape[1] - 1.0))
    obs, null = np.zeros(w.shape[1]), np.zeros((index.shape[0], w.shape[1]))
    for s in range(w.shape[1]):
        m = en.T @ (pn * w[:, s : s + 1])  # m[j, i] = Σ_g w_gs ê_g[j] p̂_g[i]
        obs[s] = np.trace(m)
        null[:, s] = scale * m[index, cols].sum(axis=1)
    return obs, null


def permuted_mean_r_held_out(
    e: np.ndarray, p: np.ndarray, held_out: np.ndarray, weights: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`permuted_mean_r` with each row's correlation on its own people only (`held_out`:
    rows × n booleans, e.g. an outer fold its model never saw), permuted among them.

    `e`, `p`: residualized rows × n (on all people's covariates); each row is centred on its
    held-out people. `keys`: B × n, one random order of the people per permutation, shared
    by all rows: in each row, its held-out people in sample order receive the residuals of
    the same people in key order — rows with the same held-out people get the same shuffle
    (the correlation between rows is kept). Returns (observed (S,), permuted (B × S))."""
    held_out = np.asarray(held_out, bool)
    w = np.asarray(weights, dtype=float)
    keys = np.atleast_2d(np.asarray(keys))
    obs, null = np.zeros(w.shape[1]), np.zeros((keys.shape[0], w.shape[1]))
    count = held_out.sum(axis=1)
    # small integer keys: numpy's stable argsort is then a radix sort, O(m) per row
    if keys.size and keys.max() < 2**15:
        keys = keys.astype(np.int16)
    for m in np.unique(count[count >= 3]):
        rows = np.flatnonzero(count == m)
        # each row's held-out people, in sample order
        members = np.argsort(~held_out[rows], axis=1, kind="stable")[:, :m]
        ec, pc = (np.take_along_axis(x[rows], members, axis=1) for x in (e, p))
        en = _unit_rows(ec - ec.mean(axis=1, keepdims=True))
        pn = _unit_rows(pc - pc.mean(axis=1, keepdims=True))
        obs += (en * pn).sum(axis=1) @ w[rows]
        for b, key in enumerate(keys):
            order = np.argsort(key[members], axis=1, kind="stable")
            null[b] += (np.take_along_axis(en, order, axis=1) * pn).sum(axis=1) @ w[rows]
    return obs, null


# --------------------------------------------------------------------------- multiple testing
def bh_fdr(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    # Step-up: q_(i) = min_{j >= i} p_(j) m / j, capped at 1.
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    res = np.empty(m)
    res[order] = q
    out[ok] = res
    return out


# --------------------------------------------------------------------------- beta approximation
def _beta_shape1_from_dof(r2, dof):
    pval = pval_from_r2(r2, dof)
    mean, var = pval.mean(), pval.var()
    return mean * (mean * (1.0 - mean) / var - 1.0)


def _beta_nll(params, x):
    a, b = params
    if a <= 0 or b <= 0:
        return np.inf
    logbeta = loggamma(a) + loggamma(b) - loggamma(a + b)
    return (1.0 - a) * np.sum(np.log(x)) + (1.0 - b) * np.sum(np.log(1.0 - x)) + len(x) * logbeta


def _beta_mle_polish(start, x, steps: int = 30) -> tuple[float, float]:
    """Newton's method on the Beta negative log-likelihood from `start` (a, b).

    The nll is convex in (a, b) (an exponential family in its natural parameters), with
    gradient n·(ψ(a) − ψ(a+b)) − Σ ln x, n·(ψ(b) − ψ(a+b)) − Σ ln(1 − x) and Hessian
    n·[[ψ′(a) − ψ′(a+b), −ψ′(a+b)], [−ψ′(a+b), ψ′(b) − ψ′(a+b)]]. A step is halved while it
    leaves the positive quadrant or does not shrink the gradient; iteration stops when
    the step is at rounding level. Returns `start` unchanged if it is not finite and
    positive."""
    a, b = (float(v) for v in start)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
        return a, b
    n, s1, s2 = len(x), np.sum(np.log(x)), np.sum(np.log1p(-x))

    def gradient(a, b):
        dab = special.digamma(a + b)
        return np.array([n * (special.digamma(a) - dab) - s1, n * (special.digamma(b) - dab) - s2])

    g = gradient(a, b)
    for _ in range(steps):
        tab = special.polygamma(1, a + b)
        hess = n * np.array([[special.polygamma(1, a) - tab, -tab], [-tab, special.polygamma(1, b) - tab]])
        step = np.linalg.solve(hess, g)
        if abs(step[0]) <= 4e-16 * a and abs(step[1]) <= 4e-16 * b:
            break
        t = 1.0
        while t > 1e-9:
            na, nb = a - t * step[0], b - t * step[1]
            if na > 0 and nb > 0:
                ng = gradient(na, nb)
                if np.all(np.isfinite(ng)) and np.linalg.norm(ng) < np.linalg.norm(g):
                    break
            t /= 2
        else:
            break
        a, b, g = na, nb, ng
    return a, b


def beta_approx_pval(r2_perm: np.ndarray, r2_nominal: float, dof: float) -> dict[str, float]:
    """tensorQTL's beta approximation: effective dof, Beta(a, b) MLE, pval_beta.

    `r2_perm`: the maximal r² of each permutation; `r2_nominal`: the observed one; `dof`:
    the nominal degrees of freedom (n − 2 − k). The effective dof makes the permutation
    p-values' Beta fit have shape1 = 1 (Newton on log dof, Nelder-Mead as fallback); the
    Beta(a, b) fit to them starts from the method of moments, runs Nelder-Mead at tol
    1e-4 as tensorQTL's `fit_beta_parameters`, then Newton steps to the exact MLE."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            log_dof = scipy.optimize.newton(
                lambda x: np.log(_beta_shape1_from_dof(r2_perm, np.exp(x))), np.log(dof), tol=1e-4, maxiter=50
            )
            true_dof = float(np.exp(log_dof))
        except (RuntimeError, FloatingPointError, ValueError):
            res = scipy.optimize.minimize(
                lambda x: np.abs(_beta_shape1_from_dof(r2_perm, x[0]) - 1),
                [dof],
                method="Nelder-Mead",
                tol=1e-4,
            )
            true_dof = float(res.x[0])
        pval = pval_from_r2(r2_perm, true_dof)
        mean, var = pval.mean(), pval.var()
        a0 = mean * (mean * (1 - mean) / var - 1)
        b0 = a0 * (1 / mean - 1)
        # tol 1e-4 as tensorQTL's fit_beta_parameters, then Newton steps to the exact MLE:
        # where Nelder-Mead stops depends on 1e-14 noise in its input (BLAS thread counts
        # moved pval_beta by 8e-6 between a 1-thread and a 2-thread job); the polished
        # optimum is a smooth function of the data, so runs agree to rounding
        res = scipy.optimize.minimize(lambda x: _beta_nll(x, pval), [a0, b0], method="Nelder-Mead", tol=1e-4)
        a, b = _beta_mle_polish(res.x, pval)
        pval_true_dof = float(pval_from_r2(np.array([r2_nominal]), true_dof)[0])
        pval_beta = float(stats.beta.cdf(pval_true_dof, a, b))
    return {
        "beta_shape1": a,
        "beta_shape2": b,
        "true_df": true_dof,
        "pval_true_df": pval_true_dof,
        "pval_beta": pval_beta,
    }


# --------------------------------------------------------------------------- ranking: ROC / PR
# A score ranks items as candidates for a binary label (e.g. a variant's |ISM| for being
# causal). Ties are handled as scikit-learn does: AUROC is the Mann–Whitney U with average
# ranks (a tied positive–negative pair counts 1/2); AUPRC is the average precision over the
# distinct score thresholds (tied items enter together). ±inf are ordinary values (callers
# put unknown scores at −inf: tied with each other, below every known score); NaN is not
# allowed.
def _ranking_inputs(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError("scores and labels must have the same length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN: rank unknown scores explicitly (e.g. as -inf)")
    return s, y


def auroc(scores, labels) -> float:
    """Area under the ROC curve (= P(score of a positive > score of a negative), ties ½):
    sklearn's `roc_auc_score`. NaN without both classes."""
    s, y = _ranking_inputs(scores, labels)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    r = stats.rankdata(s)  # average ranks; -inf and inf rank like numbers
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _threshold_counts(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives at each distinct score threshold (score ≥ threshold),
    thresholds decreasing: (tp, fp, thresholds)."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last item of each tie group
    tp = np.cumsum(y)[last].astype(float)
    fp = (last + 1) - tp
    return tp, fp, s[last]


def average_precision(scores, labels) -> float:
    """Area under the precision–recall curve as average precision, Σ (Rₙ − Rₙ₋₁) Pₙ over the
    distinct thresholds: sklearn's `average_precision_score`. NaN without a positive."""
    s, y = _ranking_inputs(scores, labels)
    n1 = int(y.sum())
    if n1 == 0:
        return np.nan
    tp, fp, _ = _threshold_counts(s, y)
    precision = tp / (tp + fp)
    recall = tp / n1
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (false-positive rate, true-positive rate) from (0, 0) through every
    distinct threshold to (1, 1)."""
    s, y = _ranking_inputs(scores, labels)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return np.array([np.nan]), np.array([np.nan])
    tp, fp, _ = _threshold_counts(s, y)
    return np.r_[0.0, fp / n0], np.r_[0.0, tp / n1]


def pr_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """The precision–recall curve (recall, precision) at every distinct threshold, highest
    threshold first (the step curve whose area is `average_precision`)."""
    s, y = _ranking_inputs(scores, labels)
    n1 = int(y.sum())
    if n1 == 0:
        return np.array([np.nan]), np.array([np.nan])
    tp, fp, _ = _threshold_counts(s, y)
    return tp / n1, tp / (tp + fp)


def cluster_bootstrap(groups, statistic, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap over clusters: `groups` labels each item with its cluster (a gene); each
    replicate draws as many clusters as there are, with replacement, and evaluates
    `statistic(index)` on the items of the drawn clusters (a cluster drawn twice counts
    twice). Returns the replicates' values, one row per replicate when the statistic returns
    several (NaN where it is undefined)."""
    groups = np.asarray(groups)
    _, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(inverse.max(initial=-1) + 1)]
    if not members:
        return np.full(int(n_boot), np.nan)
    out = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(members), len(members))
        out.append(statistic(np.concatenate([members[k] for k in pick])))
    return np.asarray(out, dtype=float)


def percentile_ci(replicates, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap `replicates` (NaN, NaN without any)."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.nan, np.nan
    a = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(r, [a, 1.0 - a])
    return float(lo), float(hi)


def sign_agreement_test(a, b) -> tuple[int, int, float, float]:
    """Do `a` and `b` point the same way? Over the pairs where both are finite and non-zero:
    (n, number agreeing, fraction agreeing, two-sided exact binomial p against ½)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
    n = int(ok.sum())
    if n == 0:
        return 0, 0, np.nan, np.nan
    k = int(np.sum(np.sign(a[ok]) == np.sign(b[ok])))
    return n, k, k / n, float(stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue)
