"""Per-gene concordance of a model's ISM scores with eQTL effects, drivers, additivity.

Conventions: ISM score = read-out(alt) − read-out(ref); the eQTL slope is the effect
of one ALT allele (tensorQTL, ALT dosage). Both are therefore signed for the ALT
allele and directly comparable.

eQTL significance (`concordance.eqtl_significance`): `permutation` (default, GTEx /
tensorQTL) — a pair is significant when its gene is an eGene (Storey q of the
beta-approximated permutation p-value <= `eqtl.fdr`) and its nominal p-value is below
the gene's `pval_nominal_threshold` (`hapexp.linear.egenes.significant_pairs`);
`bh_all_pairs` (legacy) — Benjamini-Hochberg FDR over every nominal pair of the cohort
(`concordance.fdr`).

Unresolved ISM scores (NaN: |alt − ref| within the model's numerical resolution, see
`hapexp.engine.ism`) are unknown, not 0: they are counted (`n_ism_unresolved`) and left out of
every statistic below — correlations, sign agreement, top k, support, additivity,
drivers and the model-agreement table.

Definitions (config/README.md, `concordance`):
- `ism_eqtl_r`: Pearson r of ISM vs eQTL slope over the gene's variants in both tables;
  `ism_eqtl_r_sig`: the same over significant eQTL pairs only (what the headline and the
  before/after fine-tuning table report: `hapexp.verdict.summary`, `split_verdict`).
- `ism_eqtl_p`: the permutation p-value of `ism_eqtl_r` (`ism_eqtl_permutations`, seeded
  per gene): the people's prepared expression is permuted (Freedman–Lane, as the eQTL
  permutation pass), every variant's slope recomputed from the cohort's dosages
  (`hapexp.stats.slope_score_correlation`) and its r with the ISM scores taken; the
  genotypes stay, so the LD between the variants is in the null. The t-test of r on the
  number of variants it replaces treated variants in LD as independent: with ISM and
  slopes both smooth along the window (a few LD blocks) it rejected far too often
  (tests/test_concordance.py). A block jackknife along the window was not chosen: cis
  windows hold few LD blocks, often one, too few for its variance. It tests the sharp null
  "no association of the gene's expression with its variants", so it is for r over all
  the variants; `ism_eqtl_r_sig` (pairs selected by that association) has none.
- `sign_agree_topk`: among the `top_k` variants with largest |ISM| (non-zero, tested
  for eQTL), the fraction whose ISM sign equals the slope sign.
- `sign_agree_sig`: the same among FDR-significant eQTLs.
- `supported_fraction`: among the top-k |ISM| variants, the fraction that are
  FDR-significant eQTLs with the same sign (the model's main variants are backed by
  the population data).
- `additive_r`: r over individuals between Σ_v ISM_v × dosage_v and the model's full
  personal prediction (is the model additive over single variants here?).
- drivers (Sasse et al. 2023): forward selection of variants whose ISM × dosage best
  explains the model's personal predictions, until r ≥ `driver_target_r` or
  `max_drivers`; their strand-corrected distance to the TSS is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from hapexp import stats
from hapexp.config.schema import with_defaults
from hapexp.engine.precision import RELATIVE_RESOLUTION

log = logging.getLogger(__name__)

CONCORDANCE_COLUMNS = [
    "gene_id",
    "n_ism",
    "n_ism_unresolved",
    "n_shared",
    "ism_eqtl_r",
    "ism_eqtl_p",
    "n_sig_eqtl",
    "ism_eqtl_r_sig",
    "n_topk",
    "sign_agree_topk",
    "sign_agree_sig",
    "supported_fraction",
    "additive_r",
    "n_drivers",
    "driver_r",
    "drivers",
    "driver_tss_distance",
]
DRIVER_COLUMNS = ["gene_id", "rank", "variant_id", "tss_distance", "score", "cumulative_r"]

DosageFn = Callable[[str, list[str]], pd.DataFrame]


# Correlations over variants or people are NaN when either side is constant within float32
# rounding (ISM scores and predictions are float32 read-outs).
FLOOR = RELATIVE_RESOLUTION["fp32"]


def _sign_agreement(a, b) -> float:
    a = np.sign(np.asarray(a, dtype=float))
    b = np.sign(np.asarray(b, dtype=float))
    ok = (a != 0) & (b != 0)
    return float(np.mean(a[ok] == b[ok])) if ok.any() else np.nan


SIGNIFICANCE_METHODS = ("permutation", "bh_all_pairs")


def mark_significant(
    eqtl: pd.DataFrame, fdr: float = 0.05, method: str = "permutation", egenes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Add the `significant` column to nominal pairs (see the module doc for `method`);
    `bh_all_pairs` also adds `eqtl_fdr`. `egenes`: eqtl/genes.tsv (permutation method)."""
    out = eqtl.copy()
    if method == "bh_all_pairs":
        out["eqtl_fdr"] = stats.bh_fdr(out["pval_nominal"].to_numpy(dtype=float))
        out["significant"] = out["eqtl_fdr"] < fdr
    elif method == "permutation":
        from hapexp.linear.egenes import significant_pairs

        if egenes is None or "is_egene" not in egenes.columns:
            raise ValueError(
                "eqtl_significance 'permutation' needs eGenes from the permutation pass (eqtl.permutations > 0)"
            )
        out["significant"] = significant_pairs(out, egenes)
    else:
        raise ValueError(f"unknown eQTL significance method {method!r}; use one of {SIGNIFICANCE_METHODS}")
    return out


def forward_select_drivers(
    features: np.ndarray,
    target: np.ndarray,
    target_r: float = 0.9,
    max_drivers: int = 10,
    min_gain: float = 0.01,
) -> tuple[list[int], list[float]]:
    """Greedy forward selection of rows of `features` (variants × samples) whose sum best
    correlates with `target`; returns the chosen row indices and the r after each step."""
    features = np.asarray(features, dtype=float)
    target = np.asarray(target, dtype=float)
    chosen: list[int] = []
    rs: list[float] = []
    current = np.zeros(features.shape[1])
    best_r = -np.inf
    available = np.ones(features.shape[0], dtype=bool)
    while len(chosen) < max_drivers and available.any():
        cand = current[None, :] + features
        r, _ = stats.rowwise_pearson(cand, np.broadcast_to(target, cand.shape), floor=FLOOR)
        r = np.where(available & np.isfinite(r), r, -np.inf)
        i = int(np.argmax(r))
        if not np.isfinite(r[i]) or (chosen and r[i] - best_r < min_gain):
            break
        chosen.append(i)
        rs.append(float(r[i]))
        best_r = r[i]
        current = cand[i]
        available[i] = False
        if best_r >= target_r:
            break
    return chosen, rs


def ism_eqtl_permutation_p(merged: pd.DataFrame, dosages: pd.DataFrame, expression: pd.Series,
                           residualizer, perm_ix) -> float:  # fmt: skip
    """`ism_eqtl_p` (module doc): the ISM scores of `merged` (variant_id, score) against the
    slopes of the gene's `expression` (people) on their `dosages` (variants × people; missing
    calls mean-imputed), the observed r and its null under the permutations `perm_ix`."""
    vids = [v for v in dict.fromkeys(merged["variant_id"]) if v in dosages.index]
    if len(vids) < 3:
        return np.nan
    d = dosages.loc[~dosages.index.duplicated()].loc[vids, expression.index].to_numpy(dtype=float)
    mu = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=1, keepdims=True)
    d = np.where(np.isfinite(d), d, np.nan_to_num(mu))
    scores = merged.drop_duplicates("variant_id").set_index("variant_id").loc[vids, "score"]
    r, null = stats.slope_score_correlation(
        scores.to_numpy(float), d, expression.to_numpy(float), residualizer, perm_ix
    )
    return stats.permutation_pvalue(r, null)


def gene_concordance(
    gene_id: str,
    ism: pd.DataFrame,
    eqtl: pd.DataFrame,
    top_k: int = 5,
    dosages: pd.DataFrame | None = None,
    prediction: pd.Series | None = None,
    driver_target_r: float = 0.9,
    max_drivers: int = 10,
    eqtl_null: tuple | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Concordance metrics for one gene. `eqtl` must carry `significant` (mark_significant).
    `eqtl_null`: (expression of the gene over people, residualizer on the covariates,
    permutation indices) for `ism_eqtl_p` from `dosages` (NaN without)."""
    row = dict.fromkeys(CONCORDANCE_COLUMNS, np.nan)
    resolved = np.isfinite(ism["score"].to_numpy(dtype=float))
    row.update(
        gene_id=gene_id,
        n_ism=len(ism),
        n_ism_unresolved=int((~resolved).sum()),
        drivers="",
        driver_tss_distance="",
        n_drivers=0,
    )
    drivers = pd.DataFrame(columns=DRIVER_COLUMNS)
    ism = ism[resolved]  # unresolved scores are unknown: out of every statistic
    merged = ism.merge(eqtl[["variant_id", "slope", "significant"]], on="variant_id", how="inner")
    row["n_shared"] = len(merged)
    if len(merged):
        row["ism_eqtl_r"] = stats.pearson(merged["score"], merged["slope"], floor=FLOOR)
        if eqtl_null is not None and dosages is not None:
            row["ism_eqtl_p"] = ism_eqtl_permutation_p(merged, dosages, *eqtl_null)
        sig = merged[merged["significant"]]
        row["n_sig_eqtl"] = len(sig)
        row["ism_eqtl_r_sig"] = stats.pearson(sig["score"], sig["slope"], floor=FLOOR)
        row["sign_agree_sig"] = _sign_agreement(sig["score"], sig["slope"])
        # A resolved score of exactly 0 claims no direction, so it never enters the top k.
        nonzero = merged[merged["score"] != 0]
        top = nonzero.reindex(nonzero["score"].abs().sort_values(ascending=False, kind="mergesort").index)
        top = top.head(top_k)
        row["n_topk"] = len(top)
        row["sign_agree_topk"] = _sign_agreement(top["score"], top["slope"])
        supported = (
            top["significant"] & (np.sign(top["score"]) == np.sign(top["slope"])) & (top["score"] != 0)
        )
        row["supported_fraction"] = float(supported.mean())
    if dosages is not None and prediction is not None and len(ism):
        vids = [v for v in ism["variant_id"] if v in dosages.index]
        if vids:
            sub = ism.set_index("variant_id").loc[vids]
            d = dosages.loc[vids, prediction.index].to_numpy(dtype=float)
            # Mean-impute missing dosages per variant.
            mu = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=1, keepdims=True)
            d = np.where(np.isfinite(d), d, np.nan_to_num(mu))
            feats = sub["score"].to_numpy(dtype=float)[:, None] * d
            y = prediction.to_numpy(dtype=float)
            row["additive_r"] = stats.pearson(feats.sum(axis=0), y, floor=FLOOR)
            chosen, rs = forward_select_drivers(feats, y, driver_target_r, max_drivers)
            if chosen:
                dv = sub.iloc[chosen]
                drivers = pd.DataFrame(
                    {
                        "gene_id": gene_id,
                        "rank": np.arange(1, len(chosen) + 1),
                        "variant_id": dv.index.astype(str),
                        "tss_distance": dv["tss_distance"].astype(np.int64).to_numpy(),
                        "score": dv["score"].to_numpy(dtype=float),
                        "cumulative_r": rs,
                    }
                )
                row["n_drivers"] = len(chosen)
                row["driver_r"] = rs[-1]
                row["drivers"] = ";".join(drivers["variant_id"])
                row["driver_tss_distance"] = ";".join(str(x) for x in drivers["tss_distance"])
    return row, drivers


def concordance(
    ism: pd.DataFrame,
    eqtl: pd.DataFrame,
    cfg: dict,
    dosage_fn: DosageFn | None = None,
    predictions: pd.DataFrame | None = None,
    egenes: pd.DataFrame | None = None,
    expression: pd.DataFrame | None = None,
    covariates: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-gene concordance table and the long drivers table for one model. `egenes`:
    eqtl/genes.tsv, for `cfg["eqtl_significance"] == "permutation"` (the default);
    `expression` (the prepared expression, genes × people) and `covariates` (covariates ×
    people, the eQTL scan's) for `ism_eqtl_p` (with `dosage_fn`; NaN without)."""
    from hapexp.stats import Residualizer, keyed_rng

    cfg = with_defaults("concordance", cfg)
    n_perm = int(cfg["ism_eqtl_permutations"])
    res = None
    if expression is not None and n_perm > 0 and dosage_fn is not None:
        cov = None if covariates is None else covariates.loc[:, list(expression.columns)].to_numpy(float).T
        res = Residualizer(cov, n_samples=expression.shape[1])
    fdr, top_k = float(cfg["fdr"]), int(cfg["top_k"])
    eq = mark_significant(eqtl, fdr, cfg["eqtl_significance"], egenes)
    eq_by_gene = dict(tuple(eq.groupby("phenotype_id", sort=False)))
    empty_eq = eq.iloc[0:0]
    rows, drivers = [], []
    for gene_id, g in ism.groupby("gene_id", sort=True):
        gene_id = str(gene_id)
        dos = pred = null = None
        if dosage_fn is not None and predictions is not None and gene_id in predictions.index:
            pred = predictions.loc[gene_id].astype(float)
        if res is not None and gene_id in expression.index:
            y = expression.loc[gene_id].astype(float)
            perm = keyed_rng(cfg["seed"], gene_id).permuted(np.tile(np.arange(len(y)), (n_perm, 1)), axis=1)
            null = (y, res, perm)
        if dosage_fn is not None and (pred is not None or null is not None):
            dos = dosage_fn(gene_id, list(g["variant_id"]))
        row, drv = gene_concordance(
            gene_id,
            g,
            eq_by_gene.get(gene_id, empty_eq),
            top_k=top_k,
            dosages=dos,
            prediction=pred,
            driver_target_r=float(cfg["driver_target_r"]),
            max_drivers=int(cfg["max_drivers"]),
            eqtl_null=null,
        )
        rows.append(row)
        if len(drv):
            drivers.append(drv)
    table = pd.DataFrame(rows, columns=CONCORDANCE_COLUMNS)
    drv = pd.concat(drivers, ignore_index=True) if drivers else pd.DataFrame(columns=DRIVER_COLUMNS)
    return table, drv


def model_agreement(ism_by_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per gene and model pair: r of ISM (signed), r of |ISM| (magnitude), sign agreement.

    Separates "the models find the same variants important" (magnitude) from "they
    agree on the direction" (sign), the distinction Huang et al. and Sasse et al. draw.
    Only variants resolved by both models count (`n`); `n_unresolved` = variants scored
    by both where either score is unresolved.
    """
    names = list(ism_by_model)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            m = ism_by_model[a][["gene_id", "variant_id", "score"]].merge(
                ism_by_model[b][["gene_id", "variant_id", "score"]],
                on=["gene_id", "variant_id"],
                suffixes=("_a", "_b"),
            )  # unresolved scores (NaN) carry no sign or size: counted, left out below
            for gene_id, g in m.groupby("gene_id", sort=True):
                sa, sb = g["score_a"].to_numpy(dtype=float), g["score_b"].to_numpy(dtype=float)
                ok = np.isfinite(sa) & np.isfinite(sb)
                sa, sb = sa[ok], sb[ok]
                rows.append(
                    {
                        "gene_id": gene_id,
                        "model_a": a,
                        "model_b": b,
                        "n": int(ok.sum()),
                        "n_unresolved": int((~ok).sum()),
                        "r_score": stats.pearson(sa, sb, floor=FLOOR),
                        "r_magnitude": stats.pearson(np.abs(sa), np.abs(sb), floor=FLOOR),
                        "sign_agreement": _sign_agreement(sa, sb),
                    }
                )
    cols = ["gene_id", "model_a", "model_b", "n", "n_unresolved", "r_score", "r_magnitude", "sign_agreement"]
    return pd.DataFrame(rows, columns=cols)


def vcf_dosage_fn(vcf_path, samples: list[str], ism: pd.DataFrame) -> DosageFn:
    """Dosage look-up per gene from the cohort's normalized BCF (window = the ISM variants' span)."""
    from hapexp.variants.genotypes import span_dosages

    spans = ism.groupby("gene_id").agg(chrom=("chrom", "first"), lo=("pos", "min"), hi=("pos", "max"))

    def fn(gene_id: str, variant_ids: list[str]) -> pd.DataFrame:
        s = spans.loc[gene_id]
        # 1-based inclusive [lo, hi] → 0-based half-open [lo - 1, hi); every record
        # overlapping it, missing calls NaN (gene_concordance imputes them).
        return span_dosages(vcf_path, str(s["chrom"]), int(s["lo"]) - 1, int(s["hi"]), samples)

    return fn


def ism_headline(table: pd.DataFrame | None) -> dict:
    """The ISM columns of summary.tsv from a model's concordance table (its genes already
    chosen): median supported fraction, median ISM–eQTL r on significant eQTL pairs
    (`ism_eqtl_r_sig`, as the README describes; genes with fewer than 3 significant pairs
    have none), mean additive r. NaN without a table."""
    if table is None:
        return dict.fromkeys(("median_supported_fraction", "median_ism_eqtl_r", "mean_additive_r"), np.nan)
    return {
        "median_supported_fraction": table["supported_fraction"].median(),
        "median_ism_eqtl_r": table["ism_eqtl_r_sig"].median(),
        "mean_additive_r": table["additive_r"].mean(),
    }


def read_egenes(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"phenotype_id": str})


def run_concordance_chunk(ism, eqtl, egenes, predictions, bcf, chunk, table, drivers, cfg: dict, prepared=None,
                          covariates=None) -> pd.DataFrame:  # fmt: skip
    """Rule `concordance_chunk` (one model, one `chunk` of genes: chunks/{chunk}.tsv): the
    rows of its genes in the unit's `ism` scores against the `eqtl` scan (the chunk's nominal
    pairs; under `bh_all_pairs`, every pair of the scan: BH runs over all of them),
    significance from `egenes` (eqtl/genes.tsv), drivers of its `predictions` from the
    dosages of the normalized `bcf`, `ism_eqtl_p` by permuting the `prepared` expression (on
    the eQTL scan's `covariates`); writes the chunk's per-gene `table` and `drivers` table.
    Each gene's row depends on that gene alone (its ISM, its pairs, its seeded
    permutations), so rule concordance's gather of the chunks is the table of every gene."""
    from hapexp.io import read_matrix, read_parquet_rows, write_tsv

    genes = pd.read_csv(chunk, sep="\t", dtype={"gene_id": str})["gene_id"].tolist()
    ism = read_parquet_rows(ism, "gene_id", genes)
    eqtl = pd.read_parquet(eqtl, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"])
    predictions = read_matrix(predictions)
    expression = read_matrix(prepared) if prepared else None
    cov = read_matrix(covariates, index_col="id") if covariates else None
    egenes = read_egenes(egenes) if egenes else None
    unresolved = int(ism["score"].isna().sum())
    log.info(
        "ISM: %d scores of %d genes, %d unresolved (within numerical resolution; excluded); eQTL significance: %s",
        len(ism),
        len(genes),
        unresolved,
        with_defaults("concordance", cfg)["eqtl_significance"],
    )
    # dosages of the model's people (drivers) and of the expression's (ism_eqtl_p)
    people = list(predictions.columns)
    if expression is not None:
        people += [s for s in expression.columns if s not in set(people)]
    dosage_fn = vcf_dosage_fn(bcf, people, ism) if len(ism) else None
    per_gene, driver_table = concordance(ism, eqtl, cfg, dosage_fn, predictions, egenes, expression, cov)
    write_tsv(per_gene, table)
    write_tsv(driver_table, drivers)
    log.info("concordance: %d genes", len(per_gene))
    return per_gene


def run_concordance(table_chunks, drivers_chunks, table, drivers) -> pd.DataFrame:
    """Rule `concordance` (one model): rule concordance_chunk's per-gene `table` and `drivers`
    of every chunk in one table each, ordered by gene id as `concordance` orders them (chunks
    follow the genome). Read with the text columns as text (a lone driver's distance stays
    "12", not 12.0) and the empty chunks left out, so the tables are what one `concordance`
    over every gene writes."""
    from hapexp.io import write_tsv

    def gather(files, columns, text):
        frames = [pd.read_csv(f, sep="\t", dtype=dict.fromkeys(text, str)) for f in files]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=columns)
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values("gene_id", kind="mergesort", ignore_index=True)

    per_gene = gather(table_chunks, CONCORDANCE_COLUMNS, ["gene_id", "drivers", "driver_tss_distance"])
    twice = per_gene["gene_id"][per_gene["gene_id"].duplicated()]
    if len(twice):
        raise ValueError(f"gene {twice.iloc[0]} is in more than one chunk")
    write_tsv(per_gene, table)
    write_tsv(gather(drivers_chunks, DRIVER_COLUMNS, ["gene_id", "variant_id"]), drivers)
    log.info("concordance: %d genes from %d chunks", len(per_gene), len(table_chunks))
    return per_gene


def run_ism_agreement(ism, agreement, models: list[str]) -> pd.DataFrame:
    """Rule `ism_agreement`: ISM magnitude/direction agreement between every pair of models
    (`ism`: their ISM tables, in the order of `models`), written to `agreement`."""
    from hapexp.io import write_tsv

    table = model_agreement({name: pd.read_parquet(p) for name, p in zip(models, ism, strict=True)})
    write_tsv(table, agreement)
    log.info("ISM agreement: %d gene × model pair rows", len(table))
    return table
