"""Causal-variant benchmark: do a model's |ISM| scores find the variants fine-mapping calls
causal, better than distance to the TSS and the elastic net?

The variant set (`matched_set`):
- **the common in-window set**: ISM exists only inside a model's window, so every model is
  scored on the variants that *every* model's ISM table holds for the gene (inside the
  smallest window; `window` in the table: that window in bp, TSS-centred). ISM tables and
  the fine-mapping table name variants alike (`chrom_pos_ref_alt`, 1-based, from the one
  normalized BCF through the one genotype reader: `hapexp.sequences.index` and
  `hapexp.variants.genotypes`); they are joined on (gene, variant_id).
- **positives**: PIP ≥ `pip_positive` (SuSiE, `hapexp.linear.finemap`: the in-cohort
  fine-mapping, or a unit's external credible sets in the same layout —
  `external_pips`: eQTL Catalogue, GTEx v8 —, the non-circular reference: PIPs fitted on
  the cohort's own expression share its noise with any in-cohort baseline); **negatives**:
  PIP < `pip_negative` from the same genes (with external credible sets: cis variants of a
  fine-mapped gene that the file does not list count as PIP 0). Each positive draws `negatives_per_positive`
  negatives of its gene, without replacement, in the same |TSS distance| bin
  (`distance_bins`, bp) and, where the gene has enough, the same MAF bin (`maf_bins`; MAF
  from the fine-mapping's in-sample allele frequency); `matched_on` says which. A positive
  with no negative in its distance bin is dropped and counted (`positives_unmatched`);
  positives outside the common in-window set are counted (`positives_not_scored`).
  Draws are seeded per gene (`seed`, `hapexp.stats.keyed_rng`): any order, any subset
  of genes gives the same draws for a gene.

The predictors (`benchmark`), each ranking variants as candidates for causality:
- each model: |ISM|. An unresolved score (NaN: within the model's numerical resolution,
  `hapexp.engine.ism`) is ranked as the smallest |ISM|: all tied, below every resolved
  score (not dropped: a model that cannot resolve a variant's effect has not found it);
- `distance`: −|TSS distance| (nearer ranks higher);
- `elasticnet`: |weight| of the PrediXcan elastic net (`weights.db`, matched on
  chrom/pos/ref/alt through PredictDB's varID; 0 for variants outside the gene's model);
  `in_sample` when it was fitted on the people whose expression the PIPs come from (in the
  workflow: with the in-cohort SuSiE's PIPs, the same unit; not with external ones).
AUROC and AUPRC (`hapexp.stats.auroc`, `average_precision`: scikit-learn's, ties as it
handles them) with percentile confidence intervals from a bootstrap over genes
(`bootstrap` replicates, `ci` level, seeded); `prevalence` is the AUPRC of a random
ranking. No number is reported below `min_positives` positives (`note` says why). Models
fine-tuned on the cohort are scored on the held-out genes only (`genes = held_out`: genes
of splits/genes.tsv with `split = test`), beside every other predictor on the same genes.

Sign agreement: on the positives, sign(ISM) (read-out with ALT − with REF) against the
sign of SuSiE's posterior mean effect (per ALT dosage, adjusted for the other variants of
the gene: not the LD-confounded marginal slope); fraction agreeing and two-sided exact
binomial p against ½ (`hapexp.stats.sign_agreement_test`), over positives whose score is
resolved and non-zero. The elastic net's weight (per ALT dosage) is tested the same way.
External credible sets give a posterior effect only where the file has one (GTEx's SuSiE
`beta_posterior`); for the others sign agreement is not available and the table says why
(eQTL Catalogue's `beta` and GTEx's `beta_marginal` are marginal, LD-confounded slopes: not
used in its place).

With a known truth (the simulated demo's truth.tsv: gene_id, variant_id, …), `pip_calibration`
tabulates, per PIP bin, the fraction of fine-mapped variants that are truly causal (a
reliability curve; exact binomial interval), and the matched set gets `causal_truth`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp import stats
from hapexp.config.schema import defaults, with_defaults

log = logging.getLogger(__name__)

# Defaults of config key `causal` (the schema block of the report mirrors them).
# The schema holds the defaults (config key `causal`).
CAUSAL_DEFAULTS = defaults("causal")

MATCHED_COLUMNS = [
    "gene_id",
    "variant_id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "maf",
    "tss_distance",
    "distance_bin",
    "maf_bin",
    "pip",
    "posterior_mean",
    "label",
    "matched_to",
    "matched_on",
]
BENCHMARK_COLUMNS = [
    "predictor",
    "kind",
    "genes",
    "window",
    "in_sample",
    "n_positives",
    "n_negatives",
    "n_genes",
    "n_unresolved_positives",
    "n_unresolved_negatives",
    "prevalence",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "auprc",
    "auprc_lo",
    "auprc_hi",
    "n_sign",
    "sign_agreement",
    "sign_p",
    "positives_not_scored",
    "positives_unmatched",
    "pip_positive",
    "pip_negative",
    "negatives_per_positive",
    "note",
]
CALIBRATION_COLUMNS = ["pip_lo", "pip_hi", "n", "mean_pip", "n_causal", "fraction_causal", "ci_lo", "ci_hi"]
BASELINES = ("distance", "elasticnet")


def causal_cfg(cfg: dict | None) -> dict:
    """The `causal` block with the schema's defaults."""
    return with_defaults("causal", cfg or {})


def _bin(x: np.ndarray, edges) -> np.ndarray:
    """Bin index of each value: [e_k, e_{k+1}), the last bin open above (−1 below e_0)."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(x, dtype=float), side="right") - 1


# --------------------------------------------------------------------------- the variant set
def common_variants(ism_by_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The (gene, variant) pairs every model's ISM table holds, annotated from the first
    model's table, with each model's score as `ism:<model>`."""
    names = list(ism_by_model)
    if not names:
        raise ValueError("no model's ISM to benchmark")
    first = ism_by_model[names[0]]
    cols = ["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "tss_distance"]
    out = first[cols + ["score"]].drop_duplicates(["gene_id", "variant_id"])
    out = out.rename(columns={"score": f"ism:{names[0]}"})
    for m in names[1:]:
        s = ism_by_model[m][["gene_id", "variant_id", "score"]].drop_duplicates(["gene_id", "variant_id"])
        out = out.merge(s.rename(columns={"score": f"ism:{m}"}), on=["gene_id", "variant_id"], how="inner")
    out = out.astype({"gene_id": str, "variant_id": str, "chrom": str})
    return out.sort_values(["gene_id", "pos", "variant_id"], kind="mergesort").reset_index(drop=True)


def matched_set(pips: pd.DataFrame, ism_by_model: dict[str, pd.DataFrame], windows: dict[str, int],
                cfg: dict | None = None) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Positives and distance/MAF-matched negatives on the common in-window set (module doc).
    Returns (the matched variants, `MATCHED_COLUMNS` + `ism:<model>` scores; facts: window,
    positives_not_scored, positives_unmatched, variants in the common set)."""
    cfg = causal_cfg(cfg)
    window = int(min(int(windows[m]) for m in ism_by_model))
    common = common_variants(ism_by_model)
    # the smallest window, TSS-centred (hapexp.variants.windows: [tss0 − L/2, tss0 + L/2)
    # in gene orientation): what the ISM tables hold already, held explicitly
    d = common["tss_distance"].to_numpy(np.int64)
    common = common[(d >= -(window // 2)) & (d < window // 2)]
    p = pips[["phenotype_id", "variant_id", "pip", "af", "posterior_mean"]].rename(
        columns={"phenotype_id": "gene_id"}
    )
    p = p.astype({"gene_id": str, "variant_id": str})
    pos_all = p[p["pip"] >= float(cfg["pip_positive"])]
    v = common.merge(p, on=["gene_id", "variant_id"], how="inner")
    v["maf"] = np.minimum(v["af"], 1.0 - v["af"])
    v["distance_bin"] = _bin(np.abs(v["tss_distance"].to_numpy(float)), cfg["distance_bins"])
    v["maf_bin"] = _bin(v["maf"].to_numpy(float), cfg["maf_bins"])
    is_pos = v["pip"].to_numpy(float) >= float(cfg["pip_positive"])
    is_neg = v["pip"].to_numpy(float) < float(cfg["pip_negative"])
    facts = {
        "window": window,
        "n_common": len(common),
        "positives_not_scored": int(len(pos_all) - is_pos.sum()),
        "positives_unmatched": 0,
    }
    k = int(cfg["negatives_per_positive"])
    rows: list[pd.DataFrame] = []
    for gene_id in sorted(set(v.loc[is_pos, "gene_id"])):
        g = v[v["gene_id"] == gene_id]
        gpos = g[is_pos[g.index]].sort_values(["variant_id"], kind="mergesort")
        gneg = g[is_neg[g.index]]
        rng = stats.keyed_rng(int(cfg["seed"]), gene_id)
        used: set = set()
        for _, r in gpos.iterrows():
            same_d = gneg[(gneg["distance_bin"] == r["distance_bin"]) & ~gneg.index.isin(used)]
            same_dm = same_d[same_d["maf_bin"] == r["maf_bin"]]
            if len(same_dm) >= k:
                pick, on = same_dm.index[rng.choice(len(same_dm), k, replace=False)], "distance+maf"
            else:
                rest = same_d.drop(index=same_dm.index)
                fill = rest.index[rng.choice(len(rest), min(k - len(same_dm), len(rest)), replace=False)]
                pick, on = same_dm.index.append(fill), "distance"
            if len(pick) == 0:
                facts["positives_unmatched"] += 1
                continue
            used.update(pick)
            rows.append(r.to_frame().T.assign(label=1, matched_to=r["variant_id"], matched_on=on))
            rows.append(gneg.loc[pick].assign(label=0, matched_to=r["variant_id"], matched_on=on))
    ism_cols = [f"ism:{m}" for m in ism_by_model]
    if not rows:
        out = pd.DataFrame(columns=MATCHED_COLUMNS + ism_cols)
    else:
        out = pd.concat(rows, ignore_index=True)[MATCHED_COLUMNS + ism_cols]
    out = out.astype(
        {
            "gene_id": str,
            "variant_id": str,
            "chrom": str,
            "pos": np.int64,
            "ref": str,
            "alt": str,
            "maf": float,
            "tss_distance": np.int64,
            "distance_bin": np.int64,
            "maf_bin": np.int64,
            "pip": float,
            "posterior_mean": float,
            "label": np.int64,
            "matched_to": str,
            "matched_on": str,
            **dict.fromkeys(ism_cols, float),
        }
    )
    log.info(
        "matched set: %d positives (PIP >= %g) in %d genes, %d negatives (PIP < %g); window %d bp; "
        "%d positives outside the common in-window ISM set, %d without a negative in their distance bin",
        int(out["label"].sum()),
        float(cfg["pip_positive"]),
        out["gene_id"].nunique(),
        int((out["label"] == 0).sum()),
        float(cfg["pip_negative"]),
        window,
        facts["positives_not_scored"],
        facts["positives_unmatched"],
    )
    return out, facts


# --------------------------------------------------------------------------- predictors
def rank_scores(scores) -> np.ndarray:
    """|score| for ranking, unresolved (NaN) as the smallest: −inf, tied with each other."""
    s = np.abs(np.asarray(scores, dtype=float))
    return np.where(np.isnan(s), -np.inf, s)


_BUILD = re.compile(r"_b3[78]$")


def _varid_key(chrom, pos, ref, alt) -> list[str]:
    """PredictDB's varID without the build suffix (`chr{chrom}_{pos}_{ref}_{alt}`)."""
    from hapexp.linear.predictdb import varids

    return varids(chrom, pos, ref, alt, None)


def elasticnet_weights(matched: pd.DataFrame, weights: pd.DataFrame | None) -> np.ndarray:
    """Each matched variant's elastic-net weight in its gene's model (per ALT dosage; 0 when
    the model leaves it out or the gene has no model). `weights`: PredictDB's `weights`
    table (gene, varID, weight; `hapexp.linear.predictdb.read_predictdb_weights`)."""
    if weights is None or not len(weights) or not len(matched):
        return np.zeros(len(matched))
    w = weights.dropna(subset=["varID"])
    key = pd.Series(w["weight"].to_numpy(float), index=pd.MultiIndex.from_arrays(
        [w["gene"].astype(str), [_BUILD.sub("", str(x)) for x in w["varID"]]]))  # fmt: skip
    key = key[~key.index.duplicated()]
    want = pd.MultiIndex.from_arrays(
        [
            matched["gene_id"].astype(str),
            _varid_key(matched["chrom"], matched["pos"], matched["ref"], matched["alt"]),
        ]
    )
    return key.reindex(want).fillna(0.0).to_numpy(float)


def predictors(matched: pd.DataFrame, models: list[str], weights: pd.DataFrame | None) -> dict[str, tuple]:
    """Predictor → (ranking score, signed effect for the sign test or None, kind)."""
    out = {
        m: (rank_scores(matched[f"ism:{m}"]), matched[f"ism:{m}"].to_numpy(float), "model") for m in models
    }
    out["distance"] = (-np.abs(matched["tss_distance"].to_numpy(float)), None, "baseline")
    w = elasticnet_weights(matched, weights)
    out["elasticnet"] = (np.abs(w), w, "baseline")
    return out


# --------------------------------------------------------------------------- the benchmark
def score_predictor(rank: np.ndarray, labels: np.ndarray, genes: np.ndarray, n_boot: int, level: float,
                    rng: np.random.Generator) -> dict:  # fmt: skip
    """AUROC and AUPRC of one ranking with percentile CIs from a bootstrap over `genes`."""
    auc, ap = stats.auroc(rank, labels), stats.average_precision(rank, labels)
    out = {
        "auroc": auc,
        "auprc": ap,
        "auroc_lo": np.nan,
        "auroc_hi": np.nan,
        "auprc_lo": np.nan,
        "auprc_hi": np.nan,
    }
    if n_boot > 0 and len(np.unique(genes)) > 1:
        reps = stats.cluster_bootstrap(
            genes, lambda ix: (stats.auroc(rank[ix], labels[ix]), stats.average_precision(rank[ix], labels[ix])),
            n_boot, rng,
        )  # fmt: skip
        out["auroc_lo"], out["auroc_hi"] = stats.percentile_ci(reps[:, 0], level)
        out["auprc_lo"], out["auprc_hi"] = stats.percentile_ci(reps[:, 1], level)
    return out


def benchmark(matched: pd.DataFrame, models: list[str], weights: pd.DataFrame | None = None,
              cfg: dict | None = None, facts: dict | None = None, finetuned=(), test_genes=None,
              elasticnet_in_sample: bool = True, sign_unavailable: str | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per predictor and gene set (`BENCHMARK_COLUMNS`): every predictor on every
    matched gene (`genes = all`) but the `finetuned` models; with fine-tuned models, every
    predictor on the held-out genes (`test_genes`, `genes = held_out`) too.
    `sign_unavailable`: why the PIPs come without posterior effects (no sign test; the
    signed predictors' `note` says so)."""
    cfg = causal_cfg(cfg)
    facts = facts or {}
    preds = predictors(matched, models, weights)
    labels = matched["label"].to_numpy(int).astype(bool)
    gene = matched["gene_id"].to_numpy(str)
    scopes = [("all", np.ones(len(matched), bool))]
    finetuned = [m for m in finetuned if m in models]
    if finetuned:
        held = set(map(str, test_genes if test_genes is not None else []))
        scopes.append(("held_out", np.isin(gene, sorted(held))))
    rows = []
    for scope, mask in scopes:
        for name, (rank, effect, kind) in preds.items():
            if scope == "all" and name in finetuned:
                continue
            y, g, r = labels[mask], gene[mask], rank[mask]
            n_pos = int(y.sum())
            row = dict.fromkeys(BENCHMARK_COLUMNS, np.nan)
            row.update(
                predictor=name,
                kind=kind,
                genes=scope,
                window=facts.get("window", np.nan),
                in_sample=bool(elasticnet_in_sample) if name == "elasticnet" else False,
                n_positives=n_pos,
                n_negatives=int((~y).sum()),
                n_genes=len(np.unique(g[y])),
                n_unresolved_positives=int(np.sum(np.isneginf(r) & y)) if kind == "model" else 0,
                n_unresolved_negatives=int(np.sum(np.isneginf(r) & ~y)) if kind == "model" else 0,
                prevalence=n_pos / len(y) if len(y) else np.nan,
                n_sign=0,
                positives_not_scored=facts.get("positives_not_scored", np.nan),
                positives_unmatched=facts.get("positives_unmatched", np.nan),
                pip_positive=float(cfg["pip_positive"]),
                pip_negative=float(cfg["pip_negative"]),
                negatives_per_positive=int(cfg["negatives_per_positive"]),
                note="",
            )
            if n_pos < int(cfg["min_positives"]):
                row["note"] = f"fewer than {int(cfg['min_positives'])} positives: not reported"
            elif not (~y).any():
                row["note"] = "no negatives: not reported"
            else:
                rng = stats.keyed_rng(int(cfg["seed"]), f"{scope}:{name}")
                row.update(score_predictor(r, y, g, int(cfg["bootstrap"]), float(cfg["ci"]), rng))
                if effect is not None and sign_unavailable:
                    row["note"] = f"sign agreement not available: {sign_unavailable}"
                elif effect is not None:
                    n, _, frac, p = stats.sign_agreement_test(
                        effect[mask][y], matched["posterior_mean"].to_numpy(float)[mask][y]
                    )
                    row["n_sign"] = n
                    if n >= int(cfg["min_positives"]):
                        row["sign_agreement"], row["sign_p"] = frac, p
            rows.append(row)
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


# --------------------------------------------------------------------------- known truth
def pip_calibration(pips: pd.DataFrame, truth: pd.DataFrame, bins=None, level: float = 0.95) -> pd.DataFrame:
    """Reliability of the PIPs against a known truth (gene_id, variant_id of the causal
    variants): per PIP bin [lo, hi) (the last closed), the variants fine-mapped, their mean
    PIP, how many are causal, the fraction and its exact binomial (Clopper–Pearson) interval."""
    from scipy.stats import binomtest

    bins = np.asarray(CAUSAL_DEFAULTS["calibration_bins"] if bins is None else bins, dtype=float)
    causal = set(zip(truth["gene_id"].astype(str), truth["variant_id"].astype(str), strict=True))
    is_causal = np.array(
        [(str(g), str(v)) in causal for g, v in zip(pips["phenotype_id"], pips["variant_id"], strict=True)],
        bool,
    )
    pip = pips["pip"].to_numpy(float)
    k = np.clip(np.searchsorted(bins, pip, side="right") - 1, 0, len(bins) - 2)
    rows = []
    for b in range(len(bins) - 1):
        sel = k == b
        n, c = int(sel.sum()), int(is_causal[sel].sum())
        lo = hi = np.nan
        if n:
            ci = binomtest(c, n).proportion_ci(level, method="exact")
            lo, hi = float(ci.low), float(ci.high)
        rows.append(
            {
                "pip_lo": bins[b],
                "pip_hi": bins[b + 1],
                "n": n,
                "mean_pip": float(pip[sel].mean()) if n else np.nan,
                "n_causal": c,
                "fraction_causal": c / n if n else np.nan,
                "ci_lo": lo,
                "ci_hi": hi,
            }
        )
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def truth_labels(matched: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    causal = set(zip(truth["gene_id"].astype(str), truth["variant_id"].astype(str), strict=True))
    return np.array(
        [(g, v) in causal for g, v in zip(matched["gene_id"], matched["variant_id"], strict=True)], bool
    )


# --------------------------------------------------------------------------- summary, figure
HEADLINE_COLUMNS = [
    "causal_auroc",
    "causal_auroc_lo",
    "causal_auroc_hi",
    "causal_auprc",
    "causal_n_positives",
    "causal_n_genes",
    "causal_sign_agreement",
    "causal_sign_p",
]


def causal_headline(table: pd.DataFrame | None, predictor: str) -> dict:
    """summary.tsv's causal-benchmark columns of one predictor (on every matched gene; a
    fine-tuned model: on the held-out genes). NaN without a table or a row."""
    out = dict.fromkeys(HEADLINE_COLUMNS, np.nan)
    if table is None or not len(table):
        return out
    rows = table[table["predictor"] == predictor]
    rows = rows[rows["genes"] == "all"] if (rows["genes"] == "all").any() else rows
    if not len(rows):
        return out
    r = rows.iloc[0]
    out.update(
        causal_auroc=r["auroc"],
        causal_auroc_lo=r["auroc_lo"],
        causal_auroc_hi=r["auroc_hi"],
        causal_auprc=r["auprc"],
        causal_n_positives=r["n_positives"],
        causal_n_genes=r["n_genes"],
        causal_sign_agreement=r["sign_agreement"],
        causal_sign_p=r["sign_p"],
    )
    return out


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor of the benchmark: `predictor` + `HEADLINE_COLUMNS`, what rule
    summary merges into summary.tsv (by predictor: no import of this module there)."""
    names = list(dict.fromkeys(table["predictor"])) if len(table) else []
    return pd.DataFrame(
        [{"predictor": n, **causal_headline(table, n)} for n in names],
        columns=["predictor", *HEADLINE_COLUMNS],
    )


def _f(x, digits: int = 3) -> str:
    return "NA" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _g(x) -> str:
    return "NA" if x is None or not np.isfinite(float(x)) else f"{float(x):.3g}"


def _p(x) -> str:
    return "NA" if x is None or not np.isfinite(float(x)) else f"{float(x):.2g}"


def pips_sentence(source: dict | None) -> str:
    """Which PIPs the benchmark used: the in-cohort SuSiE's, or the external file
    (`source`: rule external_finemap's facts — path, format, method, tissue, build, match
    counts)."""
    if source is None:
        return (
            "PIPs: in-cohort SuSiE (finemap/pips.parquet), fitted on this expression: the elastic net, "
            "fitted on the same people, is in-sample."
        )
    c = source.get("counts", {})
    what = ", ".join(
        x
        for x in (
            source.get("format"),
            source.get("method") and f"method {source['method']}",
            source.get("tissue") and f"tissue {source['tissue']}",
            source.get("build") and f"{source['build']}",
        )
        if x
    )
    return (
        f"PIPs: the external credible sets `{source['path']}` ({what}; finemap/external.parquet): "
        f"{c.get('matched', 0)} of {c.get('rows', 0)} rows of the {c.get('genes_analysed', 0)} genes analysed "
        f"here matched the cohort's variants by position and alleles ({c.get('flipped', 0)} with REF/ALT "
        f"swapped; {c.get('unmatched', 0)} unmatched, {c.get('unmatched_alleles', 0)} of them at a cohort "
        f"position with other alleles), {c.get('genes_written', 0)} genes kept; a cis variant of such a gene "
        "that the file does not list counts as PIP 0. Not fitted on this cohort's expression: no baseline is "
        "in-sample."
    )


def causal_markdown(table: pd.DataFrame, calibration: pd.DataFrame | None = None,
                    source: dict | None = None) -> list[str]:  # fmt: skip
    """summary.md's section: the benchmark table and what it was measured on (which PIPs:
    `pips_sentence`); the PIP calibration when a truth was known."""
    lines = ["## Causal variants: |ISM| against fine-mapped eQTLs (causal/benchmark.tsv)", ""]
    if table is None or not len(table):
        return lines + [
            pips_sentence(source),
            "",
            "No fine-mapped positives in the models' common window: nothing to report.",
        ]
    t0 = table.iloc[0]
    w = int(t0["window"]) if np.isfinite(float(t0["window"])) else None
    if source is None:
        sign = "Sign: ISM against SuSiE's posterior effect of each positive (binomial test against ½)."
    elif source.get("posterior"):
        sign = (
            f"Sign: ISM against the file's posterior effect (`{source['posterior']}`, turned to the cohort's "
            "ALT) of each positive (binomial test against ½)."
        )
    else:
        sign = f"Sign agreement: not available — {source.get('no_posterior')}."
    lines += [
        pips_sentence(source),
        "",
        f"Positives: variants with {'SuSiE ' if source is None else ''}PIP ≥ {t0['pip_positive']:g}; negatives: PIP < "
        f"{t0['pip_negative']:g} in the same genes, {int(t0['negatives_per_positive'])} per positive "
        "matched on distance to the TSS (and MAF where the gene allows). Every predictor is scored on "
        "the variants every model's ISM holds"
        + (f" (TSS ± {w // 2:,} bp, the smallest model window, {w:,} bp)" if w else "")
        + f"; left out: positives outside it ({int(t0['positives_not_scored'])}) and positives without a "
        f"negative in their distance bin ({int(t0['positives_unmatched'])}). Unresolved ISM scores rank as the "
        "smallest |ISM| (tied). Intervals: percentile bootstrap over genes. " + sign,
        "",
    ]
    header = ["predictor", "genes", "positives (genes)", "negatives", "AUROC [CI]", "AUPRC [CI]", "random AUPRC",
              "sign agreement (n)", "p (sign)", "note"]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iterrows():
        name = r["predictor"] + (" (in-sample)" if bool(r["in_sample"]) else "")
        vals = [
            name,
            "held-out" if r["genes"] == "held_out" else "all",
            f"{int(r['n_positives'])} ({int(r['n_genes'])})",
            str(int(r["n_negatives"])),
            f"{_f(r['auroc'])} [{_f(r['auroc_lo'])}, {_f(r['auroc_hi'])}]",
            f"{_f(r['auprc'])} [{_f(r['auprc_lo'])}, {_f(r['auprc_hi'])}]",
            _f(r["prevalence"]),
            f"{_f(r['sign_agreement'])} ({int(r['n_sign'])})" if r["kind"] != "baseline" or r["predictor"] != "distance" else "—",
            _p(r["sign_p"]),
            str(r["note"]) if isinstance(r["note"], str) else "",
        ]  # fmt: skip
        lines.append("| " + " | ".join(vals) + " |")
    if calibration is not None and len(calibration) and calibration["n"].sum():
        lines += ["", "PIP calibration against the known causal variants (causal/calibration.tsv):", ""]
        lines += [
            "| PIP bin | variants | mean PIP | truly causal | fraction [95 % CI] |",
            "|---|---|---|---|---|",
        ]
        last = len(calibration) - 1
        for j, (_, c) in enumerate(calibration.iterrows()):
            close = "]" if j == last else ")"  # the last bin holds PIP = 1
            lines.append(
                f"| [{c['pip_lo']:g}, {c['pip_hi']:g}{close} | {int(c['n'])} | {_f(c['mean_pip'])} | "
                f"{int(c['n_causal'])} | {_g(c['fraction_causal'])} [{_g(c['ci_lo'])}, {_g(c['ci_hi'])}] |"
            )
    return lines


def curves_figure(matched: pd.DataFrame, table: pd.DataFrame, models: list[str], weights, path,
                  calibration: pd.DataFrame | None = None, test_genes=None) -> None:  # fmt: skip
    """ROC and precision–recall curves of every predictor reported (one panel each; a
    fine-tuned model on the held-out genes, dashed), and the PIP reliability curve when a
    truth is known; written as PNG + PDF (`hapexp.verdict.figures.save`)."""
    from hapexp.verdict import figures as fg

    plt = fg.plt
    with plt.rc_context(fg.STYLE):
        n = 3 if calibration is not None and len(calibration) and calibration["n"].sum() else 2
        fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.4), layout="constrained")
        roc, pr = axes[0], axes[1]
        preds = predictors(matched, models, weights) if len(matched) else {}
        labels = matched["label"].to_numpy(int).astype(bool) if len(matched) else np.zeros(0, bool)
        gene = matched["gene_id"].to_numpy(str) if len(matched) else np.zeros(0, str)
        drawn = 0
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, r in enumerate(table.itertuples(index=False)):
            if not np.isfinite(float(r.auroc)) or r.predictor not in preds:
                continue
            mask = (
                np.ones(len(labels), bool)
                if r.genes == "all"
                else np.isin(gene, list(map(str, test_genes or [])))
            )
            rank = preds[r.predictor][0][mask]
            y = labels[mask]
            style = {"color": colors[i % len(colors)], "ls": "-" if r.genes == "all" else "--"}
            if r.kind == "baseline":
                style["lw"] = 1.2
            tag = (
                r.predictor
                + (" (in-sample)" if r.in_sample else "")
                + (" held-out" if r.genes != "all" else "")
            )
            fx, ty = stats.roc_points(rank, y)
            roc.plot(fx, ty, label=f"{tag}: {r.auroc:.2f}", **style)
            rc, pc = stats.pr_points(rank, y)
            pr.step(np.r_[0.0, rc], np.r_[pc[0], pc], where="pre", label=f"{tag}: {r.auprc:.2f}", **style)
            drawn += 1
        if drawn:
            roc.plot([0, 1], [0, 1], color=fg.GREY, lw=0.8, ls=":")
            prev = float(table["prevalence"].iloc[0])
            pr.axhline(prev, color=fg.GREY, lw=0.8, ls=":")
            roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (AUROC)")
            pr.set(xlabel="recall", ylabel="precision", title="precision–recall (AUPRC)", ylim=(0, 1.02))
            roc.legend(fontsize=8, loc="lower right")
            pr.legend(fontsize=8, loc="upper right")
        else:
            why = "too few fine-mapped positives" if len(table) else "no positives in the common window"
            fg._no_data(roc, why)
            fg._no_data(pr, why)
        if n == 3:
            ax = axes[2]
            c = calibration[calibration["n"] > 0]
            err = np.vstack([c["fraction_causal"] - c["ci_lo"], c["ci_hi"] - c["fraction_causal"]])
            ax.errorbar(c["mean_pip"], c["fraction_causal"], yerr=err, fmt="o-", color=fg.POS, capsize=3)
            for j, (_, row) in enumerate(c.iterrows()):  # labels alternate below/above: no overlap
                ax.annotate(f"n={int(row['n'])}", (row["mean_pip"], row["fraction_causal"]), fontsize=8,
                            xytext=(4, -12 if j % 2 == 0 else 8), textcoords="offset points")  # fmt: skip
            ax.plot([0, 1], [0, 1], color=fg.GREY, lw=0.8, ls=":")
            ax.set(xlabel="mean PIP in bin", ylabel="fraction truly causal", title="PIP calibration (known truth)",
                   xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))  # fmt: skip
        fg.save(fig, path)


# --------------------------------------------------------------------------- the rule
def read_truth(path) -> pd.DataFrame | None:
    """A truth table (gene_id, variant_id of the causal variants, …); None without a path."""
    return None if not path else pd.read_csv(path, sep="\t", dtype={"gene_id": str, "variant_id": str})


def held_out_genes(genes_split) -> list[str]:
    """Held-out genes of splits/genes.tsv (`split = test`)."""
    if not genes_split:
        return []
    s = pd.read_csv(genes_split, sep="\t", dtype={"gene_id": str})
    return sorted(s.loc[s["split"] == "test", "gene_id"])


def run_causal_benchmark(pips, ism, weights, genes_split, table, matched, calibration, headline, section, curves,
                         models: list[str], windows: dict, finetuned=(), cfg: dict | None = None,
                         truth=None, elasticnet_in_sample: bool = True, pips_source=None) -> pd.DataFrame:  # fmt: skip
    """Rule `causal_benchmark`: every model's |ISM| (`ism`: their tables in the order of
    `models`, `windows` their input lengths) against the fine-mapped `pips`, beside the
    distance and elastic-net (`weights`, its PredictDB db) baselines; the `finetuned` models
    on the held-out genes of `genes_split`. `pips_source`: with external credible sets
    (rule external_finemap's `pips`), its facts JSON — the elastic net is then not
    in-sample, sign agreement needs the file's posterior effect, and summary.md names the
    file; without, `pips` are the in-cohort SuSiE's. Writes the benchmark `table`, the
    `matched` variants, the PIP `calibration` against a known `truth` (header only
    without), what rule summary reads (`headline`: summary.tsv's columns per predictor;
    `section`: summary.md's section) and the ROC/PR figure `curves` (PNG + PDF)."""
    import json

    from hapexp.io import atomic_output, write_tsv
    from hapexp.linear.predictdb import read_predictdb_weights

    cfg = causal_cfg(cfg)
    source = json.loads(Path(pips_source).read_text()) if pips_source else None
    if source is not None:
        elasticnet_in_sample = False  # the PIPs do not come from this cohort's expression
        log.info("PIPs: the external credible sets %s (%s)", source["path"], source["format"])
    fm = pd.read_parquet(pips)
    ism_by_model = {m: pd.read_parquet(p) for m, p in zip(models, ism, strict=True)}
    w = read_predictdb_weights(weights) if weights else None
    held = held_out_genes(genes_split)
    truth_table = read_truth(truth)
    mset, facts = matched_set(fm, ism_by_model, windows, cfg)
    result = benchmark(mset, list(models), w, cfg, facts, finetuned, held, elasticnet_in_sample,
                       None if source is None else source.get("no_posterior"))  # fmt: skip
    cal = pd.DataFrame(columns=CALIBRATION_COLUMNS)
    if truth_table is not None:
        cal = pip_calibration(fm, truth_table, cfg["calibration_bins"])
        mset["causal_truth"] = truth_labels(mset, truth_table)
        top = fm[fm["pip"] >= float(cfg["pip_positive"])]
        frac = (
            truth_labels(top.rename(columns={"phenotype_id": "gene_id"}), truth_table).mean()
            if len(top)
            else np.nan
        )
        log.info("PIP >= %g: %d variants, %.3f truly causal", float(cfg["pip_positive"]), len(top), frac)
    mset["held_out_gene"] = mset["gene_id"].isin(held)
    write_tsv(result, table)
    write_tsv(mset, matched)
    write_tsv(cal, calibration)
    write_tsv(headline_table(result), headline)
    with atomic_output(section) as tmp:
        tmp.write_text("\n".join(causal_markdown(result, cal if len(cal) else None, source)) + "\n")
    curves_figure(mset, result, list(models), w, curves, cal if len(cal) else None, held)
    log.info(
        "causal benchmark:\n%s", result[["predictor", "genes", "n_positives", "auroc", "auprc"]].to_string()
    )
    return result
