"""SuSiE fine-mapping of each gene's cis window: R susieR's `susie()` (0.12.35) in numpy.

The problem is the eQTL scan's (`hapexp.linear.eqtl`): the same people, the same cis
variants (`cis_dosages`: window, MAF, the run's variant policy) and the same covariates.
Expression and dosages are residualized on intercept + covariates exactly as the scan
does (`hapexp.stats.Residualizer`, once per chunk), then SuSiE runs on the residualized
genotypes (X, samples × variants) and the residualized expression (y), as tensorQTL's
`susie.map` does.

`susie` follows susieR's `susie()` line by line with its defaults: L = 10 (at most the
number of variants), scaled prior variance 0.2, residual variance estimated (bounded
below by var(y)/1e4), prior variance estimated by `optim` (R's `optimize` — Brent's
fmin, ported in `_brent_fmin` with R's tolerance sqrt(eps) — on log V in [-30, 15], kept
only where it beats the current V, and set to 0 where V = 0 is as likely),
check_null_threshold 0, prior_tol 1e-9, null_weight 0, standardize and intercept TRUE,
max_iter 100, tol 1e-3 on the ELBO; credible sets at coverage 0.95 with the purity filter
min_abs_corr 0.5 (`susie_get_cs`: effects with V > 1e-9, duplicate sets dropped, purity
= |Pearson r| between the set's columns of X); PIPs from the effects with V > prior_tol.
Posterior means and SDs are `susie_get_posterior_mean` / `_sd` (per unit of residualized
dosage, i.e. the effect adjusted for the covariates).

Where this differs from susieR (documented, tested not to matter on the test data):
- purity over *every* pair of a credible set; susieR draws 100 variants at random
  (`n_purity`) from a set with more than 100, so its purity of such a set is random.
- every computation in float64 on the standardized matrix; susieR applies centering and
  scaling inside its products (the same numbers up to rounding).

Where tensorQTL's `susie` (its `map`) differs from susieR and we follow susieR: tensorQTL
estimates the prior variance by EM instead of `optim`, has no lower bound on the residual
variance, computes in float32, does not drop duplicate credible sets (its `dedup` marks
nothing duplicated), runs up to 200 iterations, and leaves genes whose IBSS did not
converge out of its summary. We keep those genes and flag them (`converged`).

Outputs in tensorQTL's layout where it has one: per variant (`PIP_COLUMNS`: its
`pip`/`af` table with `phenotype_id`, `variant_id`, `cs_id` as in its summary, here for
every variant of the window, `cs_id` <NA> outside credible sets; a variant in several
sets gets the one whose effect puts most weight on it) plus the posterior mean and SD;
per credible set (`CS_COLUMNS`: `cs_id` = the effect's index, tensorQTL's `L` number; its
variants; the claimed coverage; purity as tensorQTL's `min_abs_corr`, `mean_abs_corr`,
`median_abs_corr`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from hapexp.config.schema import defaults
from hapexp.linear.eqtl import allele_stats
from hapexp.stats import Residualizer

log = logging.getLogger(__name__)

PIP_COLUMNS = ["phenotype_id", "variant_id", "pip", "af", "cs_id", "posterior_mean", "posterior_sd"]
CS_COLUMNS = [
    "phenotype_id",
    "cs_id",
    "n_variants",
    "variants",
    "lead_variant",
    "lead_pip",
    "coverage",
    "min_abs_corr",
    "mean_abs_corr",
    "median_abs_corr",
    "converged",
]
# susieR's defaults (susie(), 0.12.35)
# susieR's defaults, held by the schema (config key `finemap`)
SUSIE_DEFAULTS = defaults("finemap")
_LOG_2PI = math.log(2 * math.pi)
_SQRT_EPS = math.sqrt(np.finfo(float).eps)


# --------------------------------------------------------------------------- susieR's pieces
def _log_bf(v: float, betahat: np.ndarray, shat2: np.ndarray) -> np.ndarray:
    """log Bayes factor of each variant: dnorm(b, 0, sqrt(V + s²)) / dnorm(b, 0, s), 0 where
    s² is infinite (a constant column)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = v + shat2
        lbf = 0.5 * (np.log(shat2) - np.log(s1)) - 0.5 * betahat**2 * (1.0 / s1 - 1.0 / shat2)
    lbf[np.isinf(shat2)] = 0.0
    return lbf


def _loglik(v: float, betahat, shat2, prior) -> float:
    lbf = _log_bf(v, betahat, shat2)
    m = lbf.max()
    return float(np.log(np.sum(np.exp(lbf - m) * prior)) + m)


def _brent_fmin(f, ax: float, bx: float, tol: float) -> float:
    """R's `optimize` (Brent_fmin in src/library/stats/src/optimize.c), step for step."""
    c = (3.0 - math.sqrt(5.0)) * 0.5
    eps = math.sqrt(np.finfo(float).eps)
    a, b = ax, bx
    v = w = x = a + c * (b - a)
    d = e = 0.0
    fx = fv = fw = f(x)
    tol3 = tol / 3.0
    while True:
        xm = (a + b) * 0.5
        tol1 = eps * abs(x) + tol3
        t2 = tol1 * 2.0
        if abs(x - xm) <= t2 - (b - a) * 0.5:
            break
        p = q = r = 0.0
        if abs(e) > tol1:  # fit a parabola
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = (q - r) * 2.0
            if q > 0.0:
                p = -p
            else:
                q = -q
            r = e
            e = d
        if abs(p) >= abs(q * 0.5 * r) or p <= q * (a - x) or p >= q * (b - x):  # golden section
            e = (b - x) if x < xm else (a - x)
            d = c * e
        else:  # parabolic interpolation
            d = p / q
            u = x + d
            if u - a < t2 or b - u < t2:
                d = tol1 if x < xm else -tol1
        if abs(d) >= tol1:
            u = x + d
        elif d > 0.0:
            u = x + tol1
        else:
            u = x - tol1
        fu = f(u)
        if fu <= fx:
            if u < x:
                b = x
            else:
                a = x
            v, w, x = w, x, u
            fv, fw, fx = fw, fx, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv = w, fw
                w, fw = u, fu
            elif fu <= fv or v in (x, w):
                v, fv = u, fu
    return x


def _optimize_prior_variance(betahat, shat2, prior, v_init: float) -> float:
    """susieR's `optimize_prior_variance(optimize_V = "optim")`, check_null_threshold 0."""

    def neg(lv: float) -> float:
        return -_loglik(math.exp(lv), betahat, shat2, prior)

    lv = _brent_fmin(neg, -30.0, 15.0, _SQRT_EPS)  # optim(method = "Brent"): tol = reltol
    with np.errstate(divide="ignore"):
        lv_init = math.log(v_init) if v_init > 0 else -math.inf
    if neg(lv) > neg(lv_init):
        lv = lv_init
    v = math.exp(lv)
    if _loglik(0.0, betahat, shat2, prior) >= _loglik(v, betahat, shat2, prior):
        v = 0.0
    return v


def _single_effect(z, d, r, v, sigma2, prior, estimate_v: bool) -> dict:
    """susieR's `single_effect_regression` on the standardized X (`z`, n × p; `d` its
    column sums of squares) and the residual `r`."""
    xty = r @ z
    with np.errstate(divide="ignore", invalid="ignore"):
        betahat = xty / d
        shat2 = sigma2 / d
    if estimate_v:
        v = _optimize_prior_variance(betahat, shat2, prior, v)
    lbf = _log_bf(v, betahat, shat2)
    m = lbf.max()
    w = np.exp(lbf - m) * prior
    sw = w.sum()
    alpha = w / sw
    with np.errstate(divide="ignore"):
        post_var = 1.0 / ((1.0 / v if v > 0 else math.inf) + d / sigma2)
    post_mean = post_var * xty / sigma2
    lbf_model = float(m + math.log(sw))
    n = r.shape[0]
    loglik = lbf_model - 0.5 * n * (_LOG_2PI + math.log(sigma2)) - 0.5 * float(r @ r) / sigma2
    return {
        "alpha": alpha,
        "mu": post_mean,
        "mu2": post_var + post_mean**2,
        "lbf": lbf,
        "lbf_model": lbf_model,
        "V": v,
        "loglik": loglik,
    }


def _get_er2(z, d, y, xr, alpha, mu, mu2) -> float:
    """susieR's `get_ER2`: the expected residual sum of squares."""
    xr_l = (alpha * mu) @ z.T  # L × n
    return float(np.sum((y - xr) ** 2) - np.sum(xr_l**2) + np.sum((alpha * mu2) @ d))


def susie(
    X,
    y,
    L: int = 10,
    scaled_prior_variance: float = 0.2,
    coverage: float = 0.95,
    min_abs_corr: float = 0.5,
    max_iter: int = 100,
    tol: float = 1e-3,
    prior_tol: float = 1e-9,
    estimate_residual_variance: bool = True,
    estimate_prior_variance: bool = True,
) -> dict:
    """susieR's `susie(X, y)` with its defaults (module doc). `X`: samples × variants.

    Returns a dict: alpha, mu, mu2 (L × p), V (L), sigma2, elbo (per iteration), niter,
    converged, pip (p), sets ({"cs": {effect index (1-based): sorted variant indices},
    "coverage", "purity": effect index -> (min, mean, median |r|)} — susieR's `sets` keyed
    by its `L` numbers), posterior_mean, posterior_sd (per unit of X's columns)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    if p == 0:
        raise ValueError("susie needs at least one variant")
    y = y - y.mean()
    cm = X.mean(axis=0)
    csd = X.std(axis=0, ddof=1)
    csd[csd == 0] = 1.0
    z = (X - cm) / csd
    d = np.einsum("ij,ij->j", z, z)
    var_y = float(y.var(ddof=1))
    if not var_y > 0:
        raise ValueError("residual variance must be positive (is var(y) zero?)")
    lower = var_y / 1e4  # residual_variance_lowerbound
    L = min(L, p)
    prior = np.full(p, 1.0 / p)
    alpha = np.full((L, p), 1.0 / p)
    mu = np.zeros((L, p))
    mu2 = np.zeros((L, p))
    V = np.full(L, scaled_prior_variance * var_y)
    KL = np.full(L, np.nan)
    sigma2 = var_y
    xr = np.zeros(n)
    elbo = [-math.inf]
    converged = False
    for _ in range(max_iter):
        for k in range(L):
            xr = xr - z @ (alpha[k] * mu[k])
            r = y - xr
            s = _single_effect(z, d, r, V[k], sigma2, prior, estimate_prior_variance)
            alpha[k], mu[k], mu2[k], V[k] = s["alpha"], s["mu"], s["mu2"], s["V"]
            eb = s["alpha"] * s["mu"]
            xb = z @ eb
            e_loglik = -0.5 * n * (_LOG_2PI + math.log(sigma2)) - 0.5 / sigma2 * (
                float(r @ r) - 2.0 * float(r @ xb) + float(d @ (s["alpha"] * s["mu2"]))
            )
            KL[k] = -s["loglik"] + e_loglik
            xr = xr + xb
        er2 = _get_er2(z, d, y, xr, alpha, mu, mu2)
        elbo.append(-(n / 2) * (_LOG_2PI + math.log(sigma2)) - er2 / (2 * sigma2) - float(KL.sum()))
        if elbo[-1] - elbo[-2] < tol:
            converged = True
            break
        if estimate_residual_variance:
            sigma2 = max(lower, er2 / n)
    keep = prior_tol < V
    pip = 1.0 - np.prod(1.0 - alpha[keep], axis=0) if keep.any() else np.zeros(p)
    am = (alpha * mu)[keep]
    post_mean = am.sum(axis=0) / csd
    post_sd = np.sqrt(np.maximum((alpha * mu2)[keep].sum(axis=0) - (am**2).sum(axis=0), 0.0)) / csd
    return {
        "alpha": alpha,
        "mu": mu,
        "mu2": mu2,
        "V": V,
        "sigma2": sigma2,
        "elbo": np.array(elbo[1:]),
        "niter": len(elbo) - 1,
        "converged": converged,
        "pip": pip,
        "sets": credible_sets(alpha, V, X, coverage, min_abs_corr),
        "posterior_mean": post_mean,
        "posterior_sd": post_sd,
    }


def credible_sets(alpha, V, X, coverage: float = 0.95, min_abs_corr: float = 0.5) -> dict:
    """susieR's `susie_get_cs` (dedup TRUE, purity from X's columns): per effect with
    V > 1e-9 the fewest variants, by decreasing alpha, whose alpha sums to `coverage`;
    duplicate sets dropped (the first kept); sets whose min |r| < `min_abs_corr` dropped.
    Purity over every pair of the set (susieR samples 100 variants of a larger set)."""
    cs, cov, purity = {}, {}, {}
    seen = set()
    for k in range(alpha.shape[0]):
        a = alpha[k]
        order = np.argsort(-a, kind="stable")  # R's order(decreasing = TRUE): ties keep index order
        size = int(np.sum(np.cumsum(a[order]) < coverage)) + 1
        members = tuple(sorted(int(i) for i in order[:size]))
        if not V[k] > 1e-9 or members in seen:
            seen.add(members)
            continue
        seen.add(members)
        pur = _purity(X, list(members))
        if not pur[0] >= min_abs_corr:  # NaN (a constant column) fails, as in R
            continue
        cs[k + 1] = np.array(members)
        cov[k + 1] = float(a[list(members)].sum())
        purity[k + 1] = pur
    return {"cs": cs, "coverage": cov, "purity": purity}


def _purity(X, members: list[int]) -> tuple[float, float, float]:
    if len(members) == 1:
        return (1.0, 1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(np.corrcoef(X[:, members], rowvar=False))
    v = c[np.triu_indices(len(members), k=1)]
    if np.isnan(v).any():
        return (math.nan, math.nan, math.nan)
    return (float(v.min()), float(v.mean()), float(np.median(v)))


# --------------------------------------------------------------------------- genes and chunks
def finemap_gene(
    gene_id: str,
    variant_id,
    g_res: np.ndarray,
    p_res: np.ndarray,
    af: np.ndarray,
    **options,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SuSiE of one gene: `g_res` the cis variants' residualized dosages (variants ×
    samples, `Residualizer.transform` as the eQTL scan), `p_res` the residualized
    expression (samples), `af` the variants' ALT frequency (of the raw dosages); `options`
    override `SUSIE_DEFAULTS`. Returns (per-variant table, `PIP_COLUMNS`; per-credible-set
    table, `CS_COLUMNS`)."""
    opts = {**SUSIE_DEFAULTS, **options}
    variant_id = np.asarray(variant_id, dtype=object)
    fit = susie(np.asarray(g_res, dtype=float).T, np.asarray(p_res, dtype=float).ravel(), **opts)
    if not fit["converged"]:
        log.warning("%s: IBSS did not converge in %d iterations", gene_id, opts["max_iter"])
    p = len(variant_id)
    cs_id = pd.array([pd.NA] * p, dtype="Int64")
    best = np.full(p, -1.0)
    rows = []
    for k, members in sorted(fit["sets"]["cs"].items()):
        a = fit["alpha"][k - 1, members]
        better = a > best[members]
        cs_id[members[better]] = k
        best[members[better]] = a[better]
        lead = members[int(np.argmax(a))]
        rows.append(
            {
                "phenotype_id": gene_id,
                "cs_id": k,
                "n_variants": len(members),
                "variants": ",".join(map(str, variant_id[members])),
                "lead_variant": variant_id[lead],
                "lead_pip": float(fit["pip"][lead]),
                "coverage": fit["sets"]["coverage"][k],
                **dict(zip(CS_COLUMNS[7:10], fit["sets"]["purity"][k], strict=True)),
                "converged": bool(fit["converged"]),
            }
        )
    pips = pd.DataFrame(
        {
            "phenotype_id": [gene_id] * p,
            "variant_id": variant_id,
            "pip": fit["pip"],
            "af": np.asarray(af, dtype=float),
            "cs_id": cs_id,
            "posterior_mean": fit["posterior_mean"],
            "posterior_sd": fit["posterior_sd"],
        },
        columns=PIP_COLUMNS,
    )
    sets = pd.DataFrame(rows, columns=CS_COLUMNS).astype({"cs_id": "int64", "n_variants": "int64"})
    return pips, sets


def finemap_genes(
    dosages, genes: pd.DataFrame, expression: pd.DataFrame, covariates: pd.DataFrame | None, **options
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SuSiE of every gene of `genes` (start0/end0 window columns) in `expression`, on the
    eQTL scan's problem: `dosages` (a `hapexp.variants.genotypes.Dosages` on the samples of
    `expression`, in its order) and expression residualized once on intercept + `covariates`
    (covariates × samples, as `scan_genes` takes them). Genes without cis variants or with
    constant residualized expression are skipped. Returns (per-variant table, per-credible-set table)."""
    samples = list(expression.columns)
    if list(dosages.samples) != samples:
        raise ValueError("dosages and expression must have the same samples in the same order")
    cov = None if covariates is None or covariates.shape[0] == 0 else covariates.loc[:, samples].to_numpy().T
    res = Residualizer(cov, n_samples=len(samples))
    sel = genes[genes["gene_id"].isin(expression.index)].reset_index(drop=True)
    g_res = res.transform(dosages.dosage) if len(dosages) else np.zeros((0, len(samples)))
    af = allele_stats(dosages.dosage)[0] if len(dosages) else np.zeros(0)
    p_res = res.transform(expression.loc[sel["gene_id"]].to_numpy(dtype=float)) if len(sel) else None
    vid = np.asarray(dosages.variant_id, dtype=object)
    pips, sets = [], []
    for j, row in enumerate(sel.itertuples(index=False)):
        ix = dosages.window_index(str(row.chrom), int(row.start0), int(row.end0))
        if ix.size == 0:
            log.info("%s: no variants in the cis window", row.gene_id)
            continue
        if not np.var(p_res[j]) > 0:
            log.warning("%s: constant expression after residualization: not fine-mapped", row.gene_id)
            continue
        a, b = finemap_gene(str(row.gene_id), vid[ix], g_res[ix], p_res[j], af[ix], **options)
        pips.append(a)
        sets.append(b)
    if not pips:
        return _empty_pips(), pd.DataFrame(columns=CS_COLUMNS)
    sets = [s for s in sets if len(s)] or [sets[0]]
    return pd.concat(pips, ignore_index=True), pd.concat(sets, ignore_index=True)


def _empty_pips() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "phenotype_id": pd.Series([], dtype=str),
            "variant_id": pd.Series([], dtype=str),
            "pip": pd.Series([], dtype=float),
            "af": pd.Series([], dtype=float),
            "cs_id": pd.Series([], dtype="Int64"),
            "posterior_mean": pd.Series([], dtype=float),
            "posterior_sd": pd.Series([], dtype=float),
        }
    )


def run_finemap(prepared, covariates, vcf, chunk, pips, credible_sets, window, models: dict, maf: float,
                policies: dict, threads: int, susie_options: dict | None = None) -> None:  # fmt: skip
    """Rule `finemap`: SuSiE of one `chunk` of genes on the eQTL scan's inputs (the same
    window, MAF and variant policy, `run_eqtl`): per-variant PIPs (`pips`) and 95 %
    credible sets (`credible_sets`); `susie_options` override `SUSIE_DEFAULTS`."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import write_parquet, write_tsv
    from hapexp.linear.eqtl import chunk_problem

    dosages, genes, expr, cov = chunk_problem(prepared, covariates, vcf, chunk, window, models, maf, policies)
    with threadpool_limits(limits=threads):
        table, sets = finemap_genes(dosages, genes, expr, cov, **(susie_options or {}))
    n_genes = table["phenotype_id"].nunique() if len(table) else 0
    log.info("%d genes fine-mapped, %d credible sets", n_genes, len(sets))
    write_parquet(table, pips)
    write_tsv(sets, credible_sets)


def run_gather_finemap(pips_chunks, cs_chunks, pips, credible_sets) -> None:
    """Rule `gather_finemap`: the chunks' per-variant PIPs in one file (`pips`) and their
    credible sets in one table (`credible_sets`)."""
    from hapexp.io import concat_parquet, write_tsv

    n = concat_parquet(list(pips_chunks), pips, PIP_COLUMNS)
    tables = [pd.read_csv(f, sep="\t") for f in cs_chunks]
    sets = [t for t in tables if len(t)]
    cs = pd.concat(sets, ignore_index=True) if sets else pd.DataFrame(columns=CS_COLUMNS)
    n_genes = cs["phenotype_id"].nunique() if len(cs) else 0
    log.info("%d variant PIPs; %d credible sets in %d genes", n, len(cs), n_genes)
    if len(cs) and not cs["converged"].astype(bool).all():
        log.warning(
            "%d genes did not converge (their sets are flagged converged = False)",
            cs.loc[~cs["converged"].astype(bool), "phenotype_id"].nunique(),
        )
    write_tsv(cs, credible_sets)


# --------------------------------------------------------------------------- external fine-mapping
# External credible sets in pips.parquet's layout (`PIP_COLUMNS` first, so that the causal
# benchmark reads either), then whether the file lists the variant, the file's own set id
# and whether its REF/ALT are the cohort's swapped.
EXTERNAL_COLUMNS = [*PIP_COLUMNS, "listed", "source_cs_id", "flipped"]


def external_pips(cs: pd.DataFrame, dosages, genes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """External credible sets on the eQTL scan's cis variants, in pips.parquet's layout.

    `cs`: `hapexp.inputs.credible_sets.match_to_cohort`'s table (the cohort's `variant_id`
    per row, <NA> where none matched; `gene_id` without version); `dosages` and `genes`
    (start0/end0): `cis_dosages` of the unit's genes — the variants in-cohort SuSiE sees
    (window, MAF, variant policy). For each gene the file fine-mapped, every cis variant:
    `pip` the file's (the largest of its rows: a variant in several sets or traits) where
    it lists the variant, 0 where it does not (outside every credible set the file reports:
    `listed` False); `cs_id` 1, 2, … per gene in the file's order of sets (the file's id in
    `source_cs_id`); `posterior_mean`/`posterior_sd` the file's posterior effect of the
    cohort's ALT (`beta_posterior_cohort`, `sd_posterior`; NaN for a format without one);
    `af` the ALT frequency of `dosages`' people (as in-cohort SuSiE's). Genes none of
    whose rows is a cis variant are left out. Returns (`EXTERNAL_COLUMNS` table, counts:
    genes_written, rows_outside_cis — matched rows that are not cis variants of their gene
    here —, genes_several_traits)."""
    from hapexp.inputs.formats import strip_version

    af = allele_stats(dosages.dosage)[0] if len(dosages) else np.zeros(0)
    vid = np.asarray(dosages.variant_id, dtype=object)
    rows = cs[cs["variant_id"].notna()].sort_values("line", kind="mergesort")
    by_gene = dict(tuple(rows.groupby("gene_id", sort=False)))
    post = "beta_posterior_cohort" in rows.columns
    counts = {"genes_written": 0, "rows_outside_cis": 0, "genes_several_traits": 0}
    tables = []
    for g, key in zip(genes.itertuples(index=False), strip_version(genes["gene_id"]), strict=True):
        r = by_gene.get(key)
        if r is None:
            continue
        ix = dosages.window_index(str(g.chrom), int(g.start0), int(g.end0))
        inside = r["variant_id"].astype(object).isin(set(vid[ix])).to_numpy()
        counts["rows_outside_cis"] += int((~inside).sum())
        r = r[inside]
        if r.empty:
            continue
        counts["genes_written"] += 1
        counts["genes_several_traits"] += int(r["trait_id"].nunique() > 1)
        sets = {c: k for k, c in enumerate(dict.fromkeys(r["cs_id"].dropna()), start=1)}
        # per variant the row with the largest PIP (the first in the file on ties)
        best = r.sort_values("pip", ascending=False, kind="mergesort").drop_duplicates("variant_id")
        best = best.set_index(best["variant_id"].astype(object))
        v = pd.Index(vid[ix])
        listed = v.isin(best.index)
        b = best.reindex(v)
        cs_id = pd.array([sets.get(c) if pd.notna(c) else pd.NA for c in b["cs_id"]], dtype="Int64")
        tables.append(
            pd.DataFrame(
                {
                    "phenotype_id": str(g.gene_id),
                    "variant_id": vid[ix],
                    "pip": b["pip"].fillna(0.0).to_numpy(float),
                    "af": af[ix],
                    "cs_id": cs_id,
                    "posterior_mean": b["beta_posterior_cohort"].to_numpy(float) if post else np.nan,
                    "posterior_sd": b["sd_posterior"].to_numpy(float) if post else np.nan,
                    "listed": listed,
                    "source_cs_id": pd.array(b["cs_id"].astype(object).where(listed, None), dtype="string"),
                    "flipped": b["flipped"].fillna(False).to_numpy(bool),
                },
                columns=EXTERNAL_COLUMNS,
            )
        )
    if not tables:
        empty = _empty_pips().assign(listed=pd.Series([], dtype=bool), source_cs_id=pd.Series([], dtype="string"),
                                     flipped=pd.Series([], dtype=bool))  # fmt: skip
        return empty[EXTERNAL_COLUMNS], counts
    return pd.concat(tables, ignore_index=True), counts


def run_external_finemap(credible_sets, vcf, genes, prepared, fasta, pips, facts, source: dict, build,
                         unit_tissue, window, models: dict, maf: float, policies: dict) -> None:  # fmt: skip
    """Rule `external_finemap`: a unit's external credible sets (`credible_sets`, the config
    block `source`: format, method, tissue) read with the cohort's genome `build` and REF
    check against its `fasta` (`hapexp.inputs.credible_sets.read_credible_sets`; another
    build is an InputError), one tissue's rows kept (`select_tissue`; `unit_tissue` the
    unit's), matched to the cohort's normalized variants (`vcf`: every record at the file's
    positions, by position and alleles in either orientation) and written in pips.parquet's
    layout on the eQTL scan's cis variants of the unit's genes (`genes` ∩ `prepared`'s;
    `window`, `maf`, `policies` as rule finemap; `external_pips`) to `pips`; what was read
    and matched to `facts` (JSON: path, format, method, tissue, build, counts, the posterior
    effect used or why there is none)."""
    import json

    from hapexp.config.schema import with_defaults
    from hapexp.errors import InputError
    from hapexp.inputs.credible_sets import (
        NO_POSTERIOR,
        match_to_cohort,
        read_credible_sets,
        select_tissue,
    )
    from hapexp.inputs.formats import strip_version
    from hapexp.inputs.gtf import match_contigs
    from hapexp.io import atomic_output, write_parquet
    from hapexp.variants.files import vcf_contigs
    from hapexp.variants.genotypes import cis_dosages, read_dosages
    from hapexp.variants.windows import resolve_window

    source = with_defaults("cohorts.*.credible_sets", source)
    cs = read_credible_sets(credible_sets, source["format"], build, fasta, source["method"])
    cs = select_tissue(cs, source["tissue"], unit_tissue)
    fmt = cs.attrs["format"]
    samples = list(pd.read_csv(prepared, sep="\t", nrows=0).columns[1:])
    expressed = set(pd.read_csv(prepared, sep="\t", usecols=[0]).iloc[:, 0].astype(str))
    table = pd.read_csv(genes, sep="\t", dtype={"gene_id": str, "chrom": str})
    table = table[table["gene_id"].isin(expressed)]
    ours = set(strip_version(table["gene_id"]))
    in_unit = cs["gene_id"].isin(ours).to_numpy()
    counts = {
        "rows_read": len(cs),
        "genes_in_file": int(cs["gene_id"].nunique()),
        "genes_analysed": int(cs.loc[in_unit, "gene_id"].nunique()),
        "rows_other_genes": int((~in_unit).sum()),
    }
    log.info(
        "%s: %d of the file's %d genes are among the unit's %d expressed genes (%d rows of other genes left out)",
        credible_sets, counts["genes_analysed"], counts["genes_in_file"], len(table), counts["rows_other_genes"],
    )  # fmt: skip
    if not in_unit.any():
        raise InputError(
            credible_sets,
            f"none of the file's {counts['genes_in_file']} genes (e.g. {cs['gene_id'].iat[0]}) is among the "
            f"{len(table)} genes analysed here (e.g. {', '.join(table['gene_id'].head(3))})",
            "Give the credible sets of this cohort's tissue and genes (Ensembl gene ids; versions are ignored).",
        )
    attrs = dict(cs.attrs)
    cs = cs[in_unit].reset_index(drop=True)
    cs.attrs.update(attrs)
    # every record of the cohort's BCF at the file's positions (1-based POS = pos): the match counts
    contigs = match_contigs(cs["chrom"].unique(), vcf_contigs(vcf))
    regions = sorted(
        {(contigs[c], int(p) - 1, int(p)) for c, p in zip(cs["chrom"], cs["pos"], strict=True) if contigs[c]}
    )
    at_sites = read_dosages(vcf, regions, samples, None)
    matched, match = match_to_cohort(cs, at_sites)
    counts.update(match)
    if not match["matched"]:
        raise InputError(
            credible_sets,
            f"none of its {match['rows']} rows of the analysed genes is a variant of the cohort's VCF "
            f"({match['unmatched_alleles']} at a cohort position with other alleles)",
            "Check that the credible sets and the VCF are on the same genome build and the same people's variants.",
        )
    # the eQTL scan's cis variants of the genes the file fine-mapped (what rule finemap sees)
    fine_mapped = set(cs["gene_id"])
    table = table[[k in fine_mapped for k in strip_version(table["gene_id"])]]
    dosages, genes_w = cis_dosages(vcf, table, resolve_window(window, models), samples, maf, policies)
    out, written = external_pips(matched, dosages, genes_w)
    counts.update(written)
    log.info(
        "%d genes written (%d cis variants, %d listed by the file); %d matched rows are not cis variants "
        "here (window %s, MAF >= %g, variant policy); %d genes with several traits (largest PIP kept)",
        counts["genes_written"], len(out), int(out["listed"].sum()), counts["rows_outside_cis"], window, maf,
        counts["genes_several_traits"],
    )  # fmt: skip
    has_posterior = "beta_posterior_cohort" in matched.columns and bool(out["posterior_mean"].notna().any())
    info = {
        "path": str(credible_sets),
        "format": fmt,
        "method": source["method"] if fmt == "gtex_susie" else None,
        "tissue": cs.attrs.get("tissue"),
        "build": cs.attrs.get("build"),
        "counts": counts,
        "posterior": "beta_posterior" if has_posterior else None,
        "no_posterior": None
        if has_posterior
        else NO_POSTERIOR.get(fmt, "the file's rows of these genes carry no posterior effect"),
    }
    write_parquet(out, pips)
    with atomic_output(facts) as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
