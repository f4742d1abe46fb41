"""Cross-individual and cross-gene performance of expression predictors.

Cross-individual (`gene_table`, `cross_individual`): per gene, a predictor's per-person
prediction against the prepared expression over the same individuals — the samples
shared by the expression and *every* predictor, so that all are judged on the same
people. The prediction is first residualized on exactly the covariates (+ expression
PCs) the expression was residualized on (intercept included; least squares), then
Pearson and Spearman r of the two residual vectors with t-test p-values on
dof = n − 2 − k (k covariates): the partial correlation, i.e. the t-test of the
prediction's coefficient in OLS `expression ~ 1 + covariates + prediction`.
`residualize=False` (config `performance.residualize_predictions: false`) gives the
anchors' raw correlation with dof = n − 2. Spearman r is the Pearson r of the ranks of
the two residual vectors (its p-value from the same t approximation).

Constant predictions: a prediction whose spread across the individuals is within its
model's numerical resolution (`hapexp.precision`: 1e-6 relative in fp32, 1e-2 in bf16,
or a measured noise floor passed as `floors`, per predictor or per gene) is rounding,
not signal: r is NaN, the gene is counted as constant, not tested.

Gene sets: `fdr` is Benjamini-Hochberg across the genes each predictor tested (its own
set); `shared_genes` are the genes tested by every predictor (that tested any), and
`fdr_shared` is BH across that shared set — what the headline numbers and the
linear-vs-deep comparison use (`add_shared_set`).

Cross-gene: the reference-genome prediction against the mean expression level across
genes (what the models were trained to do; Huang et al. 2023 Fig. 1b), from the
optional expression-level matrix (un-residualized) or else the expression input.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from .expression import covariate_design
from .precision import RELATIVE_RESOLUTION

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
]
GENE_TABLE_COLUMNS = PERFORMANCE_COLUMNS[2:9]

# Default floor of predictors without a model precision (the linear ones, float64).
LINEAR_FLOOR = RELATIVE_RESOLUTION["fp64"]
# The prepared expression is float64 residuals.
EXPRESSION_FLOOR = RELATIVE_RESOLUTION["fp64"]


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


def rowwise_pearson(
    x: np.ndarray, y: np.ndarray, floor=RELATIVE_RESOLUTION["fp32"]
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between matching rows of x and y (n_rows × n_samples), NaN-aware.

    Returns (r, n) where n counts the samples finite in both. r is NaN when a row has
    fewer than 3 usable samples or no variation beyond `floor` (relative) on either side.
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


def r_pvalue(r: np.ndarray, n: np.ndarray, k: int | np.ndarray = 0) -> np.ndarray:
    """Two-sided p-value of a (partial) correlation r from n pairs after k covariates:
    t = r·sqrt(dof / (1 − r²)), dof = n − 2 − k (k = 0: scipy.stats.pearsonr)."""
    r = np.asarray(r, dtype=float)
    df = np.asarray(n, dtype=float) - 2 - np.asarray(k, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = r * np.sqrt(df / np.maximum(1.0 - r * r, 1e-300))
        p = 2 * stats.t.sf(np.abs(t), df)
    return np.where(np.isfinite(r) & (df > 0), p, np.nan)


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks per row, NaN kept as NaN (ties averaged, like scipy.stats.spearmanr)."""
    return stats.rankdata(a, axis=1, method="average", nan_policy="omit")


def rowwise_spearman(
    x: np.ndarray, y: np.ndarray, floor=RELATIVE_RESOLUTION["fp32"]
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho between matching rows (Pearson on ranks of the jointly finite samples).
    Constancy is judged on the values (ranks of rounding noise vary)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = np.isfinite(x) & np.isfinite(y)
    xr = _rank_rows(np.where(mask, x, np.nan))
    yr = _rank_rows(np.where(mask, y, np.nan))
    rho, n = rowwise_pearson(xr, yr, floor=0.0)
    r_values, _ = rowwise_pearson(x, y, floor)
    return np.where(np.isnan(r_values), np.nan, rho), n


def _residualize(x: np.ndarray, cov: np.ndarray | None) -> np.ndarray:
    """Rows of x (features × samples) centred and projected off the covariates
    (samples × k; intercept implied)."""
    x0 = x - x.mean(axis=1, keepdims=True)
    if cov is None or cov.shape[1] == 0:
        return x0
    q = covariate_design(cov)
    return x0 - (x0 @ q) @ q.T


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
    constant = below_floor(np.where(ok, p, np.nan), floor) & (n >= 3)
    flat_e = below_floor(np.where(ok, e, np.nan), EXPRESSION_FLOOR)
    r = np.full(len(p), np.nan)
    rho = np.full(len(p), np.nan)
    testable = ~constant & ~flat_e & (n - 2 - k > 0)
    complete = ok.all(axis=1)
    for rows, cols in _row_groups(testable, complete, ok):
        pr, er = p[np.ix_(rows, cols)], e[np.ix_(rows, cols)]
        if residualize:
            c = None if cov is None else cov[cols]
            pr, er = _residualize(pr, c), _residualize(er, c)
            # a prediction explained by the covariates leaves nothing to test
            raw = p[np.ix_(rows, cols)]
            raw_ss = ((raw - raw.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            gone = (pr * pr).sum(axis=1) <= 1e-20 * raw_ss
        else:
            gone = np.zeros(len(rows), bool)
        rr, _ = rowwise_pearson(pr, er, floor=0.0)
        rs, _ = rowwise_spearman(pr, er, floor=0.0)
        r[rows] = np.where(gone, np.nan, rr)
        rho[rows] = np.where(gone, np.nan, rs)
        constant[rows] |= gone
    dof = np.where(n >= 3, n - 2 - k, 0)
    return pd.DataFrame(
        {
            "n": n.astype(int),
            "dof": dof.astype(int),
            "pearson_r": r,
            "pearson_p": r_pvalue(r, n, k),
            "spearman_r": rho,
            "spearman_p": r_pvalue(rho, n, k),
            "constant": constant,
        },
        index=pd.Index(expression.index.astype(str), name="gene_id"),
    )[GENE_TABLE_COLUMNS]


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
) -> pd.DataFrame:
    """Per gene × predictor (columns PERFORMANCE_COLUMNS): `gene_table` on the samples shared
    by all predictors, BH FDR per predictor over its own tested genes (`fdr`), and the
    shared gene set (`in_shared_set`, `fdr_shared`). `floors`: predictor → relative
    resolution (scalar, or per gene as a Series); default fp32's 1e-6."""
    floors = floors or {}
    _, aligned, cov = align_all(expression, predictions, covariates)
    frames = []
    for name, (e, p) in aligned.items():
        if e.shape[1] < 3:
            log.warning("predictor %s shares only %d samples with the expression; skipped", name, e.shape[1])
            continue
        t = gene_table(
            e, p, cov, floor=floors.get(name, RELATIVE_RESOLUTION["fp32"]), residualize=residualize
        )
        t = t.reset_index()
        t.insert(1, "predictor", name)
        t["fdr"] = bh_fdr(t["pearson_p"])
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=PERFORMANCE_COLUMNS)
    return add_shared_set(pd.concat(frames, ignore_index=True))


def shared_genes(perf: pd.DataFrame) -> list[str]:
    """Genes with a finite r for every predictor that tested at least one gene (a predictor
    whose predictions are all constant does not empty the set; it is reported as such)."""
    tested = perf[np.isfinite(perf["pearson_r"].astype(float))]
    preds = list(dict.fromkeys(tested["predictor"]))
    if not preds:
        return []
    sets = [set(tested.loc[tested["predictor"] == name, "gene_id"]) for name in preds]
    common = set.intersection(*sets)
    return [g for g in dict.fromkeys(perf["gene_id"]) if g in common]


def add_shared_set(perf: pd.DataFrame) -> pd.DataFrame:
    """`in_shared_set` and `fdr_shared` (BH per predictor across the shared genes)."""
    perf = perf.copy()
    shared = set(shared_genes(perf))
    perf["in_shared_set"] = perf["gene_id"].isin(shared) & np.isfinite(perf["pearson_r"].astype(float))
    perf["fdr_shared"] = np.nan
    for idx in perf.groupby("predictor", sort=False).groups.values():
        sub = perf.loc[idx]
        m = sub["in_shared_set"].to_numpy(bool)
        q = np.full(len(sub), np.nan)
        q[m] = bh_fdr(sub["pearson_p"].to_numpy(float)[m])
        perf.loc[idx, "fdr_shared"] = q
    return perf[PERFORMANCE_COLUMNS]


def summarize_performance(perf: pd.DataFrame, fdr: float = 0.05, gene_set: str = "own") -> pd.DataFrame:
    """Per predictor: genes tested, constant genes, mean/median r, significant positive /
    negative genes at `fdr`. `gene_set`: "own" (each predictor's tested genes, `fdr`
    column) or "shared" (the shared gene set, `fdr_shared`)."""
    rows = []
    fcol = "fdr" if gene_set == "own" else "fdr_shared"
    for name, d in perf.groupby("predictor", sort=False):
        r_all = d["pearson_r"].astype(float)
        t = d[np.isfinite(r_all)]
        if gene_set == "shared":
            t = t[t["in_shared_set"].astype(bool)]
        sig = t[fcol].astype(float) < fdr
        rows.append(
            {
                "predictor": name,
                "gene_set": gene_set,
                "genes_tested": len(t),
                # Predictions constant across individuals (within resolution): not testable.
                "genes_constant": int(d["constant"].astype(bool).sum()) if "constant" in d else 0,
                "mean_r": t["pearson_r"].mean() if len(t) else np.nan,
                "median_r": t["pearson_r"].median() if len(t) else np.nan,
                "mean_spearman_r": t["spearman_r"].mean() if len(t) else np.nan,
                # Is the average r different from 0 across genes? (one-sample t-test)
                "mean_r_p": float(stats.ttest_1samp(t["pearson_r"], 0.0).pvalue) if len(t) > 2 else np.nan,
                "n_sig_positive": int((sig & (t["pearson_r"] > 0)).sum()),
                "n_sig_negative": int((sig & (t["pearson_r"] < 0)).sum()),
            }
        )
    return pd.DataFrame(rows)


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
        null_pred = _residualize(null_pred, covariates)
        y = _residualize(y[None, :], covariates)[0]
    r_null, _ = rowwise_pearson(null_pred, np.broadcast_to(y, null_pred.shape), floor=0.0)
    r_null = r_null[np.isfinite(r_null)]
    if len(r_null) < 2:
        return np.nan, np.nan
    sd = r_null.std(ddof=1)
    z = r_observed / sd if sd > 0 else np.nan
    p = (1 + np.sum(np.abs(r_null) >= abs(r_observed))) / (1 + len(r_null))
    return float(z), float(p)


def mean_expression(raw: pd.DataFrame) -> tuple[pd.Series, str]:
    """Mean expression per gene across samples; log2(x + 1) first when all values are >= 0.

    Counts/TPM are heavy-tailed across genes, so Pearson on the raw scale would be
    driven by a few genes; the scale used is returned and written to cross_gene.tsv.
    """
    values = raw.to_numpy(dtype=float)
    if np.nanmin(values) >= 0:
        return pd.Series(np.nanmean(np.log2(values + 1), axis=1), index=raw.index), "log2(x+1)"
    return pd.Series(np.nanmean(values, axis=1), index=raw.index), "as given"


def level_columns(level: pd.DataFrame, samples: list[str]) -> pd.DataFrame:
    """The analysed individuals' columns of an expression-level matrix: matched exactly or
    by the id before the first "." (Geuvadis GD660 libraries: HG00096.1.M_111124_6); all
    columns when none match."""
    want = set(samples)
    keep = [c for c in level.columns if c in want or str(c).split(".")[0] in want]
    if not keep:
        log.warning("expression level: no column matches an analysed sample; using all %d", level.shape[1])
        return level
    return level.loc[:, keep]


def cross_gene(
    raw_expression: pd.DataFrame, references: dict[str, pd.Series], source: str = "expression"
) -> pd.DataFrame:
    """Per model: reference-genome prediction vs mean expression level across genes.
    `source` names the matrix the levels come from (written to cross_gene.tsv)."""
    mean, scale = mean_expression(raw_expression)
    rows = []
    for name, ref in references.items():
        genes = [g for g in ref.index if g in mean.index]
        x = ref.loc[genes].to_numpy(dtype=float)
        y = mean.loc[genes].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            pr, pp = stats.pearsonr(x, y)
            sr, sp = stats.spearmanr(x, y)
        else:
            pr = pp = sr = sp = np.nan
        rows.append(
            {
                "model": name,
                "n_genes": int(len(x)),
                "spearman_r": float(sr),
                "spearman_p": float(sp),
                "pearson_r": float(pr),
                "pearson_p": float(pp),
                "expression_scale": scale,
                "expression_source": source,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- dosages
def read_dosages(vcf_path, chrom: str, start0: int, end0: int, samples: list[str]) -> pd.DataFrame:
    """ALT dosages (0, 1, 2) of the biallelic variants in [start0, end0) (0-based, half-open).

    Rows are indexed by `variant_id` = chrom_pos_ref_alt (1-based pos); columns are
    `samples`. Missing genotypes become NaN. Reads the cohort's normalized BCF (one
    ALT per record after `bcftools norm -m-`); multi-ALT records are skipped.
    """
    import pysam

    rows, ids = [], []
    with pysam.VariantFile(str(vcf_path)) as vf:
        vf.subset_samples(samples)
        names = list(vf.header.samples)
        if chrom not in vf.header.contigs:
            return pd.DataFrame(columns=samples, dtype=float)
        for rec in vf.fetch(chrom, max(0, start0), end0):
            if rec.alts is None or len(rec.alts) != 1:
                continue
            d = np.empty(len(names))
            for i, s in enumerate(rec.samples.values()):
                gt = s.get("GT")
                if gt is None or any(a is None for a in gt):
                    d[i] = np.nan
                else:
                    d[i] = sum(1 for a in gt if a == 1)
            rows.append(d)
            ids.append(f"{rec.chrom}_{rec.pos}_{rec.ref}_{rec.alts[0]}")
    df = pd.DataFrame(np.array(rows).reshape(len(rows), len(names)), index=ids, columns=names)
    df.index.name = "variant_id"
    return df[samples]


# --------------------------------------------------------------------------- PredictDB
def read_predictdb_weights(db_path) -> pd.DataFrame:
    """The `weights` table of a PredictDB sqlite db: gene, rsid, varID, ref_allele,
    eff_allele, weight. GTEx v6p models have no `varID` (None here: matched by rsid)."""
    import sqlite3

    from .errors import InputError

    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        try:
            cols = {r[1] for r in con.execute("PRAGMA table_info(weights)")}
            varid = "varID" if "varID" in cols else "NULL AS varID"
            w = pd.read_sql_query(
                f"SELECT gene, rsid, {varid}, ref_allele, eff_allele, weight FROM weights", con
            )
        except Exception as exc:  # pandas wraps sqlite errors differently by version
            raise InputError(
                db_path,
                f"not a PredictDB model database ({exc})",
                "give a PredictDB .db with a `weights` table (gene, rsid, varID, ref_allele, eff_allele, weight)",
            ) from exc
    return w


def _parse_varid(varid: str) -> tuple[str, int, str, str] | None:
    """chr_pos_ref_alt[_b38] (1-based pos) → (chrom, pos, ref, alt); None when unparsable."""
    parts = str(varid).split("_")
    if len(parts) >= 4 and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2], parts[3]
    return None


def rsid_sites(vcf_path, rsids) -> dict[str, tuple[str, int, str, str]]:
    """rs id → (chrom, 1-based pos, ref, alt) of the VCF records with that ID."""
    import subprocess
    import tempfile

    ids = sorted({str(r) for r in rsids if r is not None and str(r) not in ("", ".")})
    if not ids:
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(ids) + "\n")
        f.flush()
        out = subprocess.run(
            [
                "bcftools",
                "query",
                "-i",
                f"ID=@{f.name}",
                "-f",
                "%ID\t%CHROM\t%POS\t%REF\t%ALT\n",
                str(vcf_path),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    sites = {}
    for line in out.splitlines():
        rid, c, p, r, a = line.split("\t")
        sites.setdefault(rid, (c, int(p), r, a))
    return sites


def predictdb_predict(weights: pd.DataFrame, vcf_path, samples: list[str], genes: list[str]) -> pd.DataFrame:
    """Predicted expression = Σ weight × dosage(eff_allele), per gene × sample.

    Variants are matched by chrom, 1-based position and alleles (varID; for GTEx v6p
    models without varID, the position comes from the VCF record whose ID is the
    model's rsid); when the db's effect allele is our REF the dosage is flipped
    (2 − d). Missing dosages are mean-imputed, as PrediXcan does. Gene ids match with
    or without Ensembl version.
    """
    from .formats import strip_version

    by_gene = {strip_version(g): g for g in genes}
    vid = weights["varID"] if "varID" in weights else pd.Series(None, index=weights.index, dtype=object)
    need = vid.isna().to_numpy()
    if need.any():
        sites = rsid_sites(vcf_path, weights.loc[need, "rsid"])
        weights = weights.assign(
            varID=[
                "{}_{}_{}_{}".format(*sites[r]) if (n and r in sites) else v
                for v, r, n in zip(vid, weights["rsid"], need, strict=True)
            ]
        )
    out = {}
    for db_gene, w in weights.groupby("gene", sort=False):
        gene = by_gene.get(strip_version(str(db_gene)))
        if gene is None:
            continue
        parsed = [_parse_varid(v) if v is not None else None for v in w["varID"]]
        keep = [p is not None for p in parsed]
        w, parsed = w[keep], [p for p in parsed if p is not None]
        if not parsed:
            continue
        chrom = parsed[0][0]
        pos = [p[1] for p in parsed]
        dos = read_dosages(vcf_path, chrom, min(pos) - 1, max(pos), samples)
        if dos.empty:
            # Contig naming may differ (chr1 vs 1).
            alt_chrom = chrom[3:] if chrom.startswith("chr") else f"chr{chrom}"
            dos = read_dosages(vcf_path, alt_chrom, min(pos) - 1, max(pos), samples)
        lookup = {}
        for vid in dos.index:
            c, p, r, a = _parse_varid(vid)
            lookup[(p, r, a)] = (vid, False)
            lookup[(p, a, r)] = (vid, True)
        pred = np.zeros(len(samples))
        for (_, p, _, _), ref_a, eff_a, weight in zip(
            parsed, w["ref_allele"], w["eff_allele"], w["weight"], strict=True
        ):
            hit = lookup.get((p, ref_a, eff_a))
            if hit is None:
                continue
            d = dos.loc[hit[0]].to_numpy(dtype=float)
            d = np.where(np.isfinite(d), d, np.nanmean(d) if np.isfinite(d).any() else 0.0)
            pred += weight * (2 - d if hit[1] else d)
        out[gene] = pred
    df = pd.DataFrame.from_dict(out, orient="index", columns=samples)
    df.index.name = "gene_id"
    return df


# --------------------------------------------------------------------------- rule glue
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
    from .variant_policy import record_mask

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
            dos = read_dosages(vcf_path, str(info["chrom"]), tss0 - L // 2, tss0 + L // 2, samples)
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


def run(
    prepared_path,
    raw_expression_path,
    raw_format: str,
    matrices: dict,
    references: dict,
    out_performance,
    out_cross_gene,
    oof_path=None,
    predictdb_path=None,
    vcf_path=None,
    legacy: dict | None = None,
    genes_path=None,
    covariates_path=None,
    residualize: bool = True,
    floors: dict | None = None,
    level_path=None,
    level_format: str = "auto",
    policies: dict | None = None,
    precision_paths=(),
) -> pd.DataFrame:
    """Rule `performance`: every predictor against the same prepared expression, on the
    same individuals, residualized on the same covariates (module doc).

    `floors`: predictor → relative resolution (deep models: from their precision, None
    for `auto`, resolved from the predict jobs' precision tables `precision_paths`; linear
    predictors default to float64's). `level_path`: optional un-residualized expression
    matrix for the cross-gene correlation (else the expression input)."""
    from .formats import read_expression, strip_version
    from .io import read_matrix, write_tsv

    floors = resolve_floors(floors, precision_paths)

    expression = read_matrix(prepared_path)
    covariates = read_matrix(covariates_path, index_col="id") if covariates_path else None
    predictions = {name: read_matrix(p) for name, p in matrices.items()}
    floors = dict(floors or {})
    if oof_path:
        predictions["elasticnet"] = read_matrix(oof_path)
        floors.setdefault("elasticnet", LINEAR_FLOOR)
    if predictdb_path:
        weights = read_predictdb_weights(predictdb_path)
        predictions["predictdb"] = predictdb_predict(
            weights, vcf_path, list(expression.columns), list(expression.index)
        )
        floors.setdefault("predictdb", LINEAR_FLOOR)
        log.info("predictdb: predictions for %d genes", len(predictions["predictdb"]))
    perf = cross_individual(expression, predictions, covariates, floors=floors, residualize=residualize)
    log.info(
        "predictions %s on %d covariates; %d genes in the shared gene set",
        "residualized" if residualize else "NOT residualized (raw correlation, dof n - 2)",
        0 if covariates is None else covariates.shape[0],
        len(shared_genes(perf)),
    )
    if legacy and legacy.get("enabled"):
        genes = pd.read_csv(genes_path, sep="\t", dtype={"gene_id": str, "chrom": str})
        perf = legacy_columns(
            perf,
            expression,
            genes,
            legacy["windows"],
            vcf_path,
            int(legacy["draws"]),
            int(legacy["seed"]),
            covariates=covariates if residualize else None,
            policies=policies,
        )
    write_tsv(perf, out_performance)

    if level_path:
        raw = level_columns(read_expression(level_path, level_format), list(expression.columns))
        source = f"expression_level ({level_path})"
    else:
        raw, source = read_expression(raw_expression_path, raw_format), f"expression ({raw_expression_path})"
    raw.index = strip_version(raw.index)
    refs = {}
    for name, p in references.items():
        ref = pd.read_csv(p, sep="\t", dtype={"gene_id": str}).set_index("gene_id")["value"]
        ref.index = strip_version(ref.index)
        refs[name] = ref
    write_tsv(cross_gene(raw, refs, source), out_cross_gene)
    return perf


# --------------------------------------------------------------------------- Snakemake input functions
def rule_inputs(config: dict, cohort: str) -> dict:
    """Inputs of rule `performance` for one cohort (used via unpack() in rules/concordance.smk)."""

    cfg = config["cohorts"][cohort]
    models = list(config["models"])
    inputs = {
        "prepared": f"results/{cohort}/expression/prepared.tsv",
        "covariates": f"results/{cohort}/expression/covariates.tsv",
        "raw": cfg["expression"],
        "genes": f"results/{cohort}/genes.tsv",
        "matrices": [f"results/{cohort}/predict/{m}.matrix.tsv" for m in models],
        "references": [f"results/{cohort}/predict/{m}.reference.tsv" for m in models],
        "oof": f"results/{cohort}/elasticnet/oof.tsv",
    }
    if precision := precision_inputs(config, cohort):  # the precision auto chose
        inputs["precision"] = precision
    if cfg.get("expression_level"):
        inputs["level"] = cfg["expression_level"]
    if cfg.get("predictdb"):
        inputs["predictdb"] = cfg["predictdb"]
    if cfg.get("predictdb") or config.get("concordance", {}).get("legacy_null", False):
        inputs["bcf"] = f"results/{cohort}/variants/normalized.bcf"
    return inputs


def resolve_floors(floors: dict | None, precision_paths=()) -> dict:
    """`floors` with each None (a `precision: auto` model) replaced by the resolution of
    the precision its predict jobs used, read from their precision tables."""
    from .precision import read as read_precision
    from .precision import relative_resolution, used_precision

    floors = dict(floors or {})
    if any(v is None for v in floors.values()):
        table = read_precision(list(precision_paths))
        for name, v in floors.items():
            if v is None:
                used = used_precision(table, name)
                floors[name] = relative_resolution(used)
                log.info("%s: precision auto ran in %s: constancy floor %g", name, used, floors[name])
    return floors


def precision_inputs(config: dict, cohort: str) -> list[str]:
    """The predict jobs' precision tables of the `precision: auto` models (their floors)."""
    from .config import model_spec
    from .genes import chunk_ids

    auto = [m for m, spec in config["models"].items() if model_spec(spec, m).get("precision") == "auto"]
    chunks = chunk_ids(config["genes"]["chunks"])
    return [f"results/{cohort}/predict/{m}/{c}.precision.tsv" for m in auto for c in chunks]


def model_floors(config: dict) -> dict[str, float]:
    """Each deep model's constancy floor, from its precision (`hapexp.precision`)."""
    from .config import model_spec
    from .precision import model_floor

    return {m: model_floor(model_spec(spec, m)) for m, spec in config["models"].items()}


def legacy_params(config: dict) -> dict:
    """Params of the legacy null: on/off, draws, seed and each model's input window (bp)."""
    from .config import model_spec

    c = config.get("concordance", {})
    return {
        "enabled": bool(c.get("legacy_null", False)),
        "draws": int(c.get("legacy_draws", 1000)),
        "seed": int(c.get("seed", 0)),
        "windows": {m: int(model_spec(spec)["window"]) for m, spec in config["models"].items()},
    }
