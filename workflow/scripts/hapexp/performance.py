"""Cross-individual and cross-gene performance of expression predictors.

Cross-individual: per gene, correlate a predictor's per-person prediction with the
prepared (residualized) expression over the same individuals; Pearson and Spearman r
with their exact t-based p-values, Benjamini-Hochberg FDR across genes per predictor.
Everything is vectorized over genes (rows of aligned genes × samples matrices).

Cross-gene: the reference-genome prediction against the mean expression across genes
(what the models were trained to do; Huang et al. 2023 Fig. 1b).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

PERFORMANCE_COLUMNS = [
    "gene_id",
    "predictor",
    "n",
    "pearson_r",
    "pearson_p",
    "spearman_r",
    "spearman_p",
    "fdr",
]


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


# A row whose spread across samples is below this fraction of its RMS is constant:
# model outputs are fp32 (relative resolution ~6e-8), and rounding noise of an
# insensitive model is deterministic per sequence, so it would correlate with
# genotype and pass for signal.
RESOLUTION = 1e-6


def _below_resolution(sum_sq_dev: np.ndarray, sum_sq: np.ndarray) -> np.ndarray:
    return sum_sq_dev <= (RESOLUTION**2) * sum_sq + 1e-300


def rowwise_pearson(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between matching rows of x and y (n_rows × n_samples), NaN-aware.

    Returns (r, n) where n counts the samples finite in both. r is NaN when a row has
    fewer than 3 usable samples or no variation beyond numerical resolution on either
    side (RESOLUTION; e.g. a gene without variants in the model's window: a constant
    prediction explains nothing).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = np.isfinite(x) & np.isfinite(y)
    n = mask.sum(axis=1)
    xm = np.where(mask, x, 0.0)
    ym = np.where(mask, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xm.sum(axis=1) / n
        my = ym.sum(axis=1) / n
        dx = np.where(mask, x - mx[:, None], 0.0)
        dy = np.where(mask, y - my[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        syy = (dy * dy).sum(axis=1)
        sxy = (dx * dy).sum(axis=1)
        tiny_x = _below_resolution(sxx, (xm * xm).sum(axis=1))
        tiny_y = _below_resolution(syy, (ym * ym).sum(axis=1))
        r = sxy / np.sqrt(sxx * syy)
    r = np.where(tiny_x | tiny_y | (n < 3), np.nan, np.clip(r, -1.0, 1.0))
    return r, n


def r_pvalue(r: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a correlation r from n pairs (t with n-2 df, as scipy.stats.pearsonr)."""
    r = np.asarray(r, dtype=float)
    df = np.asarray(n, dtype=float) - 2
    with np.errstate(invalid="ignore", divide="ignore"):
        t = r * np.sqrt(df / np.maximum(1.0 - r * r, 1e-300))
        p = 2 * stats.t.sf(np.abs(t), df)
    return np.where(np.isfinite(r) & (df > 0), p, np.nan)


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks per row, NaN kept as NaN (ties averaged, like scipy.stats.spearmanr)."""
    return stats.rankdata(a, axis=1, method="average", nan_policy="omit")


def rowwise_spearman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho between matching rows (Pearson on ranks of the jointly finite samples)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    mask = np.isfinite(x) & np.isfinite(y)
    xr = _rank_rows(np.where(mask, x, np.nan))
    yr = _rank_rows(np.where(mask, y, np.nan))
    rho, n = rowwise_pearson(xr, yr)
    # Ranks of rounding noise vary; constancy is judged on the values.
    r_values, _ = rowwise_pearson(x, y)
    return np.where(np.isnan(r_values), np.nan, rho), n


def align(expression: pd.DataFrame, prediction: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Restrict both matrices to shared genes (prediction's order) and shared samples."""
    genes = [g for g in prediction.index if g in expression.index]
    samples = [s for s in expression.columns if s in prediction.columns]
    return expression.loc[genes, samples], prediction.loc[genes, samples]


def cross_individual(expression: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per gene × predictor: n, Pearson/Spearman r and p, BH FDR (on the Pearson p) per predictor."""
    frames = []
    for name, pred in predictions.items():
        e, p = align(expression, pred)
        if e.shape[1] < 3:
            log.warning("predictor %s shares only %d samples with the expression; skipped", name, e.shape[1])
            continue
        r, n = rowwise_pearson(p.to_numpy(), e.to_numpy())
        rho, _ = rowwise_spearman(p.to_numpy(), e.to_numpy())
        pr = r_pvalue(r, n)
        frames.append(
            pd.DataFrame(
                {
                    "gene_id": e.index.astype(str),
                    "predictor": name,
                    "n": n.astype(int),
                    "pearson_r": r,
                    "pearson_p": pr,
                    "spearman_r": rho,
                    "spearman_p": r_pvalue(rho, n),
                    "fdr": bh_fdr(pr),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=PERFORMANCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PERFORMANCE_COLUMNS]


def summarize_performance(perf: pd.DataFrame, fdr: float = 0.05) -> pd.DataFrame:
    """Per predictor: genes tested, mean/median r, significant positive/negative genes at `fdr`."""
    rows = []
    for name, d in perf.groupby("predictor", sort=False):
        t = d[np.isfinite(d["pearson_r"])]
        sig = t["fdr"] < fdr
        rows.append(
            {
                "predictor": name,
                "genes_tested": len(t),
                # Predictions constant across individuals (within RESOLUTION): not testable.
                "genes_constant": int((~np.isfinite(d["pearson_r"]) & (d["n"] >= 3)).sum()),
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
) -> tuple[float, float]:
    """Sasse et al. (2023)-style legacy statistic for one gene (option `performance.legacy_null`).

    Null predictors are random linear combinations of the gene's window dosages
    (weights ~ N(0, 1)); their correlations with expression form the null. Returns
    (z, p_empirical): z = r_observed / sd(null r) -- the anchors' "t-statistic" that
    divides by the null's standard deviation -- and the two-sided empirical p
    (1 + #{|r_null| >= |r_obs|}) / (1 + n_draws). Kept for comparison with the
    published numbers only: the null conditions on the local LD structure but z is
    not t-distributed; the default analysis uses the exact t-test and BH FDR.
    """
    g = np.asarray(dosages, dtype=float)  # variants × samples
    y = np.asarray(expression, dtype=float)
    if g.ndim != 2 or g.shape[0] == 0 or not np.isfinite(r_observed):
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_draws, g.shape[0]))
    null_pred = w @ g  # draws × samples
    r_null, _ = rowwise_pearson(null_pred, np.broadcast_to(y, null_pred.shape))
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


def cross_gene(raw_expression: pd.DataFrame, references: dict[str, pd.Series]) -> pd.DataFrame:
    """Per model: reference-genome prediction vs mean expression across genes."""
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
) -> pd.DataFrame:
    """Add `legacy_z`, `legacy_p` (Sasse et al.'s random-weights null) for predictors in `windows`.

    The null's variants are those in the predictor's input window around the TSS
    (0-based [tss0 − L/2, tss0 + L/2)).
    """
    perf = perf.copy()
    perf["legacy_z"] = np.nan
    perf["legacy_p"] = np.nan
    g = genes.set_index("gene_id")
    samples = list(expression.columns)
    cache: dict[tuple[str, int], pd.DataFrame] = {}
    for i, row in perf.iterrows():
        L = windows.get(row["predictor"])
        if L is None or row["gene_id"] not in g.index or row["gene_id"] not in expression.index:
            continue
        key = (row["gene_id"], L)
        if key not in cache:
            info = g.loc[row["gene_id"]]
            tss0 = int(info["tss"]) - 1
            cache[key] = read_dosages(vcf_path, str(info["chrom"]), tss0 - L // 2, tss0 + L // 2, samples)
        dos = cache[key]
        dos = dos[dos.notna().all(axis=1)]
        z, p = legacy_random_weights_null(
            row["pearson_r"], dos.to_numpy(), expression.loc[row["gene_id"]].to_numpy(), n_draws, seed
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
) -> pd.DataFrame:
    """Rule `performance`: every predictor against the same prepared expression."""
    from .formats import read_expression, strip_version
    from .io import read_matrix, write_tsv

    expression = read_matrix(prepared_path)
    predictions = {name: read_matrix(p) for name, p in matrices.items()}
    if oof_path:
        predictions["elasticnet"] = read_matrix(oof_path)
    if predictdb_path:
        weights = read_predictdb_weights(predictdb_path)
        predictions["predictdb"] = predictdb_predict(
            weights, vcf_path, list(expression.columns), list(expression.index)
        )
        log.info("predictdb: predictions for %d genes", len(predictions["predictdb"]))
    perf = cross_individual(expression, predictions)
    if legacy and legacy.get("enabled"):
        genes = pd.read_csv(genes_path, sep="\t", dtype={"gene_id": str, "chrom": str})
        perf = legacy_columns(
            perf, expression, genes, legacy["windows"], vcf_path, int(legacy["draws"]), int(legacy["seed"])
        )
    write_tsv(perf, out_performance)

    raw = read_expression(raw_expression_path, raw_format)
    raw.index = strip_version(raw.index)
    refs = {}
    for name, p in references.items():
        ref = pd.read_csv(p, sep="\t", dtype={"gene_id": str}).set_index("gene_id")["value"]
        ref.index = strip_version(ref.index)
        refs[name] = ref
    write_tsv(cross_gene(raw, refs), out_cross_gene)
    return perf


# --------------------------------------------------------------------------- Snakemake input functions
def rule_inputs(config: dict, cohort: str) -> dict:
    """Inputs of rule `performance` for one cohort (used via unpack() in rules/concordance.smk)."""
    cfg = config["cohorts"][cohort]
    models = list(config["models"])
    inputs = {
        "prepared": f"results/{cohort}/expression/prepared.tsv",
        "raw": cfg["expression"],
        "genes": f"results/{cohort}/genes.tsv",
        "matrices": [f"results/{cohort}/predict/{m}.matrix.tsv" for m in models],
        "references": [f"results/{cohort}/predict/{m}.reference.tsv" for m in models],
        "oof": f"results/{cohort}/elasticnet/oof.tsv",
    }
    if cfg.get("predictdb"):
        inputs["predictdb"] = cfg["predictdb"]
    if cfg.get("predictdb") or config.get("concordance", {}).get("legacy_null", False):
        inputs["bcf"] = f"results/{cohort}/variants/normalized.bcf"
    return inputs


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
