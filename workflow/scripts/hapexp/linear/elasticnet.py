"""PrediXcan elastic net with PredictDB's nested cross-validation (gtex_v7_nested_cv_elnet.R).

Faithful to PredictDB where it matters for the numbers; the glmnet fit itself (path,
λ sequence, cv.glmnet) is `hapexp.linear.glmnet`:

- **y**: the prepared (covariate-residualized) expression of the gene, centered and
  scaled to unit standard deviation (R's `scale`, ddof=1) — PredictDB's
  `adjust_for_covariates`. Weights and out-of-fold predictions are in these units.
- **folds** (`fold_ids`): balanced, `rep(1:k, ceiling(n/k))[1:n]` shuffled — PredictDB's
  `generate_fold_ids`, with numpy's seeded generators instead of R's. The **outer** folds
  are the same for every gene (`outer_fold_labels`: drawn from the seed alone; written to
  elasticnet/folds.tsv); the inner folds and the final fit's folds are drawn per gene
  (seed, gene id). PredictDB draws its outer folds per gene too; common outer folds let
  the verdict test the mean r across genes on one outer fold's people, permuted alike
  for every gene (`hapexp.verdict.mean_r`), which per-gene folds cannot do.
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
  The pooled r is what the verdict reports (over all people, like the deep models'), but
  not what it tests: one t-test of the pooled vector is anti-conservative (null genes,
  40 SNPs, 10 inner folds: 11.8 % at p < 0.05); the verdict's p-value is the held-out
  fold test of `hapexp.stats.heldout_fold_test` on the outer-fold labels (folds.tsv).
- **final model**: cv.glmnet on all individuals (fresh inner folds), weights at
  `lambda.min`; `in_sample_R2` from that fit. Genes with < 2 variants are not fit.

`fit_predict_on` is the same elastic net fitted on some people only (y scaled on them,
λ by cv.glmnet over seeded folds of them) and applied to everyone: the elastic net on the
training people of the verdict on the splits (`hapexp.verdict.split_verdict`) and the
per-gene track head (`hapexp.training.heads`).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy import stats

from hapexp.linear.glmnet import cv_glmnet
from hapexp.stats import keyed_rng, r_pvalue

log = logging.getLogger(__name__)

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
    """Per-gene generator (`hapexp.stats.keyed_rng`): results do not depend on chunking or
    thread scheduling."""
    return keyed_rng(seed, gene_id)


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


def outer_fold_labels(n: int, outer_folds: int, seed: int) -> np.ndarray:
    """The outer-fold labels (0-based) of the n people, the same for every gene: drawn from
    `seed` alone (module doc)."""
    return fold_ids(n, outer_folds, np.random.default_rng([int(seed), OUTER_STREAM]))


# The outer folds' stream of the seed, apart from any gene's (gene_rng's second word is a crc32).
OUTER_STREAM = 2**32


def gene_folds(n: int, outer_folds: int, inner_folds: int, rng, seed: int):
    """All fold assignments of a gene: the outer folds common to all genes
    (`outer_fold_labels(n, outer_folds, seed)`), then, drawn up front from the gene's `rng`
    in a fixed order, the inner folds of each outer training set and the folds of the final
    fit. (Drawing them first keeps them independent of the random p-values drawn for
    constant predictions, and lets other implementations reuse identical folds.)"""
    outer = outer_fold_labels(n, outer_folds, seed)
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
    outer, inner, final = gene_folds(n, outer_folds, inner_folds, rng, seed)
    perf, oof = nested_cv(x, y, outer, inner, alpha, rng, thresh=thresh)
    m.update(perf)
    fit = cv_glmnet(x, y, final, alpha, thresh=thresh)
    pred = x @ fit["beta"] + fit["intercept"]
    m["in_sample_R2"] = 1.0 - np.sum((y - pred) ** 2) / np.sum(y**2)
    m["lambda_min_mse"] = fit["lambdas"][fit["i_min"]]
    w = fit["beta"]
    m["n_snps_in_model"] = int(np.count_nonzero(w))
    return m, oof, w


def fit_predict_on(x, y, train, gene_id, *, alpha, inner_folds, seed, thresh=1e-7) -> np.ndarray:
    """Predictions for every row of `x` (people × features) of an elastic net fitted on the
    rows `train` (boolean mask) only: y = `y[train]` scaled as PredictDB does
    (`scale_expression`), λ by cv.glmnet over `inner_folds` folds of the training rows
    drawn from `gene_rng(seed, gene_id)`. NaN for everyone when `x` has fewer than 2
    features or the fit fails (the gene is then not tested)."""
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    y = scale_expression(np.asarray(y, dtype=float)[train])
    folds = fold_ids(int(train.sum()), inner_folds, gene_rng(seed, gene_id))
    try:
        fit = cv_glmnet(x[train], y, folds, alpha, thresh=thresh)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
        log.warning("gene %s: elastic net failed (%s); not tested", gene_id, e)
        return np.full(x.shape[0], np.nan)
    return x @ fit["beta"] + fit["intercept"]


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
    genome `build` for the varID suffix) and the outer-fold labels (genes × people, 0-based:
    the folds each out-of-fold prediction was held out in; the same for every gene)."""
    from hapexp.linear.predictdb import WEIGHT_COLUMNS, variant_keys

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
        # Processes, not threads: glmnet's compiled path (hapexp.linear.glmnet) holds the
        # GIL and a gene is 66 paths with Python in between (with the earlier solver,
        # measured: 2 threads no faster than 1; 2 processes 1.5-1.9×). "fork" because spawn/forkserver would re-import
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
    labels = outer_fold_labels(len(samples), outer_folds, seed)
    folds_df = pd.DataFrame(np.tile(labels, (len(oof_df), 1)), index=oof_df.index, columns=samples)
    return metrics_df, oof_df, w_df, c_df, folds_df


def _fit_job(args):
    gene_id, dosage, y, kw = args
    x = np.ascontiguousarray(dosage.T)
    with warnings.catch_warnings():  # the solver's per-call convergence warnings: ours to judge
        warnings.simplefilter("ignore", category=UserWarning)
        return fit_gene(gene_id, x, y, **kw)


COV_COLUMNS = ["GENE", "RSID1", "RSID2", "VALUE"]


def covariance_rows(gene_id: str, ids: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    """Upper-triangular (incl. diagonal) sample covariance (ddof=1) of model SNPs, PredictDB layout."""
    cov = np.atleast_2d(np.cov(g, ddof=1))
    i, j = np.triu_indices(len(ids))
    df = pd.DataFrame({"GENE": gene_id, "RSID1": ids[i], "RSID2": ids[j], "VALUE": cov[i, j]})
    return df.sort_values(["RSID1", "RSID2"], kind="mergesort").reset_index(drop=True)


def run_elasticnet(prepared, vcf, chunk, metrics, oof, weights, covariances, folds, window, models: dict, maf: float,
                   alpha: float, outer_folds: int, inner_folds: int, seed: int, thresh: float, policies: dict,
                   predictdb_exclusions: bool, build, threads: int) -> None:  # fmt: skip
    """Rule `elasticnet`: PredictDB's nested-CV elastic net for one `chunk` of genes, on the
    run's variant policy and (unless `predictdb_exclusions` is false) PredictDB's exclusions;
    writes the per-gene `metrics`, out-of-fold predictions (`oof`), `weights`,
    `covariances` and outer-fold labels (`folds`) of the chunk."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import read_matrix, write_matrix, write_tsv
    from hapexp.variants.genotypes import cis_dosages
    from hapexp.variants.windows import resolve_window

    expr = read_matrix(prepared)
    genes = pd.read_csv(chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
    window = resolve_window(window, models)
    dosages, genes = cis_dosages(vcf, genes, window, list(expr.columns), maf, policies, predictdb_exclusions)
    # Genes run in parallel forked processes (they inherit this limit): BLAS stays
    # single-threaded to avoid oversubscription.
    with threadpool_limits(limits=1):
        fitted = fit_chunk(
            dosages, genes, expr, alpha=alpha, outer_folds=outer_folds, inner_folds=inner_folds, seed=seed,
            threads=threads, thresh=thresh, build=build,
        )  # fmt: skip
    write_tsv(fitted[0], metrics)
    write_matrix(fitted[1], oof)
    write_tsv(fitted[2], weights)
    write_tsv(fitted[3], covariances)
    write_matrix(fitted[4], folds)


def run_gather_elasticnet(metrics_chunks, oof_chunks, weights_chunks, covariances_chunks, folds_chunks, genes,
                          metrics, oof, db, covariances, folds, seed: int, filter_db: bool) -> None:  # fmt: skip
    """Rule `gather_elasticnet`: the chunks' `metrics` and out-of-fold predictions (`oof`) in
    one table each, the PredictDB model database `db` (only models with rho_avg > 0.1 and
    zscore_pval < 0.05 unless `filter_db` is false), its `covariances` and the outer-fold
    labels (`folds`, genes × people, what the verdict's held-out fold test reads)."""
    from hapexp.io import read_matrix, write_matrix, write_tsv
    from hapexp.linear.predictdb import extra_table, filter_models, write_covariances, write_db

    def cat(files, **kw):
        return pd.concat([pd.read_csv(f, sep="\t", **kw) for f in files], ignore_index=True)

    per_gene = cat(metrics_chunks, dtype={"gene_id": str, "gene_name": str})
    predicted = pd.concat([read_matrix(f) for f in oof_chunks])
    w = cat(weights_chunks, dtype={"gene": str, "rsid": str, "varID": str})
    cov = cat(covariances_chunks, dtype={"GENE": str, "RSID1": str, "RSID2": str})
    table = pd.read_csv(genes, sep="\t", dtype={"gene_id": str, "chrom": str, "gene_type": str})
    kept = filter_models(per_gene) if filter_db else per_gene
    gene_type = table.set_index("gene_id")["gene_type"] if "gene_type" in table.columns else "NA"
    extra = extra_table(kept, gene_type)
    log.info(
        "%d genes fitted, %d with weights in the db (filter_db=%s)", len(per_gene), len(extra), filter_db
    )
    write_tsv(per_gene, metrics)
    write_matrix(predicted, oof)
    write_matrix(pd.concat([read_matrix(f) for f in folds_chunks]).astype(int), folds)
    chroms = table.loc[table["gene_id"].isin(set(extra["gene"])), "chrom"]
    write_db(db, w, extra, chroms, seed, predicted.shape[1])
    write_covariances(covariances, cov, genes=extra["gene"])
