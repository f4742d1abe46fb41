"""Cross-individual and cross-gene performance of expression predictors.

Cross-individual (`gene_table`, `cross_individual`): per gene, a predictor's per-person
prediction against the prepared expression over the same individuals — the samples
shared by the expression and *every* predictor, so that all are judged on the same
people. The prediction is first residualized on exactly the covariates (+ expression
PCs) the expression was residualized on (intercept included; least squares), then
Pearson r of the two residual vectors with t-test p-values on dof = n − 2 − k (k
covariates): the partial correlation, i.e. the t-test of the prediction's coefficient in
OLS `expression ~ 1 + covariates + prediction`. `residualize=False` (config
`performance.residualize_predictions: false`) gives the anchors' raw correlation with
dof = n − 2. Spearman r is the partial Spearman: the Pearson r of the two rows' ranks,
each residualized on the covariates (its p-value from the same t approximation; ranking
the residuals instead is conservative for sparse predictions, `_partial_spearman`). The arithmetic
(residualization, correlations, p-values, BH) is `hapexp.stats`.

Constant predictions: a prediction whose spread across the individuals is within what its
model resolves (`hapexp.engine.precision`: 1e-6 relative in strict fp32; in a reduced
precision the per-gene rounding noise its predict jobs' audits measured, times a margin of
z standard errors; 1e-12 for float64 predictors — `resolve_floors`, one rule for every
predictor of one precision) is rounding,
not signal: r is NaN, the gene is counted as constant, not tested.

Predictors fitted on the cohort by cross-validation (the elastic net: out-of-fold
predictions, `folds` = their outer-fold labels): r is the same pooled r over all people
(comparable with every other predictor's r), but its p-value (`p_method` "heldout_folds")
comes only from people each fold's model never saw — `hapexp.stats.heldout_fold_test`:
the partial correlation within each outer fold on the same covariates (dof n_f − 2 − k),
exact normal scores combined across folds allowing for their correlation (a fold whose
model is empty contributes a seeded N(0, 1) draw, not nothing: dropping it biases the
sign); `dof` is then Σ dof_f over the folds with a model. One t-test of the pooled vector ("partial_t", right for every predictor not
fitted on these people) calls the elastic net significant up to 2.4× too often on null
genes (tests/test_null_calibration.py).

Gene sets: `fdr` is Benjamini-Hochberg across the genes each predictor tested (its own
set); `shared_genes` are the genes tested by every predictor (that tested any), and
`fdr_shared` is BH across that shared set — what the headline numbers and the
linear-vs-deep comparison use (`add_shared_set`).

Rule `performance` also writes the cross-gene table (`hapexp.verdict.cross_gene`) and,
as an option, Sasse et al.'s random-weights null (`hapexp.verdict.legacy_null`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp import stats
from hapexp.engine.precision import RELATIVE_RESOLUTION

log = logging.getLogger(__name__)

PERFORMANCE_COLUMNS = [
    "gene_id",
    "predictor",
    "n",
    "dof",
    "pearson_r",
    "pearson_p",
    "spearman_r",
    "spearman_p",
    "constant",
    "fdr",
    "in_shared_set",
    "fdr_shared",
    "p_method",
]
# p_method: one partial t-test over all people / the held-out fold test (module doc).
PARTIAL_T, HELDOUT_FOLDS = "partial_t", "heldout_folds"
# Seed of the z drawn for an outer fold whose model is empty (with the gene id).
FILL_SEED = 20
GENE_TABLE_COLUMNS = PERFORMANCE_COLUMNS[2:9]

# Default floor of predictors without a model precision (the linear ones, float64).
LINEAR_FLOOR = RELATIVE_RESOLUTION["fp64"]
# The prepared expression is float64 residuals.
EXPRESSION_FLOOR = RELATIVE_RESOLUTION["fp64"]


def gene_table(
    expression: pd.DataFrame,
    prediction: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    floor=RELATIVE_RESOLUTION["fp32"],
    residualize: bool = True,
) -> pd.DataFrame:
    """Per gene: n, dof, Pearson/Spearman r and p, constant — for aligned genes × samples
    matrices (same index, same columns) and covariates (covariates × samples, the
    expression's; None = intercept only). `floor`: the prediction's relative resolution,
    scalar or per gene (Series on the genes or array). See the module doc."""
    if list(expression.index) != list(prediction.index) or list(expression.columns) != list(
        prediction.columns
    ):
        raise ValueError("expression and prediction must be aligned (use align_all)")
    e = expression.to_numpy(dtype=float)
    p = prediction.to_numpy(dtype=float)
    if isinstance(floor, pd.Series):
        floor = floor.reindex(prediction.index).fillna(RELATIVE_RESOLUTION["fp32"]).to_numpy(float)
    floor = np.broadcast_to(np.asarray(floor, dtype=float), (len(p),))
    cov = None
    k = 0
    if residualize and covariates is not None and covariates.shape[0]:
        cov = covariates.loc[:, list(expression.columns)].to_numpy(dtype=float).T
        k = cov.shape[1]
    ok = np.isfinite(p) & np.isfinite(e)
    n = ok.sum(axis=1)
    constant = stats.below_floor(np.where(ok, p, np.nan), floor) & (n >= 3)
    flat_e = stats.below_floor(np.where(ok, e, np.nan), EXPRESSION_FLOOR)
    r = np.full(len(p), np.nan)
    rho = np.full(len(p), np.nan)
    testable = ~constant & ~flat_e & (n - 2 - k > 0)
    complete = ok.all(axis=1)
    for rows, cols in _row_groups(testable, complete, ok):
        pr, er = p[np.ix_(rows, cols)], e[np.ix_(rows, cols)]
        q = None
        if residualize:
            q = None if cov is None else stats.covariate_design(cov[cols])
            pr, er = stats.residualize(pr, q), stats.residualize(er, q)
            # a prediction explained by the covariates leaves nothing to test
            raw = p[np.ix_(rows, cols)]
            raw_ss = ((raw - raw.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            gone = (pr * pr).sum(axis=1) <= 1e-20 * raw_ss
        else:
            gone = np.zeros(len(rows), bool)
        rr, _ = stats.rowwise_pearson(pr, er, floor=0.0)
        rs = _partial_spearman(p[np.ix_(rows, cols)], e[np.ix_(rows, cols)], q if residualize else None)
        r[rows] = np.where(gone, np.nan, rr)
        rho[rows] = np.where(gone, np.nan, rs)
        constant[rows] |= gone
    dof = np.where(n >= 3, n - 2 - k, 0)
    return pd.DataFrame(
        {
            "n": n.astype(int),
            "dof": dof.astype(int),
            "pearson_r": r,
            "pearson_p": stats.r_pvalue(r, n, k),
            "spearman_r": rho,
            "spearman_p": stats.r_pvalue(rho, n, k),
            "constant": constant,
        },
        index=pd.Index(expression.index.astype(str), name="gene_id"),
    )[GENE_TABLE_COLUMNS]


def _partial_spearman(p, e, q):
    """Spearman's partial correlation: the rows' ranks residualized on the covariates (`q`,
    their `covariate_design`; None: centred), then Pearson r. Ranking the residuals instead
    breaks a sparse prediction's ties (a model of one or two SNPs has a handful of values)
    in covariate order and makes the t-test conservative (4,000 null genes, one-SNP
    predictions at MAF 0.05: 0.7 % at p < 0.05; tests/test_performance.py)."""
    rp, re = stats.rank_rows(p), stats.rank_rows(e)
    return stats.rowwise_pearson(stats.residualize(rp, q), stats.residualize(re, q), floor=0.0)[0]


def _row_groups(testable, complete, ok):
    """Rows to correlate, grouped by their usable samples: all complete rows at once
    (vectorized), each row with missing samples on its own samples."""
    rows = np.flatnonzero(testable & complete)
    if rows.size:
        yield rows, np.arange(ok.shape[1])
    for i in np.flatnonzero(testable & ~complete):
        yield np.array([i]), np.flatnonzero(ok[i])


def align_all(
    expression: pd.DataFrame, predictions: dict[str, pd.DataFrame], covariates: pd.DataFrame | None = None
):
    """The samples shared by the expression, every predictor and the covariates (expression
    order), and each predictor's genes in the expression (prediction order). Returns
    (expression, {name: (expression rows, prediction rows)}, covariates) restricted so."""
    samples = [s for s in expression.columns]
    for name, pred in predictions.items():
        have = set(pred.columns)
        missing = [s for s in samples if s not in have]
        if missing:
            log.warning(
                "predictor %s lacks %d of the samples (e.g. %s): compared on the shared ones",
                name,
                len(missing),
                missing[0],
            )
        samples = [s for s in samples if s in have]
    if covariates is not None:
        samples = [s for s in samples if s in set(covariates.columns)]
    out = {}
    for name, pred in predictions.items():
        genes = [g for g in pred.index if g in expression.index]
        out[name] = (expression.loc[genes, samples], pred.loc[genes, samples])
    cov = None if covariates is None else covariates.loc[:, samples]
    return expression.loc[:, samples], out, cov


def cross_individual(
    expression: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    covariates: pd.DataFrame | None = None,
    floors: dict | None = None,
    residualize: bool = True,
    folds: dict | None = None,
) -> pd.DataFrame:
    """Per gene × predictor (columns PERFORMANCE_COLUMNS): `gene_table` on the samples shared
    by all predictors, BH FDR per predictor over its own tested genes (`fdr`), and the
    shared gene set (`in_shared_set`, `fdr_shared`). `floors`: predictor → relative
    resolution (scalar, or per gene as a Series); default fp32's 1e-6. `folds`: predictor →
    genes × people outer-fold labels of out-of-fold predictions: p-values from the held-out
    folds (`heldout_pvalues`)."""
    floors, folds = floors or {}, folds or {}
    _, aligned, cov = align_all(expression, predictions, covariates)
    frames = []
    for name, (e, p) in aligned.items():
        if e.shape[1] < 3:
            log.warning("predictor %s shares only %d samples with the expression; skipped", name, e.shape[1])
            continue
        t = gene_table(
            e, p, cov, floor=floors.get(name, RELATIVE_RESOLUTION["fp32"]), residualize=residualize
        )
        t["p_method"] = PARTIAL_T
        if name in folds:
            t = heldout_pvalues(t, e, p, folds[name], cov, residualize)
        t = t.reset_index()
        t.insert(1, "predictor", name)
        t["fdr"] = stats.bh_fdr(t["pearson_p"])
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=PERFORMANCE_COLUMNS)
    return add_shared_set(pd.concat(frames, ignore_index=True))


def heldout_pvalues(table, expression, prediction, labels, covariates, residualize=True) -> pd.DataFrame:
    """`table` (`gene_table` of out-of-fold `prediction`) with its Pearson and Spearman
    p-values and dof from the held-out fold test (`hapexp.stats.heldout_fold_test`) on the
    outer-fold `labels` (genes × people, 0-based; genes grouped by identical labels), on the
    covariates when `residualize`. r stays the pooled r."""
    genes, samples = list(expression.index), list(expression.columns)
    lab = labels.reindex(index=genes, columns=samples)
    if lab.isna().any(axis=None):
        missing = lab.index[lab.isna().any(axis=1)][0]
        raise ValueError(
            f"outer-fold labels lack gene {missing!r} or some people: rerun rule gather_elasticnet"
        )
    lab = lab.to_numpy(dtype=np.int64)
    n_folds = int(lab.max()) + 1 if lab.size else 0
    cov = None
    if residualize and covariates is not None and covariates.shape[0]:
        cov = covariates.loc[:, samples].to_numpy(dtype=float).T
    e, p = expression.to_numpy(dtype=float), prediction.to_numpy(dtype=float)
    tested = np.isfinite(table["pearson_r"].to_numpy(float))
    pear, spear = np.full(len(genes), np.nan), np.full(len(genes), np.nan)
    dof = np.zeros(len(genes))
    _, group = np.unique(lab, axis=0, return_inverse=True)
    complete = (np.isfinite(p) & np.isfinite(e)).all(axis=1)
    batches = [np.flatnonzero(tested & complete & (group.ravel() == g)) for g in np.unique(group)]
    batches += [np.array([i]) for i in np.flatnonzero(tested & ~complete)]  # each on its own people
    for rows in batches:
        if not rows.size:
            continue
        cols = np.flatnonzero(np.isfinite(p[rows]).all(axis=0) & np.isfinite(e[rows]).all(axis=0))
        c = None if cov is None else cov[cols]
        # an empty model's fold: a seeded N(0, 1) z per gene (heldout_fold_test's doc)
        fill = np.array([stats.keyed_rng(FILL_SEED, genes[i]).standard_normal(n_folds) for i in rows])
        args = (p[np.ix_(rows, cols)], e[np.ix_(rows, cols)], lab[rows[0], cols], n_folds, fill, c)
        _, pear[rows], dof[rows], _ = stats.heldout_fold_test(*args)
        _, spear[rows], _, _ = stats.heldout_fold_test(*args, rank=True)
    out = table.copy()
    out["pearson_p"], out["spearman_p"] = pear, spear
    out["dof"] = np.where(tested, dof, out["dof"]).astype(int)
    out["p_method"] = HELDOUT_FOLDS
    return out


def shared_genes(perf: pd.DataFrame, exclude=()) -> list[str]:
    """Genes with a finite r for every predictor that tested at least one gene (a predictor
    whose predictions are all constant does not empty the set; it is reported as such).
    `exclude`: predictors that do not shape the set (models fine-tuned on the cohort: scored
    here on their own training people, they stay out of the headline)."""
    tested = perf[np.isfinite(perf["pearson_r"].astype(float)) & ~perf["predictor"].isin(list(exclude))]
    preds = list(dict.fromkeys(tested["predictor"]))
    if not preds:
        return []
    sets = [set(tested.loc[tested["predictor"] == name, "gene_id"]) for name in preds]
    common = set.intersection(*sets)
    return [g for g in dict.fromkeys(perf["gene_id"]) if g in common]


def add_shared_set(perf: pd.DataFrame, exclude=()) -> pd.DataFrame:
    """`in_shared_set` and `fdr_shared` (BH per predictor across the shared genes); the
    predictors in `exclude` neither shape the set nor are in it (`shared_genes`)."""
    perf = perf.copy()
    shared = set(shared_genes(perf, exclude))
    perf["in_shared_set"] = (
        perf["gene_id"].isin(shared)
        & np.isfinite(perf["pearson_r"].astype(float))
        & ~perf["predictor"].isin(list(exclude))
    )
    perf["fdr_shared"] = np.nan
    for idx in perf.groupby("predictor", sort=False).groups.values():
        sub = perf.loc[idx]
        m = sub["in_shared_set"].to_numpy(bool)
        q = np.full(len(sub), np.nan)
        q[m] = stats.bh_fdr(sub["pearson_p"].to_numpy(float)[m])
        perf.loc[idx, "fdr_shared"] = q
    return perf[PERFORMANCE_COLUMNS]


def run_performance(
    prepared,
    raw,
    matrices,
    references,
    performance,
    cross_gene,
    models: list[str],
    raw_format: str,
    residualize: bool,
    covariates=None,
    genes=None,
    oof=None,
    precision=(),
    level=None,
    level_format: str | None = None,
    predictdb=None,
    bcf=None,
    legacy: dict | None = None,
    floors: dict | None = None,
    policies: dict | None = None,
    noise_z: float = 3.0,
    mean_r=None,
    paired=None,
    folds=None,
    individuals=None,
    finetuned_here=(),
    mean_r_permutations: int = 1000,
    mean_r_seed: int = 0,
) -> pd.DataFrame:
    """Rule `performance`: every predictor against the same `prepared` expression, on the
    same individuals, residualized on the same `covariates` (module doc); writes the per-gene
    table (`performance`) and the `cross_gene` table.

    `matrices`, `references`: each model's genes × people predictions and reference-genome
    values, in the order of `models`; `oof`: the elastic net's out-of-fold predictions;
    `predictdb` (+ the normalized `bcf`): an external PredictDB db as one more predictor;
    `floors`: deep model → constancy floor (`model_floor`: None for a reduced precision or
    `auto`, measured by its predict jobs' `precision` tables with margin `noise_z`; every
    other predictor float64's: `resolve_floors`); `legacy` (+ `genes`, `bcf`): Sasse et
    al.'s null; `level`: an un-residualized expression matrix for the cross-gene correlation
    (else `raw`, the expression input).

    Also (`verdict_tables`): `mean_r` (mean_r.tsv: mean r tested by permuting people,
    `mean_r_permutations` seeded by `mean_r_seed`; the elastic net on one outer fold of
    `folds`, its elasticnet/folds.tsv) and `paired` (paired.tsv: deep vs linear per gene).
    `finetuned_here`: models fine-tuned on this cohort: out of the shared gene set, their
    mean r on the test people of `individuals` (splits/individuals.tsv) only."""
    from hapexp.io import read_matrix, write_tsv
    from hapexp.linear.predictdb import predictdb_predict, read_predictdb_weights
    from hapexp.verdict.cross_gene import cross_gene as cross_gene_table
    from hapexp.verdict.cross_gene import expression_levels, read_references
    from hapexp.verdict.legacy_null import legacy_columns

    expression = read_matrix(prepared)
    cov = read_matrix(covariates, index_col="id") if covariates else None
    predictions = {name: read_matrix(p) for name, p in zip(models, matrices, strict=True)}
    if oof:
        predictions["elasticnet"] = read_matrix(oof)
    if predictdb:
        weights = read_predictdb_weights(predictdb)
        predictions["predictdb"] = predictdb_predict(
            weights, bcf, list(expression.columns), list(expression.index)
        )
        log.info("predictdb: predictions for %d genes", len(predictions["predictdb"]))
    # one constancy floor rule for every predictor (measured for reduced-precision models)
    floors = resolve_floors(floors, precision, predictions, noise_z)
    fold_labels = {"elasticnet": read_matrix(folds)} if folds and "elasticnet" in predictions else {}
    perf = cross_individual(
        expression, predictions, cov, floors=floors, residualize=residualize, folds=fold_labels
    )
    finetuned_here = [m for m in finetuned_here if m in predictions]
    if finetuned_here:
        perf = add_shared_set(perf, exclude=finetuned_here)
    log.info(
        "predictions %s on %d covariates; %d genes in the shared gene set",
        "residualized" if residualize else "NOT residualized (raw correlation, dof n - 2)",
        0 if cov is None else cov.shape[0],
        len(shared_genes(perf)),
    )
    if legacy and legacy.get("enabled"):
        table = pd.read_csv(genes, sep="\t", dtype={"gene_id": str, "chrom": str})
        perf = legacy_columns(
            perf,
            expression,
            table,
            legacy["windows"],
            bcf,
            int(legacy["draws"]),
            int(legacy["seed"]),
            covariates=cov if residualize else None,
            policies=policies,
        )
    write_tsv(perf, performance)
    if mean_r or paired:
        verdict_tables(
            expression, predictions, cov, perf, mean_r, paired, models, folds, individuals, finetuned_here,
            floors, residualize, mean_r_permutations, mean_r_seed,
        )  # fmt: skip

    if level:
        levels = expression_levels(level, level_format, list(expression.columns))
        source = f"expression_level ({level})"
    else:
        levels, source = expression_levels(raw, raw_format), f"expression ({raw})"
    write_tsv(cross_gene_table(levels, read_references(models, references), source), cross_gene)
    log.info("performance: %d gene × predictor rows", len(perf))
    return perf


def resolve_floors(floors: dict | None, precision_paths=(), predictions: dict | None = None,
                   z: float = 3.0, n_people: int | None = None) -> dict:  # fmt: skip
    """Every predictor's constancy floor, one rule for all predictors of one precision
    (hapexp.engine.precision's module doc). `floors`: deep model → its floor from the spec
    (`model_floor`: fp32's, or None for a reduced precision or `auto`); a None is replaced
    by the per-gene floor its predict jobs measured (`constancy_floor` on the tables
    `precision_paths`, margin `z`, over its genes in `predictions` and `n_people`, default
    its columns). Every other predictor of `predictions` (elastic nets, PredictDB, heads:
    float64 arithmetic) gets float64's."""
    from hapexp.engine.precision import constancy_floor, used_precision
    from hapexp.engine.precision import read as read_precision

    floors = dict(floors or {})
    predictions = predictions or {}
    if any(v is None for v in floors.values()):
        table = read_precision(list(precision_paths))
        for name, v in floors.items():
            if v is None:
                pred = predictions.get(name, pd.DataFrame())
                n = n_people if n_people is not None else pred.shape[1]
                floors[name] = constancy_floor(table, name, pred.index, z, n)
                log.info("%s: ran in %s; constancy floor from its audit: median %g, max %g", name,
                         used_precision(table, name), floors[name].median(), floors[name].max())  # fmt: skip
    for name in predictions:
        floors.setdefault(name, LINEAR_FLOOR)
    return floors


def verdict_tables(
    expression, predictions, cov, perf, mean_r_path, paired_path, models, folds, individuals, finetuned_here,
    floors, residualize, permutations, seed,
):  # fmt: skip
    """mean_r.tsv (`hapexp.verdict.mean_r`) and paired.tsv (`hapexp.verdict.paired`) of rule
    performance (see run_performance)."""
    from hapexp.io import read_matrix, write_tsv
    from hapexp.verdict.mean_r import mean_r_table
    from hapexp.verdict.paired import paired_table

    test_people = {}
    if finetuned_here:
        if not individuals:
            raise ValueError(f"{finetuned_here} fine-tuned on this cohort: splits/individuals.tsv is needed")
        ind = pd.read_csv(individuals, sep="\t", dtype={"sample": str})
        test = ind.loc[ind["split"] == "test", "sample"].tolist()
        test_people = {m: test for m in finetuned_here}
    fold_tables = {"elasticnet": read_matrix(folds)} if folds and "elasticnet" in predictions else {}
    if mean_r_path:
        t = mean_r_table(
            expression, predictions, cov, perf, permutations, seed, residualize, folds=fold_tables,
            fitted=("elasticnet",), test_people=test_people, floors=floors,
        )  # fmt: skip
        write_tsv(t, mean_r_path)
        log.info("mean r by permutation of people:\n%s", t.to_string())
    if paired_path:
        deep = [m for m in models if m in predictions and m not in finetuned_here]
        linear = [m for m in ("elasticnet", "predictdb") if m in predictions]
        t = paired_table(expression, predictions, cov, perf, deep, linear, residualize, folds=fold_tables)
        write_tsv(t, paired_path)
