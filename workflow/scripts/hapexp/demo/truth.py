"""The demo's planted truth checked against a finished run's outputs.

The `check_*` functions validate workflow outputs against the demo's planted truth
(resources/demo/truth.tsv, truth_genes.tsv, written by the demo simulation in `hapexp.demo`). Each
returns a list of failure messages (empty = pass) so that tests and the end-to-end check
can assert on it and print why; `validate_demo` runs them all on a results directory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp.verdict.headline_words import NO_EVIDENCE, is_null_like


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
            f"{len(missing)} causal SNVs have no resolved ISM score: {', '.join(missing['variant_id'].head(5))}"
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


def check_null_model(summary: pd.DataFrame, summary_md: str, predictor: str) -> list[str]:
    """An untrained model (`predictor`, the demo config's): mean r near 0 (shared gene
    set), not significant by its permutation test, and summary.md says there is no
    evidence that it does better than chance."""
    if "gene_set" in summary:
        summary = summary[summary["gene_set"] == "shared"]
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
            f"{predictor}: mean r {row['mean_r']:.3f} (permutation p {row['mean_r_p']:.2g}) is not near 0"
        )
    line = next((ln for ln in summary_md.splitlines() if f"**{predictor}**" in ln), "")
    if NO_EVIDENCE not in line:
        fails.append(f"summary.md does not say: {predictor}: {NO_EVIDENCE}")
    return fails


def check_null_genes(performance: pd.DataFrame, truth_genes: pd.DataFrame, fdr: float = 0.05) -> list[str]:
    """On the genes with h2 = 0 every predictor's r must be centred on 0: |mean r| within
    3 standard errors of a null mean (1/sqrt(n·k) for k genes of n people) and at most
    one of them BH-significant on the shared set (k of a few genes: no more is chance)."""
    null = set(truth_genes.loc[truth_genes["h2"] == 0, "gene_id"])
    fails = []
    for name, d in performance.groupby("predictor", sort=False):
        t = d[d["gene_id"].isin(null) & np.isfinite(d["pearson_r"].astype(float))]
        if t.empty:
            continue
        bound = 3.0 / np.sqrt(float(t["n"].median()) * len(t))
        if abs(t["pearson_r"].mean()) > bound:
            fails.append(
                f"{name}: mean r {t['pearson_r'].mean():.3f} over {len(t)} genes with h2 = 0 is outside ±{bound:.3f}"
            )
        col = "fdr_shared" if "fdr_shared" in t else "fdr"
        if (t[col].astype(float) < fdr).sum() > 1:
            fails.append(
                f"{name}: {(t[col].astype(float) < fdr).sum()} of {len(t)} genes with h2 = 0 significant"
            )
    return fails


def check_shared_comparison(performance: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The headline rows are on one gene set and one set of individuals for every predictor."""
    fails = []
    shared = summary[summary["gene_set"] == "shared"]
    tested = shared.loc[shared["genes_tested"] > 0, "genes_tested"]
    if tested.nunique() > 1:
        fails.append(
            f"shared rows cover different numbers of genes: {dict(zip(shared.predictor, shared.genes_tested, strict=True))}"
        )
    in_set = performance.loc[performance["in_shared_set"].astype(bool), "gene_id"].nunique()
    if len(tested) and int(tested.iloc[0]) != in_set:
        fails.append("shared rows do not cover the shared gene set")
    tested_rows = performance[np.isfinite(performance["pearson_r"].astype(float))]
    if tested_rows["n"].nunique() > 1:
        fails.append(
            f"predictors compared on different numbers of individuals: {sorted(tested_rows['n'].unique())}"
        )
    return fails


def validate_demo(results_dir, truth_dir, oracle: str, null_model: str | None) -> dict[str, list[str]]:
    """Run every demo-truth check on a finished run's outputs.

    `results_dir` = results/{cohort} of the demo; `truth_dir` = resources/demo; `oracle`,
    `null_model`: the names of the demo config's oracle and untrained model (None: no null
    model check). Returns {check name: failure messages}; all lists empty = the workflow
    recovered the truth.
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
    summary = pd.read_csv(r / "summary.tsv", sep="\t")
    out["null_genes"] = check_null_genes(perf, truth_genes)
    out["shared_comparison"] = check_shared_comparison(perf, summary)
    if null_model:
        out["null_model"] = check_null_model(summary, (r / "summary.md").read_text(), predictor=null_model)
    return out
