"""PrediXcan elastic net with PredictDB's nested cross-validation (gtex_v7_nested_cv_elnet.R).

Faithful to PredictDB / glmnet where it matters for the numbers:

- **y**: the prepared (covariate-residualized) expression of the gene, centered and
  scaled to unit standard deviation (R's `scale`, ddof=1) — PredictDB's
  `adjust_for_covariates`. Weights and out-of-fold predictions are in these units.
- **folds** (`fold_ids`): balanced, `rep(1:k, ceiling(n/k))[1:n]` shuffled — PredictDB's
  `generate_fold_ids`, with numpy's seeded generator (seed, gene id) instead of R's.
- **glmnet gaussian fit** (`glmnet_path`): predictors standardized with the 1/n
  standard deviation, response standardized internally (so the ridge part is scaled
  by 1/sd(y) exactly as glmnet does), intercept unpenalized; objective
  `1/(2n)·RSS + λ(α|β|₁ + (1-α)/2·|β|²)`. Solved by scikit-learn's coordinate descent
  (`enet_path`, warm starts along the path, gap-safe screening).
- **λ path** (`lambda_path`): `λ_max = max_j |x̃_jᵀ(y - ȳ)| / (n α)` (x̃ standardized),
  `nlambda = 100` log-spaced down to `λ_max · ratio` with `ratio = 1e-4` if n > p
  else `1e-2`; the path stops early as glmnet's does (after ≥ 5 λ, when the
  deviance explained changes by < 1e-5 relative, or exceeds 0.999).
- **cv.glmnet** (`cv_glmnet`): λ sequence from the full training data, each fold fit
  on it, `cvm` = mean squared error over all held-out individuals, `lambda.min` =
  the largest λ attaining the minimum.
- **nested CV** (`nested_cv`): outer folds; inner cv.glmnet picks λ on the training
  part; the held-out part is predicted. Per outer fold: R² = 1 - RSS/Σy², ρ =
  cor(pred, y) (0 when the prediction is constant), z = atanh(ρ)·sqrt(n_test - 3),
  p = cor.test p-value (uniform random when constant). `rho_avg` = mean ρ, `rho_se`
  = sd(ρ), `rho_zscore` = Σz/√k (Stouffer), `zscore_pval` = 2Φ(-|z|), `R2` =
  rho_avg². The held-out predictions of all outer folds form the out-of-fold
  prediction of every individual.
- **final model**: cv.glmnet on all individuals (fresh inner folds), weights at
  `lambda.min`; `in_sample_R2` from that fit. Genes with < 2 variants are not fit.
"""

from __future__ import annotations

import logging
import math
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)
_RNG = np.random.RandomState(0)  # required by the solver's signature; unused (cyclic order)
_SWEEPS = 3  # coordinate sweeps per solver call between convergence checks

METRIC_COLUMNS = [
    "gene_id",
    "gene_name",
    "alpha",
    "n_snps_in_window",
    "n_snps_in_model",
    "lambda_min_mse",
    "test_R2_avg",
    "test_R2_sd",
    "in_sample_R2",
    "nested_cv_fisher_pval",
    "rho_avg",
    "rho_se",
    "rho_zscore",
    "R2",
    "zscore_pval",
    "cv_seed",
]


def fold_ids(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Balanced fold labels 0..k-1 in random order (PredictDB's generate_fold_ids)."""
    reps = math.ceil(n / k)
    return rng.permutation(np.tile(np.arange(k), reps)[:n])


def gene_rng(seed: int, gene_id: str) -> np.random.Generator:
    """Per-gene generator: results do not depend on chunking or thread scheduling."""
    return np.random.default_rng([int(seed), zlib.crc32(str(gene_id).encode())])


def standardize(x: np.ndarray):
    """Column means and 1/n standard deviations (glmnet's), standardized copy (Fortran order)."""
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    xs = np.asfortranarray((x - mean) / sd)
    return xs, mean, sd


def lambda_path(xs: np.ndarray, yc: np.ndarray, alpha: float, nlambda: int = 100, ratio: float | None = None):
    """glmnet's default λ sequence for standardized `xs` and centered `yc`."""
    n, p = xs.shape
    if ratio is None:
        ratio = 1e-4 if n > p else 1e-2
    lam_max = np.max(np.abs(xs.T @ yc)) / (n * alpha)
    if lam_max <= 0:
        return np.array([0.0])
    return lam_max * ratio ** (np.arange(nlambda) / (nlambda - 1))


def glmnet_path(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    lambdas: np.ndarray | None = None,
    early_stop: bool = True,
    tol: float = 1e-7,
    thresh: float = 1e-7,
    max_sweeps: int = 100000,
):
    """Fit a glmnet-equivalent gaussian elastic-net path.

    Returns (lambdas, beta (p × L, original scale), intercept (L,)). With
    `lambdas=None` the λ sequence is glmnet's default and the path may stop early
    as glmnet's does.
    """
    n, p = x.shape
    xs, xm, xsd = standardize(x)
    ym = y.mean()
    yc = y - ym
    ysd = yc.std()
    if ysd == 0:
        lam = np.array([0.0]) if lambdas is None else np.asarray(lambdas)
        return lam, np.zeros((p, lam.size)), np.full(lam.size, ym)
    if lambdas is None:
        lambdas = lambda_path(xs, yc, alpha)
    else:
        early_stop = False
    lambdas = np.asarray(lambdas, dtype=float)
    ys = yc / ysd
    scaled = lambdas / ysd
    with warnings.catch_warnings():
        # the solver warns each time it returns after its few sweeps; convergence is ours to judge
        warnings.simplefilter("ignore")
        return _path_loop(
            xs, ys, scaled, lambdas, alpha, tol, thresh, max_sweeps, early_stop, xm, xsd, ym, ysd
        )


def _path_loop(xs, ys, scaled, lambdas, alpha, tol, thresh, max_sweeps, early_stop, xm, xsd, ym, ysd):
    from sklearn.linear_model import _cd_fast as cd_fast

    n, p = xs.shape
    coefs = []
    ever = np.zeros(p, dtype=bool)
    grad = xs.T @ ys / n
    tss = float(ys @ ys)
    prev_dev, prev_lam = 0.0, scaled[0]
    for k, lam in enumerate(scaled):
        # Sequential strong rule (Tibshirani et al. 2012, as glmnet): candidates are
        # the ever-active set plus features likely to enter; then check KKT on all.
        strong = ever | (np.abs(grad) >= alpha * (2 * lam - prev_lam))
        while True:
            idx = np.flatnonzero(strong)
            coef = np.zeros(p)
            if idx.size:
                # scikit-learn's Cython coordinate descent (what enet_path calls, objective
                # scaled by n), a few sweeps at a time, stopped by glmnet's criterion: the
                # largest squared coefficient change (standardized scale) below `thresh`,
                # or by scikit-learn's duality gap (`tol`), whichever comes first.
                w = np.ascontiguousarray(coefs[-1][idx]) if coefs else np.zeros(idx.size)
                xsub = np.asfortranarray(xs[:, idx])
                l1, l2 = lam * alpha * n, lam * (1 - alpha) * n
                for _ in range(max_sweeps // _SWEEPS):
                    w_old = w.copy()
                    *_, n_iter = cd_fast.enet_coordinate_descent(w, l1, l2, xsub, ys, _SWEEPS, tol, _RNG)
                    if n_iter < _SWEEPS or np.max((w - w_old) ** 2) < thresh:
                        break
                coef[idx] = w
            resid = ys - xs[:, idx] @ coef[idx] if idx.size else ys.copy()
            grad = xs.T @ resid / n
            viol = ~strong & (np.abs(grad) > alpha * lam * (1 + 1e-9))
            if not viol.any():
                break
            strong |= viol
        ever |= coef != 0
        coefs.append(coef)
        prev_lam = lam
        if early_stop:
            dev = 1.0 - float(resid @ resid) / tss
            if k + 1 >= 5 and (dev - prev_dev < 1e-5 * dev or dev > 0.999):
                break
            prev_dev = dev
    n_done = len(coefs)
    b = np.column_stack(coefs) * (ysd / xsd)[:, None]
    intercept = ym - xm @ b
    return lambdas[:n_done], b, intercept


def cv_glmnet(x: np.ndarray, y: np.ndarray, foldid: np.ndarray, alpha: float, thresh: float = 1e-7):
    """cv.glmnet(type.measure='mse', foldid=foldid): returns dict with lambdas, cvm, i_min, beta, intercept."""
    lambdas, beta, a0 = glmnet_path(x, y, alpha, thresh=thresh)
    sq = np.zeros(lambdas.size)
    for f in np.unique(foldid):
        tr, te = foldid != f, foldid == f
        _, b, i = glmnet_path(x[tr], y[tr], alpha, lambdas=lambdas, thresh=thresh)
        pred = x[te] @ b + i
        sq += ((y[te][:, None] - pred) ** 2).sum(axis=0)
    cvm = sq / y.size
    i_min = int(np.flatnonzero(cvm <= cvm.min())[0])  # largest λ at the minimum
    return {"lambdas": lambdas, "cvm": cvm, "i_min": i_min, "beta": beta[:, i_min], "intercept": a0[i_min]}


def _fold_perf(y_test, y_pred, rng):
    r2 = 1.0 - np.sum((y_test - y_pred) ** 2) / np.sum(y_test**2)
    n = y_test.size
    if np.std(y_pred) > 0 and n > 2:
        rho = float(np.corrcoef(y_pred, y_test)[0, 1])
        t = rho * math.sqrt((n - 2) / max(1 - rho * rho, 1e-300))
        pval = float(2 * stats.t.sf(abs(t), n - 2))
    else:
        rho, pval = 0.0, float(rng.uniform())
    z = math.atanh(min(max(rho, -1 + 1e-15), 1 - 1e-15)) * math.sqrt(n - 3) if n > 3 else np.nan
    return r2, rho, z, pval


def gene_folds(n: int, outer_folds: int, inner_folds: int, rng):
    """All fold assignments of a gene, drawn up front in a fixed order: outer folds, the
    inner folds of each outer training set, the folds of the final fit. (Drawing them
    first keeps them independent of the random p-values drawn for constant predictions,
    and lets other implementations reuse identical folds.)"""
    outer = fold_ids(n, outer_folds, rng)
    inner = [fold_ids(int((outer != k).sum()), inner_folds, rng) for k in range(outer_folds)]
    final = fold_ids(n, inner_folds, rng)
    return outer, inner, final


def nested_cv(x, y, outer, inner, alpha: float, rng, thresh: float = 1e-7):
    """PredictDB's nested_cv_elastic_net_perf on the given folds, plus out-of-fold predictions."""
    n = y.size
    outer_folds = len(inner)
    oof = np.empty(n)
    perf = []
    for k in range(outer_folds):
        tr, te = outer != k, outer == k
        try:
            fit = cv_glmnet(x[tr], y[tr], inner[k], alpha, thresh=thresh)
            pred = x[te] @ fit["beta"] + fit["intercept"]
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as e:  # PredictDB: predict the mean
            log.warning("inner fit failed (%s); predicting the training mean", e)
            pred = np.full(int(te.sum()), y[tr].mean())
        oof[te] = pred
        perf.append(_fold_perf(y[te], pred, rng))
    r2s, rhos, zs, ps = (np.array(v) for v in zip(*perf, strict=True))
    rho_zscore = zs.sum() / math.sqrt(outer_folds)
    return {
        "test_R2_avg": r2s.mean(),
        "test_R2_sd": r2s.std(ddof=1),
        "nested_cv_fisher_pval": float(stats.chi2.sf(-2 * np.log(ps).sum(), 2 * outer_folds)),
        "rho_avg": rhos.mean(),
        "rho_se": rhos.std(ddof=1),
        "rho_zscore": rho_zscore,
        "R2": rhos.mean() ** 2,
        "zscore_pval": float(2 * stats.norm.sf(abs(rho_zscore))),
    }, oof


def scale_expression(y: np.ndarray) -> np.ndarray:
    """R's scale(): center and divide by the ddof=1 standard deviation."""
    y = np.asarray(y, dtype=float)
    sd = y.std(ddof=1)
    return (y - y.mean()) / (sd if sd > 0 else 1.0)


def fit_gene(gene_id, x, y, *, alpha, outer_folds, inner_folds, seed, thresh=1e-7):
    """Nested CV + final fit of one gene. Returns (metrics dict, oof (n,), weights (p,) or None)."""
    rng = gene_rng(seed, gene_id)
    n, p = x.shape
    m = {"gene_id": gene_id, "alpha": alpha, "n_snps_in_window": p, "n_snps_in_model": 0, "cv_seed": seed}
    if p < 2:
        return m, np.full(n, np.nan), None
    y = scale_expression(y)
    outer, inner, final = gene_folds(n, outer_folds, inner_folds, rng)
    perf, oof = nested_cv(x, y, outer, inner, alpha, rng, thresh=thresh)
    m.update(perf)
    fit = cv_glmnet(x, y, final, alpha, thresh=thresh)
    pred = x @ fit["beta"] + fit["intercept"]
    m["in_sample_R2"] = 1.0 - np.sum((y - pred) ** 2) / np.sum(y**2)
    m["lambda_min_mse"] = fit["lambdas"][fit["i_min"]]
    w = fit["beta"]
    m["n_snps_in_model"] = int(np.count_nonzero(w))
    return m, oof, w


def fit_chunk(
    dosages,
    genes: pd.DataFrame,
    expression: pd.DataFrame,
    *,
    alpha,
    outer_folds,
    inner_folds,
    seed,
    threads=1,
    thresh=1e-7,
):
    """Fit every gene of `genes` (with start0/end0 windows). Returns (metrics, oof, weights, covariances)."""
    samples = list(expression.columns)
    if list(dosages.samples) != samples:
        raise ValueError("dosages and expression must have the same samples in the same order")
    jobs = []
    for row in genes.itertuples(index=False):
        if row.gene_id not in expression.index:
            continue
        d = dosages.window(str(row.chrom), int(row.start0), int(row.end0))
        jobs.append((row, d))

    def run(job):
        row, d = job
        x = np.ascontiguousarray(d.dosage.T)
        y = expression.loc[row.gene_id].to_numpy(dtype=float)
        return fit_gene(
            row.gene_id,
            x,
            y,
            alpha=alpha,
            outer_folds=outer_folds,
            inner_folds=inner_folds,
            seed=seed,
            thresh=thresh,
        )

    # Warning filters are process-global and catch_warnings is not thread-safe: silence
    # the solver's per-call convergence warnings here, around all threads.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        warnings.simplefilter("ignore", category=UserWarning)
        results = list(pool.map(run, jobs))
    metrics, oofs, weights, covs = [], {}, [], []
    for (row, d), (m, oof, w) in zip(jobs, results, strict=True):
        m["gene_name"] = getattr(row, "name", row.gene_id)
        metrics.append(m)
        oofs[row.gene_id] = oof
        if w is None or not np.any(w):
            continue
        nz = np.flatnonzero(w)
        weights.append(
            pd.DataFrame(
                {
                    "gene": row.gene_id,
                    "rsid": d.variant_id[nz].astype(str),
                    "varID": d.variant_id[nz].astype(str),
                    "ref_allele": d.ref[nz].astype(str),
                    "eff_allele": d.alt[nz].astype(str),
                    "weight": w[nz],
                }
            )
        )
        covs.append(covariance_rows(row.gene_id, d.variant_id[nz].astype(str), d.dosage[nz]))
    metrics_df = pd.DataFrame(metrics).reindex(columns=METRIC_COLUMNS)
    oof_df = pd.DataFrame.from_dict(oofs, orient="index", columns=samples)
    oof_df.index.name = "gene_id"
    w_df = pd.concat(weights, ignore_index=True) if weights else pd.DataFrame(columns=WEIGHT_COLUMNS)
    c_df = pd.concat(covs, ignore_index=True) if covs else pd.DataFrame(columns=COV_COLUMNS)
    return metrics_df, oof_df, w_df, c_df


WEIGHT_COLUMNS = ["gene", "rsid", "varID", "ref_allele", "eff_allele", "weight"]
COV_COLUMNS = ["GENE", "RSID1", "RSID2", "VALUE"]


def covariance_rows(gene_id: str, ids: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    """Upper-triangular (incl. diagonal) sample covariance (ddof=1) of model SNPs, PredictDB layout."""
    cov = np.atleast_2d(np.cov(g, ddof=1))
    i, j = np.triu_indices(len(ids))
    df = pd.DataFrame({"GENE": gene_id, "RSID1": ids[i], "RSID2": ids[j], "VALUE": cov[i, j]})
    return df.sort_values(["RSID1", "RSID2"], kind="mergesort").reset_index(drop=True)
