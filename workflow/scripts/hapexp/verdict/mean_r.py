"""Mean r across genes, tested by permuting people (rule `performance` → mean_r.tsv).

"Is a predictor's mean r across genes different from 0?" cannot be a one-sample t-test
over genes: nearby genes share regulators, LD and technical factors, in the expression
and in the predictions alike, so their r's are correlated and the t-test over genes,
which counts them as independent, is anti-conservative (tests/test_mean_r.py: a shared
latent factor and no causal link make it reject far more than 5 % of cohorts). Permuting
*people* — one permutation for all genes — keeps that correlation between genes in the
null distribution.

Predictors not fitted on the cohort (pretrained deep models, a pretrained PredictDB db):
Freedman–Lane. The prepared expression is already the residual of the reduced model
(expression ~ 1 + covariates); its residual vector is permuted across people, the same
permutation for every gene, re-residualized on the covariates in the original order and
correlated with the prediction residualized as in `hapexp.verdict.performance.gene_table`
(the partial correlation; raw centred vectors with `residualize=False`). The statistic is
the mean of the per-gene r over a gene set; p = (1 + #{|mean r*| ≥ |mean r|}) / (B + 1),
two-sided, B = `performance.mean_r_permutations` seeded permutations
(`stats.permuted_mean_r`: the statistic is linear in the permutation, so B permutations of
20,000 genes cost one n × n matrix product per gene chunk and O(B·n) after it).

The elastic net (fitted on the cohort; its predictions are out-of-fold): tested on ONE
outer fold, fold TEST_FOLD (= 0, 0-based) of results/{cohort}/elasticnet/folds.tsv —
people its models never saw — with those models held fixed: each gene's r on the fold's
people (both vectors residualized on all people's covariates, then centred on the fold),
the fold's people permuted among themselves, the same permutation for every gene
(`stats.permuted_mean_r_held_out`). Valid under the null up to the residualization on all
people: the fold's expression is independent of its genotypes and of models trained on
the other folds.

This needs the fold to hold the same people for every gene, as hapexp's outer folds do
(hapexp.linear.elasticnet.outer_fold_labels: drawn from the seed alone, for this test).
With outer folds drawn per gene (PredictDB's habit; a folds table from elsewhere), no permutation of people
stays within every gene's held-out fold and is common to all genes: shuffling each gene
within its own fold (even from one random key per person) loses the correlation between
genes that person-level factors (ancestry, batch, overlapping cis windows) give the
observed mean r, and the test rejects far too often (tests/test_mean_r.py: 25 % of null
cohorts with a shared factor, 1,000 cohorts; 5.6 % with the same folds for every gene).
So with per-gene folds the elastic net's mean r is not tested (method
`not_tested_per_gene_folds`); with folds common to all genes it is.

Why not all folds pooled: (1) pooling out-of-fold predictions into one vector puts
fold-level artefacts into r (each fold's model has its own intercept, anti-correlated
with the held-out fold's mean expression; hapexp.linear.elasticnet standardizes within
folds against it, but a permutation across folds would still see any that is left), and
(2) the folds are not independent: fold f's model was trained on fold g's people and fold
g's on fold f's, so fold f's and fold g's r share a term (to first order
r_f ∝ e_fᵀX_f A⁻¹ X_gᵀe_g + …, and r_g holds the same term), and a permutation that holds
the models fixed breaks that sharing — its null is too narrow (about half the variance).
Measured on null out-of-fold predictions (600 cohorts, least squares, 5 folds):
permuting across all people rejects 88 %, within every fold (pooled r) 38 %; one held-out
fold 3.3 % (binomial 99 % bounds 2.7–7.3 %). The price is power (1/K of the people);
refitting on permuted data (item 3's check) would cost a full fit per permutation.
`mean_r` in mean_r.tsv is then the statistic tested (the mean of the fold's r), not the
pooled out-of-fold mean r of performance.tsv. Without fold labels a fitted predictor's
mean r is not tested (method `not_tested`).

Models fine-tuned on this cohort: on their test people only (splits/individuals.tsv),
which they never saw — Freedman–Lane on those people, covariates restricted to them,
genes testable there (`gene_table`'s constancy floors).

Rows with missing values (a gene whose prediction or expression lacks some people) are
tested on their own people, the permutation restricted to them (the same keys' order).

What the test says: H0 is "the predictions carry no information on these people's
expression, for any gene". An untrained network that reacts to real eQTL variants in
random directions is associated with expression on each such gene, so on a given set of
genes its mean r can be significantly non-zero in either direction (tests/simulated
cohorts: 35 % of them at 25 genes); summary.md then says so, with the effect size, and
flags significant genes going both ways.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp import stats

log = logging.getLogger(__name__)

MEAN_R_COLUMNS = [
    "predictor",
    "gene_set",
    "people",
    "n_people",
    "n_genes",
    "mean_r",
    "mean_r_p",
    "method",
    "permutations",
]
FREEDMAN_LANE = "freedman_lane"
HELD_OUT_FOLD = "freedman_lane_one_outer_fold"
# The outer fold (0-based label of folds.tsv) a fitted predictor's mean r is tested on.
TEST_FOLD = 0
NOT_TESTED = "not_tested"
PER_GENE_FOLDS = "not_tested_per_gene_folds"
# Genes per block of the vectorized permutation (rows × people float64 matrices).
CHUNK_ROWS = 2000


def permutation_keys(n: int, permutations: int, seed: int) -> np.ndarray:
    """permutations × n random orders of the n people (ranks), seeded: the same draws for
    every predictor and gene."""
    rng = np.random.default_rng(seed)
    return (
        np.stack([rng.permutation(n) for _ in range(int(permutations))])
        if permutations
        else np.zeros((0, n), int)
    )


def _design(covariates: np.ndarray | None, cols) -> np.ndarray | None:
    return None if covariates is None else stats.covariate_design(covariates[cols])


def null_mean_r(
    expression: np.ndarray,
    prediction: np.ndarray,
    covariates: np.ndarray | None,
    sets: np.ndarray,
    keys: np.ndarray,
    held_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(observed mean r per set (S,), permuted mean r (B × S)) for genes × people matrices
    (`stats.permuted_mean_r`: Freedman–Lane, one permutation for all genes).

    `covariates`: people × k (None: intercept only); `sets`: genes × S booleans (which genes
    each set averages); `keys`: B × people (`permutation_keys`: permutation b puts the people
    in the order of keys[b]); `held_out`: genes × people booleans, each gene's r on those
    people only (both vectors residualized on all people's covariates, then centred on the
    held-out people), permuted among them (`stats.permuted_mean_r_held_out`; complete rows
    only). Rows with missing values: on their own people, covariates and keys restricted to
    them."""
    sets = np.asarray(sets, bool)
    ok = np.isfinite(expression) & np.isfinite(prediction)
    rows = np.flatnonzero(sets.any(axis=1))
    complete = rows[ok[rows].all(axis=1)]
    q_all = _design(covariates, np.arange(expression.shape[1]))
    if held_out is not None:
        if complete.size < rows.size:
            raise ValueError("mean r on held-out people: complete rows only")
        held_out = np.asarray(held_out, bool)
        sets = sets & (held_out.sum(axis=1) >= 3)[:, None]
    size = sets.sum(axis=0).astype(float)
    weights = sets / np.maximum(size, 1.0)
    keys = np.atleast_2d(keys)
    index = np.argsort(keys, axis=1, kind="stable")
    obs, null = np.zeros(sets.shape[1]), np.zeros((keys.shape[0], sets.shape[1]))
    for start in range(0, complete.size, CHUNK_ROWS):
        g = complete[start : start + CHUNK_ROWS]
        if held_out is None:
            o, b = stats.permuted_mean_r(expression[g], prediction[g], q_all, weights[g], index)
        else:
            e, p = stats.residualize(expression[g], q_all), stats.residualize(prediction[g], q_all)
            o, b = stats.permuted_mean_r_held_out(e, p, held_out[g], weights[g], keys)
        obs, null = obs + o, null + b
    for g in rows[~ok[rows].all(axis=1)]:
        cols = np.flatnonzero(ok[g])
        if cols.size < 3:
            continue
        sub = np.argsort(keys[:, cols], axis=1, kind="stable")
        o, b = stats.permuted_mean_r(
            expression[g, cols][None, :],
            prediction[g, cols][None, :],
            _design(covariates, cols),
            weights[g][None, :],
            sub,
        )
        obs, null = obs + o, null + b
    empty = size == 0
    return np.where(empty, np.nan, obs), np.where(empty[None, :], np.nan, null)


def permutation_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided permutation p per column: (1 + #{|null| ≥ |observed|}) / (B + 1); a
    relative 1e-12 slack counts permutations equal to the observed one up to rounding."""
    obs = np.abs(np.asarray(observed, float))
    hits = (np.abs(null) >= obs * (1 - 1e-12)).sum(axis=0)
    p = (1.0 + hits) / (null.shape[0] + 1.0)
    return np.where(np.isfinite(obs) & (null.shape[0] > 0), p, np.nan)


def mean_r_rows(
    name: str,
    expression: pd.DataFrame,
    prediction: pd.DataFrame,
    covariates: pd.DataFrame | None,
    gene_sets: dict[str, list[str]],
    keys: np.ndarray,
    people: str = "all",
    folds: pd.DataFrame | None = None,
    method: str = FREEDMAN_LANE,
) -> list[dict]:
    """One mean_r.tsv row per gene set for one predictor (aligned genes × people matrices;
    `covariates`: covariates × people, None = intercept only). `folds`: genes × people
    outer-fold labels (0-based): r on fold TEST_FOLD's people only, permuted among them —
    tested only when that fold holds the same people for every gene (else PER_GENE_FOLDS,
    not tested: module doc)."""
    genes = list(expression.index)
    pos = {g: i for i, g in enumerate(genes)}
    names = list(gene_sets)
    sets = np.zeros((len(genes), len(names)), bool)
    for j, s in enumerate(names):
        sets[[pos[g] for g in gene_sets[s] if g in pos], j] = True
    held_out = None
    if folds is not None:
        lab = folds.reindex(index=genes, columns=list(expression.columns))
        held_out = lab.to_numpy(float) == TEST_FOLD
        sets = sets & (held_out.sum(axis=1) >= 3)[:, None]
        common = len(np.unique(held_out[sets.any(axis=1)], axis=0)) <= 1
        method = HELD_OUT_FOLD if common else PER_GENE_FOLDS
        if not common:
            log.warning(
                "%s: outer folds differ between genes: its mean r is not tested (no permutation of people "
                "is both within every gene's held-out fold and common to all genes; use folds common to all genes)",
                name,
            )
    cov = None if covariates is None or not covariates.shape[0] else covariates.to_numpy(float).T
    tested = method not in (NOT_TESTED, PER_GENE_FOLDS) and len(keys) > 0
    obs, null = null_mean_r(
        expression.to_numpy(float),
        prediction.to_numpy(float),
        cov,
        sets,
        keys if tested else keys[:0],
        held_out=held_out,
    )
    pvals = permutation_p(obs, null) if tested else np.full(len(names), np.nan)
    return [
        {
            "predictor": name,
            "gene_set": s,
            "people": people,
            "n_people": expression.shape[1],
            "n_genes": int(sets[:, j].sum()),
            "mean_r": obs[j],
            "mean_r_p": pvals[j],
            "method": method,
            "permutations": len(keys) if tested else 0,
        }
        for j, s in enumerate(names)
    ]


def mean_r_table(
    expression: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    covariates: pd.DataFrame | None,
    perf: pd.DataFrame,
    permutations: int,
    seed: int,
    residualize: bool = True,
    folds: dict[str, pd.DataFrame] | None = None,
    fitted: tuple[str, ...] = (),
    test_people: dict[str, list[str]] | None = None,
    floors: dict | None = None,
) -> pd.DataFrame:
    """mean_r.tsv (MEAN_R_COLUMNS): per predictor of `perf` (rule performance's table) its
    mean r on the shared and on its own tested genes, on the people `perf` used, with the
    permutation p-value (module doc). `folds`: predictor → outer-fold labels (fitted
    predictors with out-of-fold predictions); `fitted`: predictors fitted on the cohort
    (without folds: not tested); `test_people`: predictor → the only people it may be
    scored on (models fine-tuned on this cohort: own genes testable on those people)."""
    from hapexp.verdict.performance import align_all, gene_table

    folds, test_people, floors = folds or {}, test_people or {}, floors or {}
    expr, aligned, cov = align_all(expression, predictions, covariates)
    cov = cov if residualize else None
    keys_all = permutation_keys(expr.shape[1], permutations, seed)
    rows = []
    for name, (e, p) in aligned.items():
        if name in test_people:
            people = [s for s in expression.columns if s in set(test_people[name]) and s in set(p.columns)]
            if covariates is not None:
                people = [s for s in people if s in set(covariates.columns)]
            e_t, p_t = expression.loc[e.index, people], p.loc[:, people]
            c_t = None if covariates is None or not residualize else covariates.loc[:, people]
            t = gene_table(e_t, p_t, c_t, floor=floors.get(name, 1e-6), residualize=residualize)
            own = list(t.index[np.isfinite(t["pearson_r"])])
            keys = permutation_keys(len(people), permutations, seed)
            rows += mean_r_rows(name, e_t, p_t, c_t, {"own": own}, keys, people="test")
            continue
        d = perf[perf["predictor"] == name]
        tested = d[np.isfinite(d["pearson_r"].astype(float))]
        gene_sets = {
            "shared": list(tested.loc[tested["in_shared_set"].astype(bool), "gene_id"]),
            "own": list(tested["gene_id"]),
        }
        method = FREEDMAN_LANE  # with folds: mean_r_rows decides (one held-out fold, if common)
        if name in fitted and name not in folds:
            method = NOT_TESTED
            log.warning("%s is fitted on the cohort and has no fold labels: its mean r is not tested", name)
        rows += mean_r_rows(name, e, p, cov, gene_sets, keys_all, folds=folds.get(name), method=method)
    return pd.DataFrame(rows, columns=MEAN_R_COLUMNS)
