"""The permuted-expression check on the user's own cohort (issue 20, item 3).

On genes where genotype says nothing about expression, a calibrated predictor is called
significant at p < 0.05 on 5 % of the genes (2.5 % in each direction) and, at FDR q, on
any gene in at most q of the runs (BH under the complete null). This module makes such
genes out of the cohort itself and counts:

- **Permutations of people** (`permutation_index`, `permuted_expression`): permutation b
  (1-based, b = 1..B) is the b-th of `hapexp.verdict.mean_r.permutation_keys(n, ·, seed)`
  (the mean-r test's seeded permutations of people, drawn one after the other) over the
  prepared expression's people: one permutation for all genes, so the correlation between
  genes (and so the spread of the fraction of significant genes) is the cohort's, and
  permutation b does not depend on B. Freedman–Lane: the prepared expression is already
  the residual of the reduced model (expression on intercept + covariates + expression
  PCs, `hapexp.inputs.expression`); its columns are permuted and re-residualized on the
  covariates in the original order, `(I − H) Π r`. Regressing that on covariates +
  prediction gives exactly Freedman–Lane's statistic (the reduced model's fitted values
  are orthogonal to what is left), so the covariates stay valid.
- **Which predictors** (`run_null_check`): every predictor not trained on the cohort,
  scored by `hapexp.verdict.performance.cross_individual` against each permuted expression
  on the same people, covariates and constancy floors as rule performance: the deep models
  not fine-tuned on the cohort and the optional external PredictDB db as they are, and
  the elastic net *refitted* on each permuted expression (`refit_elasticnet`: the
  elastic net of rule elasticnet, `fit_chunk`, per chunk). Fine-tuned models and heads are
  trained on this cohort's people; they are judged on held-out people in the split
  verdict and named here as not covered. The real (unpermuted) run is performance.tsv.
- **Bounds from the permutations** (`null_bounds`): per predictor, the fraction f_b of
  its tested genes with p < 0.05 (and in each direction) in permutation b. Genes are
  correlated, so f_b varies across permutations more than a binomial count of independent
  genes would: its spread σ is the standard deviation of f_b across the permutations,
  never less than the binomial √(α(1 − α)/G) of G independent genes (what few
  permutations cannot estimate below). The predictor is inside when the mean over the B
  permutations is within α ± z·σ/√B (z = 2.58, 99 %), in both directions; and at FDR q
  when the number of permutations with any significant gene is within the 99 % binomial
  quantile of B runs at rate q. One run's null bounds, α ± z·σ, tell whether the real
  run has more significant genes than chance.
- **Too few genes** (`MIN_GENES`): below 127 genes tested, one run's 99 % binomial bounds
  around 5 % reach 10 % (z²(1 − α)/α = 126.1): the check cannot tell a calibrated
  predictor from one called significant twice as often (the pooled elastic net's rate on
  null genes in issue 20); summary.md says so.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy import stats as sstats

from hapexp.stats import covariate_design, residualize

log = logging.getLogger(__name__)

NULL_ALPHA = 0.05
BOUND_Z = float(sstats.norm.ppf(0.995))  # 99 % bounds
MIN_GENES = math.ceil(BOUND_Z**2 * (1 - NULL_ALPHA) / NULL_ALPHA)
REAL = "real"
PERMUTED = "permuted"
TABLE_COLUMNS = [
    "predictor",
    "run",
    "permutation",
    "genes_tested",
    "fraction_p05",
    "fraction_p05_positive",
    "fraction_p05_negative",
    "fraction_fdr",
]
PVALUE_COLUMNS = ["predictor", "run", "permutation", "gene_id", "pearson_r", "pearson_p"]
# the metrics checked against nominal: column -> expected fraction under the null
NOMINAL = {
    "fraction_p05": NULL_ALPHA,
    "fraction_p05_positive": NULL_ALPHA / 2,
    "fraction_p05_negative": NULL_ALPHA / 2,
}


def permutation_index(n: int, seed: int, b: int) -> np.ndarray:
    """Permutation b (1-based) of n people: the same for every gene and job."""
    if b < 1:
        raise ValueError(f"permutation numbers start at 1 (0 is the real run), got {b}")
    from hapexp.verdict.mean_r import permutation_keys

    return permutation_keys(n, int(b), int(seed))[int(b) - 1]


def permuted_expression(
    prepared: pd.DataFrame, covariates: pd.DataFrame | None, seed: int, b: int
) -> pd.DataFrame:
    """Freedman–Lane permutation b of the prepared (residualized) expression, genes × people:
    every gene's values permuted by the same `permutation_index`, then residualized again on
    intercept + `covariates` (covariates × people) in the original order."""
    x = prepared.to_numpy(dtype=float)
    q = None
    if covariates is not None and covariates.shape[0]:
        q = covariate_design(covariates.loc[:, list(prepared.columns)].to_numpy(dtype=float).T)
    idx = permutation_index(x.shape[1], seed, b)
    return pd.DataFrame(residualize(x[:, idx], q), index=prepared.index, columns=prepared.columns)


def refit_elasticnet(dosages, genes, prepared, covariates, *, permutations: int, seed: int, en: dict,
                     threads: int = 1, build=None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The elastic net of rule elasticnet (`fit_chunk`, settings `en`: alpha, outer_folds,
    inner_folds, seed, thresh) refitted on each of `permutations` permuted expressions.
    Returns (out-of-fold predictions, outer-fold labels), each a long table: `permutation`
    (1..B), gene_id, one column per person."""
    from hapexp.linear.elasticnet import fit_chunk

    oofs, folds = [], []
    for b in range(1, int(permutations) + 1):
        expr = permuted_expression(prepared, covariates, seed, b)
        fitted = fit_chunk(
            dosages, genes, expr, alpha=en["alpha"], outer_folds=en["outer_folds"],
            inner_folds=en["inner_folds"], seed=en["seed"], thresh=en["thresh"], threads=threads, build=build,
        )  # fmt: skip
        oofs.append(fitted[1].assign(permutation=b))
        folds.append(fitted[4].assign(permutation=b))  # its held-out fold p-values
        log.info("permutation %d: elastic net refitted on %d genes", b, len(fitted[1]))
    return _long(oofs, prepared.columns), _long(folds, prepared.columns)


def _long(frames, samples) -> pd.DataFrame:
    cols = ["permutation", "gene_id", *samples]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames).rename_axis("gene_id").reset_index()[cols]


def _split_long(table: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """{permutation: genes × people} of a long table from `refit_elasticnet`."""
    out = {}
    for b, t in table.groupby("permutation", sort=True):
        m = t.drop(columns="permutation").set_index("gene_id").astype(float)
        m.index = m.index.astype(str)
        out[int(b)] = m
    return out


def score_permutations(prepared, covariates, fixed: dict, refitted: dict, refit_folds: dict, *,
                       permutations: int, seed: int, floors: dict, residualize: bool) -> pd.DataFrame:  # fmt: skip
    """`cross_individual` of every predictor against each permuted expression: `fixed`
    (name → genes × people, not fitted on the cohort, scored as they are) and `refitted`
    (name → {permutation: predictions refitted on that permuted expression}, with their
    outer-fold labels in `refit_folds`: tested on their held-out folds). Returns the per-gene rows
    (PVALUE_COLUMNS + fdr) of every permuted run."""
    from hapexp.verdict.performance import cross_individual

    frames = []
    for b in range(1, int(permutations) + 1):
        expr = permuted_expression(prepared, covariates, seed, b)
        preds = dict(fixed)
        folds = {}
        for name, by_b in refitted.items():
            if b not in by_b:
                raise ValueError(
                    f"{name}: no refit for permutation {b} (rerun its null_check_elasticnet jobs)"
                )
            preds[name] = by_b[b]
            folds[name] = refit_folds[name][b]
        perf = cross_individual(expr, preds, covariates, floors=floors, residualize=residualize, folds=folds)
        frames.append(perf.assign(run=PERMUTED, permutation=b))
    return pd.concat(frames, ignore_index=True)[[*PVALUE_COLUMNS, "fdr"]]


def run_fractions(perf: pd.DataFrame, fdr: float) -> pd.DataFrame:
    """Per predictor × run (TABLE_COLUMNS): genes tested (finite p) and the fractions of them
    with p < 0.05, with p < 0.05 and r > 0, with p < 0.05 and r < 0, and at BH FDR < `fdr`
    (`fdr` column: BH over the predictor's tested genes in that run)."""
    p = perf["pearson_p"].astype(float)
    r = perf["pearson_r"].astype(float)
    tested = np.isfinite(p)
    sig = tested & (p < NULL_ALPHA)
    d = pd.DataFrame(
        {
            "predictor": perf["predictor"],
            "run": perf["run"],
            "permutation": perf["permutation"].astype(int),
            "tested": tested,
            "sig": sig,
            "pos": sig & (r > 0),
            "neg": sig & (r < 0),
            "fdr_sig": tested & (perf["fdr"].astype(float) < fdr),
        }
    )
    g = d.groupby(["predictor", "run", "permutation"], sort=False)[
        ["tested", "sig", "pos", "neg", "fdr_sig"]
    ].sum()
    n = g["tested"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame(
            {
                "genes_tested": g["tested"].astype(int).to_numpy(),
                "fraction_p05": g["sig"] / n,
                "fraction_p05_positive": g["pos"] / n,
                "fraction_p05_negative": g["neg"] / n,
                "fraction_fdr": g["fdr_sig"] / n,
            },
            index=g.index,
        )
    return out.reset_index()[TABLE_COLUMNS]


def null_bounds(table: pd.DataFrame, fdr: float) -> pd.DataFrame:
    """Per predictor: the permutations' mean fraction of each metric (NOMINAL), its spread σ
    (SD across permutations, at least binomial), the 99 % bounds of the mean around nominal
    (`<metric>_lo`, `_hi`) and whether it is inside; the permutations with any gene at FDR
    `fdr` against the 99 % binomial quantile of B runs at rate `fdr`; the real run's
    fraction with p < 0.05 and one run's null bounds (module doc)."""
    rows = []
    for name, t in table.groupby("predictor", sort=False):
        perm = t[t["run"] == PERMUTED]
        real = t[t["run"] == REAL]
        b = len(perm)
        genes = int(np.median(perm["genes_tested"])) if b else 0
        # a predictor constant on every gene (nothing tested) is not checked, not outside
        row = {"predictor": name, "permutations": b, "genes_tested": genes, "checked": genes > 0}
        inside = b >= 2
        for col, nominal in NOMINAL.items():
            f = perm[col].to_numpy(float)
            f = f[np.isfinite(f)]
            sd = float(np.std(f, ddof=1)) if f.size >= 2 else np.nan
            sigma = max(sd if np.isfinite(sd) else 0.0, math.sqrt(nominal * (1 - nominal) / max(genes, 1)))
            half = BOUND_Z * sigma / math.sqrt(max(f.size, 1))
            mean = float(f.mean()) if f.size else np.nan
            lo, hi = max(nominal - half, 0.0), nominal + half
            row.update({col: mean, f"{col}_min": f.min() if f.size else np.nan,
                        f"{col}_max": f.max() if f.size else np.nan, f"{col}_sd": sd,
                        f"{col}_lo": lo, f"{col}_hi": hi})  # fmt: skip
            ok = bool(f.size >= 2 and lo <= mean <= hi)
            row[f"{col}_inside"] = ok
            inside &= ok
            if col == "fraction_p05":
                row["run_lo"], row["run_hi"] = max(nominal - BOUND_Z * sigma, 0.0), nominal + BOUND_Z * sigma
        row["fraction_fdr"] = float(perm["fraction_fdr"].mean()) if b else np.nan
        row["fdr_runs_any"] = int((perm["fraction_fdr"] > 0).sum())
        row["fdr_runs_max"] = int(sstats.binom.ppf(0.99, b, fdr)) if b else 0
        row["fdr_inside"] = row["fdr_runs_any"] <= row["fdr_runs_max"]
        row["inside"] = bool(inside and row["fdr_inside"])
        row["real_p05"] = float(real["fraction_p05"].iloc[0]) if len(real) else np.nan
        row["real_fdr"] = float(real["fraction_fdr"].iloc[0]) if len(real) else np.nan
        row["real_genes"] = int(real["genes_tested"].iloc[0]) if len(real) else 0
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def null_check_lines(null_check, fdr: float, predictors: list[str]) -> list[str]:
    """summary.md's section on the permuted-expression check: from `null_check` (the
    null_check.tsv path or table), per predictor the fraction of genes significant at p < 0.05
    (each direction) and at FDR `fdr` under permutation with bounds from the permutations,
    inside or outside; the real run against one run's null bounds; a sentence when too few
    genes; `predictors` (every predictor of the verdicts) not in the table named as not covered."""
    table = null_check if isinstance(null_check, pd.DataFrame) else pd.read_csv(null_check, sep="\t")
    bounds = null_bounds(table, fdr)
    covered = list(bounds["predictor"])
    b = int(bounds["permutations"].max()) if len(bounds) else 0
    lines = ["## Permuted-expression check (null_check.tsv)", ""]
    lines.append(
        f"{b} seeded permutations of the people, one for all genes (Freedman–Lane: the covariate-residualized "
        "expression permuted and residualized again on the covariates in their original order): genotype no longer "
        "says anything about expression, while the covariates and the correlation between genes stay the cohort's. "
        "The elastic net is refitted on each permuted expression; predictors not trained on the cohort are scored as "
        f"they are. A calibrated predictor is called significant at p < 0.05 on 5 % of the genes (2.5 % each way) "
        f"and, at FDR {fdr}, on any gene in at most {100 * fdr:g} % of the permutations. Bounds (99 %) for the mean over "
        "the permutations: 5 % ± 2.58·σ/√B, σ the spread of the fraction across the permutations (genes are "
        "correlated), never below the binomial spread of independent genes; one run's null bounds: 5 % ± 2.58·σ."
    )
    lines += [
        "",
        "| predictor | genes | p < 0.05 under permutation: mean (range) | bounds | r > 0 / r < 0 "
        f"| FDR < {fdr}: permutations with any gene (allowed) | calibrated | real run: p < 0.05 (one run's null bounds) "
        f"| real run: FDR < {fdr} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in bounds.iterrows():
        real = r["real_p05"]
        side = (
            "above: more genes than chance" if real > r["run_hi"] else "below" if real < r["run_lo"] else "inside"
        ) if np.isfinite(real) else "–"  # fmt: skip
        verdict = "no gene tested" if not r["checked"] else "inside" if r["inside"] else "**outside**"
        lines.append(
            f"| {r['predictor']} | {r['genes_tested']} | {_pct(r['fraction_p05'])} ({_pct(r['fraction_p05_min'])}–"
            f"{_pct(r['fraction_p05_max'])}) | {_pct(r['fraction_p05_lo'])}–{_pct(r['fraction_p05_hi'])} | "
            f"{_pct(r['fraction_p05_positive'])} / {_pct(r['fraction_p05_negative'])} | {r['fdr_runs_any']} of "
            f"{r['permutations']} (≤ {r['fdr_runs_max']}) | {verdict} | "
            f"{_pct(real)} ({_pct(r['run_lo'])}–{_pct(r['run_hi'])}): {side} | {_pct(r['real_fdr'])} |"
        )
    lines.append("")
    checked = bounds[bounds["checked"]]
    outside = checked[~checked["inside"]]
    if len(checked) and not len(outside):
        lines.append(f"- Every predictor checked ({', '.join(checked['predictor'])}) is inside the bounds.")
    for name in bounds.loc[~bounds["checked"], "predictor"]:
        lines.append(
            f"- {name}: its predictions do not vary between people on any gene under permutation: not checked."
        )
    for _, r in outside.iterrows():
        failed = [
            what
            for what, ok in (
                ("p < 0.05", r["fraction_p05_inside"]),
                ("r > 0", r["fraction_p05_positive_inside"]),
                ("r < 0", r["fraction_p05_negative_inside"]),
                (f"FDR {fdr}", r["fdr_inside"]),
            )
            if not ok
        ]
        lines.append(
            f"- **{r['predictor']} is outside the bounds** ({', '.join(failed)}): on this cohort its p-values are "
            "not what they claim when there is nothing to find; its significant genes in the tables above are not "
            "to be trusted at face value."
        )
    few = checked[checked["genes_tested"] < MIN_GENES]
    if len(few):
        lines.append(
            f"- Too few genes for the check to mean much: {', '.join(few['predictor'])} tested "
            f"{int(few['genes_tested'].min())}–{int(few['genes_tested'].max())} genes, fewer than {MIN_GENES}; "
            "with fewer, one run's 99 % bounds around 5 % reach 10 %, so the check cannot tell a calibrated predictor "
            "from one called significant twice as often."
        )
    if b < 10:
        lines.append(
            f"- {b} permutations (null_check.permutations) estimate the spread across permutations roughly; a real "
            "study should use at least 10 (each refits the elastic net once more)."
        )
    missing = [p for p in dict.fromkeys(predictors) if p not in covered]
    if missing:
        lines.append(
            f"- Not covered: {', '.join(missing)} — trained on this cohort's people (fine-tuned models, heads, the "
            "training-people elastic net); they are judged on held-out people in the verdict on the splits."
        )
    return lines


def run_null_check_elasticnet(prepared, covariates, vcf, chunk, oof, folds, elasticnet: dict, models: dict,
                              policies: dict, build, null_check: dict, threads: int) -> None:  # fmt: skip
    """Rule `null_check_elasticnet`: rule elasticnet's elastic net (settings `elasticnet`, on
    the same variants: `cis_dosages` with its window, MAF and PredictDB exclusions) refitted
    on each permuted expression of `null_check` (permutations, seed) for one `chunk` of
    genes; writes the out-of-fold predictions (`oof`) and outer-fold labels (`folds`), long
    tables by permutation."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import read_matrix, write_tsv
    from hapexp.variants.genotypes import cis_dosages
    from hapexp.variants.windows import resolve_window

    expr = read_matrix(prepared)
    cov = read_matrix(covariates, index_col="id")
    genes = pd.read_csv(chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
    window = resolve_window(elasticnet["window"], models)
    dosages, genes = cis_dosages(
        vcf,
        genes,
        window,
        list(expr.columns),
        elasticnet["maf"],
        policies,
        elasticnet["predictdb_exclusions"],
    )
    # as rule elasticnet: genes in forked processes, BLAS single-threaded in each
    with threadpool_limits(limits=1):
        oofs, labels = refit_elasticnet(
            dosages, genes, expr, cov, permutations=null_check["permutations"], seed=null_check["seed"],
            en=elasticnet, threads=threads, build=build,
        )  # fmt: skip
    write_tsv(oofs, oof)
    write_tsv(labels, folds)


def run_null_check(performance, prepared, covariates, matrices, oof_chunks, folds_chunks, table, pvalues,
                   models: list[str], floors: dict, residualize: bool, fdr: float, null_check: dict,
                   precision=(), predictdb=None, bcf=None) -> pd.DataFrame:  # fmt: skip
    """Rule `null_check`: the predictors not trained on the cohort (`models`: the deep models
    not fine-tuned on it, with their `matrices`; the elastic net refitted per permutation,
    `oof_chunks`/`folds_chunks` of rule null_check_elasticnet; the external `predictdb` db on
    the normalized `bcf`) scored against each permuted expression as rule performance scores
    them (`floors`, `precision`, `residualize`); writes `table` (null_check.tsv: per
    predictor × run, the real run from `performance`) and `pvalues` (per gene, every run:
    the QQ figure)."""
    from hapexp.io import read_matrix, write_tsv
    from hapexp.verdict.performance import LINEAR_FLOOR, resolve_floors

    expr = read_matrix(prepared)
    cov = read_matrix(covariates, index_col="id")
    floors = resolve_floors({m: floors.get(m) for m in models}, precision)
    fixed = {name: read_matrix(p) for name, p in zip(models, matrices, strict=True)}
    if predictdb:
        from hapexp.linear.predictdb import predictdb_predict, read_predictdb_weights

        fixed["predictdb"] = predictdb_predict(
            read_predictdb_weights(predictdb), bcf, list(expr.columns), list(expr.index)
        )
        floors["predictdb"] = LINEAR_FLOOR
    refitted, refit_folds = {}, {}
    if oof_chunks:
        read = [pd.read_csv(f, sep="\t", dtype={"gene_id": str}) for f in oof_chunks]
        refitted["elasticnet"] = _split_long(pd.concat(read, ignore_index=True))
        labels = [pd.read_csv(f, sep="\t", dtype={"gene_id": str}) for f in folds_chunks]
        labels = _split_long(pd.concat(labels, ignore_index=True))
        refit_folds["elasticnet"] = {b: m.astype(np.int64) for b, m in labels.items()}
        floors["elasticnet"] = LINEAR_FLOOR
    permuted = score_permutations(
        expr, cov, fixed, refitted, refit_folds, permutations=null_check["permutations"],
        seed=null_check["seed"], floors=floors, residualize=residualize,
    )  # fmt: skip
    perf = pd.read_csv(performance, sep="\t", dtype={"gene_id": str})
    covered = [*fixed, *refitted]
    real = perf[perf["predictor"].isin(covered)].assign(run=REAL, permutation=0)[[*PVALUE_COLUMNS, "fdr"]]
    runs = pd.concat([real, permuted], ignore_index=True)
    result = run_fractions(runs, fdr)
    write_tsv(result, table)
    write_tsv(runs[PVALUE_COLUMNS], pvalues)
    bounds = null_bounds(result, fdr)
    for _, r in bounds.iterrows():
        log.info(
            "%s: p < 0.05 on %.1f %% of %d genes under permutation (bounds %.1f–%.1f %%): %s; real run %.1f %%",
            r["predictor"], 100 * r["fraction_p05"], r["genes_tested"], 100 * r["fraction_p05_lo"],
            100 * r["fraction_p05_hi"], "inside" if r["inside"] else "OUTSIDE", 100 * r["real_p05"],
        )  # fmt: skip
    return result
