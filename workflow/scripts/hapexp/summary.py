"""Headline numbers per cohort (summary.tsv / summary.md) and the demo-truth checks.

The headline numbers follow the papers' form (Huang et al. 2023, Sasse et al. 2023):
genes tested, mean r, significant positive / negative genes at FDR 0.05, linear vs
deep counts, median supported fraction, cross-gene r.

The `check_*` functions validate workflow outputs against the demo's planted truth
(resources/demo/truth.tsv, truth_genes.tsv). Each returns a list of failure messages
(empty = pass) so that tests and the end-to-end check can assert on it and print why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .performance import summarize_performance

# "Mean r near 0": a one-sample t-test of the per-gene r against 0 is not significant
# at this level, or |mean r| is below NULL_MEAN_R. Significant genes are not part of
# the rule: an untrained network still reacts to variants, in random directions, so
# it can reach significance in both directions while averaging to 0.
NULL_TEST_ALPHA = 0.05
NULL_MEAN_R = 0.05

SUMMARY_COLUMNS = [
    "predictor",
    "kind",
    "genes_tested",
    "genes_constant",
    "mean_r",
    "median_r",
    "mean_spearman_r",
    "mean_r_p",
    "n_sig_positive",
    "n_sig_negative",
    "median_supported_fraction",
    "median_ism_eqtl_r",
    "mean_additive_r",
    "cross_gene_spearman_r",
    "cross_gene_pearson_r",
]


def build_summary(
    performance: pd.DataFrame,
    cross_gene: pd.DataFrame,
    concordance: dict[str, pd.DataFrame],
    deep_models: list[str],
    fdr: float = 0.05,
) -> pd.DataFrame:
    """One row per predictor with the headline numbers."""
    s = summarize_performance(performance, fdr=fdr)
    rows = []
    cg = cross_gene.set_index("model") if len(cross_gene) else pd.DataFrame()
    for _, r in s.iterrows():
        name = r["predictor"]
        row = dict(r)
        row["kind"] = "deep" if name in deep_models else "linear"
        c = concordance.get(name)
        row["median_supported_fraction"] = c["supported_fraction"].median() if c is not None else np.nan
        row["median_ism_eqtl_r"] = c["ism_eqtl_r"].median() if c is not None else np.nan
        row["mean_additive_r"] = c["additive_r"].mean() if c is not None else np.nan
        row["cross_gene_spearman_r"] = cg.loc[name, "spearman_r"] if name in cg.index else np.nan
        row["cross_gene_pearson_r"] = cg.loc[name, "pearson_r"] if name in cg.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def is_null_like(row: pd.Series | dict) -> bool:
    """Mean r near 0 across genes (see NULL_TEST_ALPHA / NULL_MEAN_R), or nothing testable
    because the predictions do not vary between individuals."""
    if row["genes_tested"] == 0:
        return row.get("genes_constant", 0) > 0
    if not np.isfinite(row["mean_r"]):
        return False
    p = row.get("mean_r_p", np.nan)
    return bool(abs(row["mean_r"]) < NULL_MEAN_R or (np.isfinite(p) and p >= NULL_TEST_ALPHA))


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}"


def _fmt_p(p) -> str:
    return "–" if p is None or not np.isfinite(p) else f"{p:.2g}"


def render_markdown(summary: pd.DataFrame, cohort: str, fdr: float = 0.05) -> str:
    """summary.md: a table plus one sentence per predictor in the papers' form."""
    lines = [f"# hapexp summary: cohort `{cohort}`", ""]
    lines.append(
        "Cross-individual performance: Pearson r per gene between each predictor and the "
        f"prepared (residualized) expression; significance by Benjamini-Hochberg FDR < {fdr} across genes."
    )
    lines.append("")
    header = [
        "predictor",
        "kind",
        "genes tested",
        "mean r",
        "median r",
        f"sig. + (FDR<{fdr})",
        f"sig. − (FDR<{fdr})",
        "median supported fraction",
        "cross-gene Spearman r",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for _, r in summary.iterrows():
        vals = [
            r["predictor"],
            r["kind"],
            _fmt(int(r["genes_tested"])),
            _fmt(r["mean_r"]),
            _fmt(r["median_r"]),
            _fmt(int(r["n_sig_positive"])),
            _fmt(int(r["n_sig_negative"])),
            _fmt(r["median_supported_fraction"]),
            _fmt(r["cross_gene_spearman_r"]),
        ]
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    lines.append("")
    for _, r in summary.iterrows():
        n_const = int(r.get("genes_constant", 0))
        if r["genes_tested"] == 0:
            lines.append(
                f"- **{r['predictor']}** ({r['kind']}): no gene could be tested: the predictions of all "
                f"{n_const} genes do not vary between individuals beyond numerical precision (float rounding). "
                "The model is insensitive to the cohort's variants here: no better than chance."
            )
            continue
        n_sig = int(r["n_sig_positive"] + r["n_sig_negative"])
        sentence = (
            f"- **{r['predictor']}** ({r['kind']}): of {int(r['genes_tested'])} genes tested, "
            f"{n_sig} are significant at FDR {fdr}: {int(r['n_sig_positive'])} with r > 0 and "
            f"{int(r['n_sig_negative'])} with r < 0 (predicted in the wrong direction); mean r = {_fmt(r['mean_r'])}"
            f" (t-test of mean r against 0: p = {_fmt_p(r['mean_r_p'])})."
        )
        if n_const:
            sentence += (
                f" {n_const} more genes have predictions that do not vary between individuals"
                " (no variant the model responds to) and are not tested."
            )
        if is_null_like(r):
            sentence += (
                " Mean r is near 0: no better than chance on average; the predictor does not explain"
                " expression differences between people here"
            )
            if r["n_sig_positive"] and r["n_sig_negative"]:
                sentence += " (its significant genes go both ways: it reacts to variants but not in the right direction)"
            sentence += "."
        lines.append(sentence)
    deep = summary[summary["kind"] == "deep"]
    linear = summary[summary["kind"] == "linear"]
    if len(deep) and len(linear):
        lines.append("")
        lines.append(
            "Linear vs deep (significant genes, positive/negative): "
            + "; ".join(
                f"{r['predictor']} {int(r['n_sig_positive'])}/{int(r['n_sig_negative'])}"
                for _, r in linear.iterrows()
            )
            + " vs "
            + "; ".join(
                f"{r['predictor']} {int(r['n_sig_positive'])}/{int(r['n_sig_negative'])}"
                for _, r in deep.iterrows()
            )
            + "."
        )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- demo-truth checks
def check_oracle_performance(
    performance: pd.DataFrame,
    truth_genes: pd.DataFrame,
    predictor: str = "oracle",
    min_h2: float = 0.3,
    factor: float = 0.8,
) -> list[str]:
    """Mean per-gene r over genes with h2 >= min_h2 must be >= factor × mean √h2."""
    perf = performance[performance["predictor"] == predictor].set_index("gene_id")
    tg = truth_genes[truth_genes["h2"] >= min_h2].set_index("gene_id")
    genes = [g for g in tg.index if g in perf.index]
    if not genes:
        return [f"no genes with h2 >= {min_h2} found in the performance table of {predictor}"]
    r = perf.loc[genes, "pearson_r"].astype(float).fillna(0.0)
    bound = factor * np.sqrt(tg.loc[genes, "h2"].astype(float))
    if r.mean() < bound.mean():
        return [
            f"{predictor}: mean r {r.mean():.3f} over {len(genes)} genes with h2 >= {min_h2} "
            f"is below {factor} × mean √h2 = {bound.mean():.3f}"
        ]
    return []


def check_ism_signs(ism: pd.DataFrame, truth: pd.DataFrame) -> list[str]:
    """Every causal SNV scored by ISM must carry the sign of its planted effect."""
    snv = truth[(truth["ref"].str.len() == 1) & (truth["alt"].str.len() == 1) & (truth["effect"] != 0)]
    m = snv.merge(ism[["gene_id", "variant_id", "score"]], on=["gene_id", "variant_id"], how="left")
    fails = []
    missing = m[m["score"].isna()]
    if len(missing):
        fails.append(
            f"{len(missing)} causal SNVs have no ISM score: {', '.join(missing['variant_id'].head(5))}"
        )
    bad = m[m["score"].notna() & (np.sign(m["score"]) != np.sign(m["effect"]))]
    for _, b in bad.iterrows():
        fails.append(
            f"{b['gene_id']} {b['variant_id']}: ISM {b['score']:.4g} vs true effect {b['effect']:.4g}"
        )
    return fails


def check_causal_concordance(
    concordance: pd.DataFrame,
    truth_genes: pd.DataFrame,
    min_h2: float = 0.3,
    min_sign_agreement: float = 0.8,
    min_positive_fraction: float = 0.8,
) -> list[str]:
    """On causal genes (n_causal > 0, h2 >= min_h2) the oracle's ISM must agree with the eQTL scan.

    Agreement = the top-|ISM| variants carry the sign of their eQTL slope (median of
    `sign_agree_topk` >= min_sign_agreement) and ISM correlates positively with the
    slope (`ism_eqtl_r` > 0 on >= min_positive_fraction of the genes). The all-variant r
    itself stays moderate even for a perfect model: variants in LD with a causal one
    have eQTL slopes but an ISM of 0.
    """
    causal = truth_genes[(truth_genes["n_causal"] > 0) & (truth_genes["h2"] >= min_h2)]["gene_id"]
    c = concordance[concordance["gene_id"].isin(causal)]
    fails = []
    sign = c["sign_agree_topk"].dropna()
    r = c["ism_eqtl_r"].dropna()
    if sign.empty or r.empty:
        return [f"no ISM–eQTL concordance on the {len(causal)} causal genes with h2 >= {min_h2}"]
    if sign.median() < min_sign_agreement:
        fails.append(
            f"median top-k sign agreement on {len(sign)} causal genes is {sign.median():.2f} < {min_sign_agreement}"
        )
    if (r > 0).mean() < min_positive_fraction:
        fails.append(f"ISM–eQTL slope r > 0 on only {(r > 0).mean():.0%} of {len(r)} causal genes")
    return fails


def check_null_model(
    summary: pd.DataFrame, summary_md: str, predictor: str = "enformer_tiny", fdr: float = 0.05
) -> list[str]:
    """An untrained model: mean r near 0 and summary.md says it is no better than chance."""
    row = summary[summary["predictor"] == predictor]
    if row.empty:
        return [f"{predictor} missing from the summary"]
    row = row.iloc[0]
    fails = []
    if row["genes_tested"] == 0:
        if not is_null_like(row):
            fails.append(f"{predictor}: no gene tested and no constant predictions either")
    elif abs(row["mean_r"]) >= 0.2 or not is_null_like(row):
        fails.append(
            f"{predictor}: mean r {row['mean_r']:.3f} (t-test p {row['mean_r_p']:.2g}) is not near 0"
        )
    line = next((ln for ln in summary_md.splitlines() if f"**{predictor}**" in ln), "")
    if "no better than chance" not in line:
        fails.append(f"summary.md does not say {predictor} is no better than chance")
    return fails


def run(
    perf_path,
    cross_gene_path,
    concordance_paths: dict,
    deep_models: list[str],
    cohort: str,
    fdr: float,
    out_tsv,
    out_md,
    precision_path=None,
):
    """Rule `summary`: summary.tsv and summary.md for one cohort (with the precision
    budget's section when `precision_path`, results/{cohort}/precision.tsv, is given)."""
    from .io import atomic_output, write_tsv

    perf = pd.read_csv(perf_path, sep="\t", dtype={"gene_id": str})
    cg = pd.read_csv(cross_gene_path, sep="\t")
    conc = {m: pd.read_csv(p, sep="\t", dtype={"gene_id": str}) for m, p in concordance_paths.items()}
    summary = build_summary(perf, cg, conc, deep_models, fdr)
    write_tsv(summary, out_tsv)
    md = render_markdown(summary, cohort, fdr)
    if precision_path is not None:
        from .precision import read, summary_lines

        lines = summary_lines(read([precision_path]))
        md = md.rstrip("\n") + "\n\n## Precision budget (precision.tsv)\n\n" + "\n".join(lines) + "\n"
    with atomic_output(out_md) as tmp:
        tmp.write_text(md)
    return summary


def validate_demo(
    results_dir, truth_dir, oracle: str = "oracle", null_model: str | None = "enformer_tiny"
) -> dict[str, list[str]]:
    """Run every demo-truth check on a finished run's outputs.

    `results_dir` = results/{cohort} of the demo; `truth_dir` = resources/demo. Returns
    {check name: failure messages}; all lists empty = the workflow recovered the truth.
    """
    from pathlib import Path

    r, t = Path(results_dir), Path(truth_dir)
    truth = pd.read_csv(t / "truth.tsv", sep="\t", dtype={"gene_id": str})
    truth_genes = pd.read_csv(t / "truth_genes.tsv", sep="\t", dtype={"gene_id": str})
    perf = pd.read_csv(r / "performance.tsv", sep="\t", dtype={"gene_id": str})
    out = {
        "oracle_performance": check_oracle_performance(perf, truth_genes, predictor=oracle),
        "oracle_ism_signs": check_ism_signs(pd.read_parquet(r / "ism" / f"{oracle}.parquet"), truth),
        "oracle_concordance": check_causal_concordance(
            pd.read_csv(r / "concordance" / f"{oracle}.tsv", sep="\t", dtype={"gene_id": str}), truth_genes
        ),
    }
    if null_model:
        summary = pd.read_csv(r / "summary.tsv", sep="\t")
        out["null_model"] = check_null_model(summary, (r / "summary.md").read_text(), predictor=null_model)
    return out
