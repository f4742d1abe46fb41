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
  `1/(2n)·RSS + λ(α|β|₁ + (1-α)/2·|β|²)`. Solved by coordinate descent in glmnet's
  covariance form (`_path_loop`): warm starts along the path, a working set with its
  Gram matrix, KKT checks of all variables at every λ, scikit-learn's compiled Gram
  solver; converged when a sweep moves no standardized coefficient by more than
  sqrt(`thresh`) (glmnet's `thresh`, default 1e-7).
- **λ path** (`lambda_path`): `λ_max = max_j |x̃_jᵀ(y - ȳ)| / (n α)` (x̃ standardized),
  `nlambda = 100` log-spaced down to `λ_max · ratio` with glmnet's
  `lambda.min.ratio = ifelse(nobs < nvars, 0.01, 0.0001)` (so 1e-4 at n == p); the
  path stops early as glmnet's does (after ≥ 5 λ, when the
  deviance explained changes by < 1e-5 relative, or exceeds 0.999).
- **cv.glmnet** (`cv_glmnet`): λ sequence from the full training data, each fold fit
  on it, `cvm` = mean squared error over all held-out individuals, `lambda.min` =
  the largest λ attaining the minimum.
- **nested CV** (`nested_cv`): outer folds; inner cv.glmnet picks λ on the training
  part; the held-out part is predicted. Per outer fold: R² = 1 - RSS/Σy², ρ =
  cor(pred, y) (0 when the prediction is constant), z = atanh(ρ)·sqrt(n_test - 3),
  p = cor.test p-value (uniform random when constant). `rho_avg` = mean ρ, `rho_se`
  = sd(ρ), `rho_zscore` = Σz/√k (Stouffer), `zscore_pval` = 2Φ(-|z|), `R2` =
  rho_avg². These per-fold statistics are PredictDB's, unchanged.
- **pooled out-of-fold predictions** (`oof.tsv`, what the verdict correlates with
  expression across all individuals): each outer fold's held-out predictions are
  *centred and scaled to unit SD within the fold* (a fold whose model predicts a
  constant contributes zeros), then pooled. Why: (i) uncentred, each fold's
  predictions carry its intercept, the training part's mean of y; y is centred on all
  individuals, so that mean is −(n_test/n_train)·(the held-out fold's mean of y) and
  the pooled predictions anti-correlate with y when nothing is predictable (null
  genes: mean pooled r −0.10); (ii) centred only, the pooled r still leans negative
  (−0.01 to −0.02): a fold's model is trained on the other folds' held-out people, so
  when those people's expression happens to follow their own fold's predictions, the
  other folds' models grow and the pooled predictions' overall spread — the
  denominator of r — grows with exactly the positive numerators. Scaled within
  folds, the spread is fixed and the pooled r is a weighted average of within-fold
  correlations, each computed on people its model never saw, with no fold indicators
  added as covariates (which would make the elastic net's residualization differ from
  the deep models'). Measured on null genes (n = 200, 150 genes × 3 seeds): mean pooled
  r −0.012 to −0.017 (centred only: −0.019 to −0.022; raw: −0.097). What remains comes
  from folds whose model is empty: they contribute zeros, and whether a fold's model is
  empty depends on the other folds' people — inherent to pooling sparse cross-validated
  models, and within the ±0.02 the null check allows (tests/test_elasticnet.py). The
  prediction scale is dropped; the verdict only uses correlations. PredictDB's per-fold
  statistics above are computed on the unscaled predictions, unchanged.
- **final model**: cv.glmnet on all individuals (fresh inner folds), weights at
  `lambda.min`; `in_sample_R2` from that fit. Genes with < 2 variants are not fit.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy import stats

from hapexp.stats import r_pvalue

log = logging.getLogger(__name__)
_SWEEPS = 2  # sweeps per compiled-solver call (each call re-derives Gram·w: O(|W|²))
_RNG = np.random.RandomState(0)  # required by the solver's signature; unused (cyclic order)

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
    """Column means and 1/n standard deviations (glmnet's), standardized copy (C order)."""
    mean = x.mean(axis=0)
    xs = x - mean
    sd = np.sqrt(np.einsum("ij,ij->j", xs, xs) / x.shape[0])
    sd = np.where(sd > 0, sd, 1.0)
    xs /= sd
    return xs, mean, sd


def lambda_path(xs: np.ndarray, yc: np.ndarray, alpha: float, nlambda: int = 100, ratio: float | None = None):
    """glmnet's default λ sequence for standardized `xs` and centered `yc`."""
    n, p = xs.shape
    if ratio is None:
        ratio = 1e-2 if n < p else 1e-4  # glmnet: lambda.min.ratio = ifelse(nobs < nvars, 0.01, 1e-4)
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
        return _path_loop(xs, ys, scaled, lambdas, alpha, thresh, max_sweeps, early_stop, xm, xsd, ym, ysd)


def _path_loop(xs, ys, scaled, lambdas, alpha, thresh, max_sweeps, early_stop, xm, xsd, ym, ysd):
    """Pathwise coordinate descent in glmnet's *covariance* form (Friedman et al. 2010 §2.2).

    Per λ, coordinate descent runs on a working set W only — the variables active at
    the previous λ plus those violating their KKT condition at the warm start — with
    the standardized Gram matrix ⟨x_j, x_k⟩ of W: scikit-learn's compiled Gram solver
    (`_solve`). A coordinate that stays zero costs O(1) per sweep, one that moves
    O(|W|), never O(n·p). Then the gradient of all p variables (one O(n·p) product)
    checks KKT; violators join W and the λ is re-solved. W is grown by the new
    columns only, and compacted (zeros dropped) only when a quarter of it is zero, so
    the Gram matrix is rarely re-extracted.
    """
    n, p = xs.shape
    coefs = np.zeros((p, scaled.size))
    ws = _WorkingSet(xs, ys)
    kkt = _KKT(xs)
    tss = float(ys @ ys)
    bound = np.abs(ws.xty) / n  # |gradient| (here exact), later an upper bound of it
    resid = ys
    prev_dev = 0.0
    n_done = 0
    for k, lam in enumerate(scaled):
        l1, l2 = lam * alpha * n, lam * (1 - alpha) * n
        if 4 * np.count_nonzero(ws.w == 0) > ws.size:
            ws.compact()
        viol = kkt.violators(bound, ws.member, resid, alpha * lam * (1 + 1e-9))
        while True:
            if viol.size:
                ws.grow(viol)
            if not ws.size:
                break
            _solve(ws.w, l1, l2, ws.gram, ws.q, ys, thresh, max_sweeps)
            resid = ys - ws.x @ ws.w
            bound = kkt.bound(resid)
            # KKT of the variables outside W (those inside were left converged)
            viol = kkt.violators(bound, ws.member, resid, alpha * lam * (1 + 1e-9))
            if not viol.size:
                break
        coefs[ws.index, k] = ws.w
        n_done = k + 1
        if early_stop:
            dev = 1.0 - float(resid @ resid) / tss
            if k + 1 >= 5 and (dev - prev_dev < 1e-5 * dev or dev > 0.999):
                break
            prev_dev = dev
    b = coefs[:, :n_done] * (ysd / xsd)[:, None]
    intercept = ym - xm @ b
    return lambdas[:n_done], b, intercept


class _KKT:
    """KKT check |x_jᵀr|/n <= αλ of the variables outside the working set, in two steps:
    a float32 product (half the memory traffic of the O(n·p) gradient) gives an upper
    bound of every |gradient| — |float32 result| + (n + 2)·eps32·|x_j|·|r| / n, twice the
    classical worst-case error of any summation order, with |x_j|² = n (standardized) —
    and only the variables whose bound exceeds the threshold get the exact float64
    gradient. The violators are exactly those of a float64 check."""

    def __init__(self, xs):
        self.xs = xs
        self.x32 = xs.astype(np.float32)
        self.n = xs.shape[0]

    def bound(self, resid):
        g = np.abs(self.x32.T @ resid.astype(np.float32)).astype(float)
        slack = (
            (self.n + 2) * float(np.finfo(np.float32).eps) * math.sqrt(self.n) * float(np.linalg.norm(resid))
        )
        return (g + slack) / self.n

    def violators(self, bound, member, resid, thr):
        cand = np.flatnonzero(~member & (bound > thr))
        if not cand.size:
            return cand
        exact = np.abs(self.xs[:, cand].T @ resid) / self.n
        return cand[exact > thr]


class _WorkingSet:
    """Variables W of the standardized design: their columns (n × |W|, in a buffer with
    spare capacity), Gram matrix, ⟨x_j, y⟩ and current coefficients, contiguous for the
    compiled solver."""

    def __init__(self, xs, ys):
        self.xs = xs
        self.xty = xs.T @ ys
        self.member = np.zeros(xs.shape[1], dtype=bool)
        self.index = np.zeros(0, dtype=np.intp)
        self._x = np.empty((xs.shape[0], 64), order="F")
        self.gram = np.zeros((0, 0))
        self.q = np.zeros(0)
        self.w = np.zeros(0)

    @property
    def size(self):
        return self.index.size

    @property
    def x(self):
        return self._x[:, : self.size]

    def grow(self, new):
        m, k = self.size, new.size
        if m + k > self._x.shape[1]:
            buf = np.empty((self._x.shape[0], max(2 * self._x.shape[1], m + k)), order="F")
            buf[:, :m] = self.x
            self._x = buf
        xn = self._x[:, m : m + k]
        xn[...] = self.xs[:, new]
        g = np.empty((m + k, m + k))
        g[:m, :m] = self.gram
        cross = self.x.T @ xn
        g[:m, m:] = cross
        g[m:, :m] = cross.T
        g[m:, m:] = xn.T @ xn
        self.gram = g
        self.member[new] = True
        self.index = np.concatenate([self.index, new])
        self.q = np.concatenate([self.q, self.xty[new]])
        self.w = np.concatenate([self.w, np.zeros(k)])

    def compact(self):
        keep = np.flatnonzero(self.w)
        self._x[:, : keep.size] = self.x[:, keep]
        self.member[self.index] = False
        self.member[self.index[keep]] = True
        self.index, self.q, self.w = self.index[keep], self.q[keep], self.w[keep]
        self.gram = self.gram.take(keep, axis=0).take(keep, axis=1)


def _solve(w, l1, l2, gram, q, ys, thresh, max_sweeps):
    """Cyclic coordinate descent on the working set, in place, to glmnet's criterion: no
    coefficient (standardized scale) moving by more than sqrt(thresh) per sweep — checked
    per call of `_SWEEPS` sweeps as a total move below `_SWEEPS`·sqrt(thresh). (One sweep
    per call costs a Gram·w product per sweep; measured ~10-20% slower overall, with the
    same agreement with glmnet.)"""
    from sklearn.linear_model import _cd_fast as cd_fast

    for _ in range(max(1, max_sweeps // _SWEEPS)):
        w_old = w.copy()
        cd_fast.enet_coordinate_descent_gram(w, l1, l2, gram, q, ys, _SWEEPS, 0.0, _RNG, False, False)
        if np.max((w - w_old) ** 2) < thresh * _SWEEPS**2:
            return


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
        # np.corrcoef, not hapexp.stats.pearson: a fold whose model is empty predicts a
        # constant that rounding leaves varying in the last bit, and its ρ is rounding
        # noise (~1e-17) whose value depends on the summation order; PredictDB's metrics of
        # such genes (rho_avg, R2, rho_zscore) keep their values only with this arithmetic
        rho = float(np.corrcoef(y_pred, y_test)[0, 1])
        pval = float(r_pvalue(rho, n))
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
    """PredictDB's nested_cv_elastic_net_perf on the given folds, plus the pooled
    out-of-fold predictions (each fold's held-out predictions centred and scaled to
    unit SD within the fold; module doc)."""
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
        oof[te] = standardize_fold(pred)  # no fold intercept, no fold-dependent spread
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


def standardize_fold(pred: np.ndarray) -> np.ndarray:
    """Held-out predictions of one outer fold, centred and divided by their SD (ddof 0);
    a constant prediction (an empty model) gives zeros."""
    c = pred - pred.mean()
    sd = math.sqrt(float(c @ c) / c.size) if c.size else 0.0
    # below float rounding of the predictions' magnitude: constant
    if sd <= 1e-12 * max(float(np.abs(pred).max()) if pred.size else 0.0, 1e-300):
        return np.zeros_like(c)
    return c / sd


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
    build=None,
):
    """Fit every gene of `genes` (with start0/end0 windows), `threads` genes at a time
    (worker processes). Returns (metrics, oof, weights, covariances); weights and
    covariances are keyed by PredictDB's rsid/varID (`hapexp.linear.predictdb.variant_keys`,
    genome `build` for the varID suffix)."""
    from hapexp.linear.predictdb import variant_keys

    samples = list(expression.columns)
    if list(dosages.samples) != samples:
        raise ValueError("dosages and expression must have the same samples in the same order")
    jobs = []
    # Keys from the whole chunk: an rs id shared by records at one position is seen as such
    rsid_all, varid_all = (np.asarray(k, dtype=object) for k in variant_keys(dosages, build))
    for row in genes.itertuples(index=False):
        if row.gene_id not in expression.index:
            continue
        ix = dosages.window_index(str(row.chrom), int(row.start0), int(row.end0))
        jobs.append((row, dosages.take(ix), rsid_all[ix], varid_all[ix]))

    kw = dict(alpha=alpha, outer_folds=outer_folds, inner_folds=inner_folds, seed=seed, thresh=thresh)
    # the window's dosages (variants × samples), already held by `jobs`: no second copy per gene
    args = [
        (row.gene_id, d.dosage, expression.loc[row.gene_id].to_numpy(dtype=float), kw)
        for row, d, _, _ in jobs
    ]
    workers = min(max(1, int(threads)), len(args))
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        # Processes, not threads: a path is thousands of short compiled-solver calls with
        # Python in between, so threads serialize on the GIL (measured: 2 threads no faster
        # than 1; 2 processes 1.5-1.9×). "fork" because spawn/forkserver would re-import
        # the rule script (Snakemake's __main__). Each gene's result depends on the gene
        # alone: same bytes for any number of workers.
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_fit_job, args))
    else:
        results = [_fit_job(a) for a in args]
    metrics, oofs, weights, covs = [], {}, [], []
    for (row, d, rsid, varid), (m, oof, w) in zip(jobs, results, strict=True):
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
                    "rsid": rsid[nz].astype(str),
                    "varID": varid[nz].astype(str),
                    "ref_allele": d.ref[nz].astype(str),
                    "eff_allele": d.alt[nz].astype(str),
                    "weight": w[nz],
                }
            )
        )
        covs.append(covariance_rows(row.gene_id, rsid[nz].astype(str), d.dosage[nz]))
    metrics_df = pd.DataFrame(metrics).reindex(columns=METRIC_COLUMNS)
    oof_df = pd.DataFrame.from_dict(oofs, orient="index", columns=samples)
    oof_df.index.name = "gene_id"
    w_df = pd.concat(weights, ignore_index=True) if weights else pd.DataFrame(columns=WEIGHT_COLUMNS)
    c_df = pd.concat(covs, ignore_index=True) if covs else pd.DataFrame(columns=COV_COLUMNS)
    return metrics_df, oof_df, w_df, c_df


def _fit_job(args):
    gene_id, dosage, y, kw = args
    x = np.ascontiguousarray(dosage.T)
    with warnings.catch_warnings():  # the solver's per-call convergence warnings: ours to judge
        warnings.simplefilter("ignore", category=UserWarning)
        return fit_gene(gene_id, x, y, **kw)


WEIGHT_COLUMNS = ["gene", "rsid", "varID", "ref_allele", "eff_allele", "weight"]
COV_COLUMNS = ["GENE", "RSID1", "RSID2", "VALUE"]


def covariance_rows(gene_id: str, ids: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    """Upper-triangular (incl. diagonal) sample covariance (ddof=1) of model SNPs, PredictDB layout."""
    cov = np.atleast_2d(np.cov(g, ddof=1))
    i, j = np.triu_indices(len(ids))
    df = pd.DataFrame({"GENE": gene_id, "RSID1": ids[i], "RSID2": ids[j], "VALUE": cov[i, j]})
    return df.sort_values(["RSID1", "RSID2"], kind="mergesort").reset_index(drop=True)
