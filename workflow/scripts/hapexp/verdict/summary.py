"""Headline numbers per cohort (summary.tsv / summary.md).

The headline numbers follow the papers' form (Huang et al. 2023, Sasse et al. 2023):
genes tested, mean r, significant positive / negative genes at FDR 0.05, linear vs
deep counts, median supported fraction, cross-gene r. They are computed on the
*shared gene set* — the genes every predictor tested, on the same individuals, with
BH across that set (`hapexp.verdict.performance.add_shared_set`) — so that linear and deep
predictors face the same genes and the same multiple-testing burden (Huang et al.
compare on shared genes). The same numbers on each predictor's own tested genes
(BH within them) are the secondary rows (`gene_set = own`). summary.md says which
set each number is on.

Mean r is tested by permuting people (mean_r.tsv, `hapexp.verdict.mean_r`), and the
wording follows that test and the effect size together (`mean_r_verdict`). Deep vs
linear is also compared gene by gene on the same people (paired.tsv,
`hapexp.verdict.paired`). Models fine-tuned on the cohort are not in the headline tables
(they saw some of these people): a pointer gives their mean r on the test people, and the
split verdict scores them there. Heads appear only in the split verdict.

The demo's planted-truth checks on these outputs are `hapexp.demo.truth`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp.config.schema import defaults
from hapexp.verdict.concordance import ism_headline
from hapexp.verdict.headline_words import (
    METHOD_WORDS,
    NO_EVIDENCE,
    held_out_lines,
    mean_r_words,
    paired_sentence,
    people_words,
)
from hapexp.verdict.headline_words import fmt_number as _fmt
from hapexp.verdict.headline_words import fmt_p as _fmt_p

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "predictor",
    "kind",
    "gene_set",
    "genes_tested",
    "genes_constant",
    "mean_r",
    "median_r",
    "mean_spearman_r",
    "mean_r_p",
    "mean_r_method",
    "n_sig_positive",
    "n_sig_negative",
    "median_supported_fraction",
    "median_ism_eqtl_r",
    "mean_additive_r",
    "ism_scores",
    "ism_unresolved",
    "cross_gene_spearman_r",
    "cross_gene_pearson_r",
]


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
                "n_sig_positive": int((sig & (t["pearson_r"] > 0)).sum()),
                "n_sig_negative": int((sig & (t["pearson_r"] < 0)).sum()),
            }
        )
    return pd.DataFrame(rows)


def build_summary(
    performance: pd.DataFrame,
    cross_gene: pd.DataFrame,
    concordance: dict[str, pd.DataFrame],
    deep_models: list[str],
    fdr: float = 0.05,
    mean_r: pd.DataFrame | None = None,
    exclude=(),
) -> pd.DataFrame:
    """Per predictor two rows: `gene_set = shared` (headline) and `own` (secondary).
    `mean_r`: mean_r.tsv (the permutation p of mean r, on all people; without it mean_r_p
    is NaN: not tested); `exclude`: predictors left out (models fine-tuned on the cohort)."""
    rows = []
    cg = cross_gene.set_index("model") if len(cross_gene) else pd.DataFrame()
    performance = performance[~performance["predictor"].isin(list(exclude))]
    shared = set(performance.loc[performance["in_shared_set"].astype(bool), "gene_id"])
    tests = {}
    if mean_r is not None:
        for _, m in mean_r[mean_r["people"] == "all"].iterrows():
            tests[(m["predictor"], m["gene_set"])] = (m["mean_r_p"], m["method"])
    for gene_set in ("shared", "own"):
        s = summarize_performance(performance, fdr=fdr, gene_set=gene_set)
        for _, r in s.iterrows():
            name = r["predictor"]
            row = dict(r)
            row["kind"] = "deep" if name in deep_models else "linear"
            row["mean_r_p"], row["mean_r_method"] = tests.get((name, gene_set), (np.nan, "not_tested"))
            c = concordance.get(name)
            if c is not None and gene_set == "shared":  # ISM numbers: on the genes tested jointly
                c = c[c["gene_id"].isin(shared)]
            row.update(ism_headline(c))  # ISM–eQTL r on significant pairs (hapexp.verdict.concordance)
            full = concordance.get(name)
            has_counts = full is not None and "n_ism_unresolved" in full
            row["ism_scores"] = int(full["n_ism"].sum()) if has_counts else np.nan
            row["ism_unresolved"] = int(full["n_ism_unresolved"].sum()) if has_counts else np.nan
            row["cross_gene_spearman_r"] = cg.loc[name, "spearman_r"] if name in cg.index else np.nan
            row["cross_gene_pearson_r"] = cg.loc[name, "pearson_r"] if name in cg.index else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _table(rows: pd.DataFrame, fdr: float, ism: bool) -> list[str]:
    header = ["predictor", "kind", "genes tested", "constant", "mean r", "p (mean r)", "median r"]
    header += [f"sig. + (FDR<{fdr})", f"sig. − (FDR<{fdr})"]
    if ism:
        header += ["median supported fraction", "cross-gene Spearman r"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in rows.iterrows():
        vals = [
            r["predictor"],
            r["kind"],
            _fmt(int(r["genes_tested"])),
            _fmt(int(r["genes_constant"])),
            _fmt(r["mean_r"]),
            _fmt_p(r["mean_r_p"]),
            _fmt(r["median_r"]),
            _fmt(int(r["n_sig_positive"])),
            _fmt(int(r["n_sig_negative"])),
        ]
        if ism:
            vals += [_fmt(r["median_supported_fraction"]), _fmt(r["cross_gene_spearman_r"])]
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    return lines


def render_markdown(
    summary: pd.DataFrame,
    cohort: str,
    fdr: float = 0.05,
    context: dict | None = None,
    paired: pd.DataFrame | None = None,
    held_out: pd.DataFrame | None = None,
) -> str:
    """summary.md: the shared-gene-set table and sentences in the papers' form, the
    per-predictor (own gene set) table, and how eQTLs, ISM and variants were handled.
    `paired`: paired.tsv (deep vs linear per gene); `held_out`: mean_r.tsv's rows of the
    models fine-tuned on this cohort (on their test people), named out of the headline.

    `context` (optional): n_samples, n_covariates, residualized, egenes (the summary of
    `hapexp.linear.egenes.egenes` + permutations), variant_policy (validation.json facts) — each stated when given
    (residualized and eqtl_significance: the config's defaults when not given)."""
    ctx = {
        "residualized": defaults("performance")["residualize_predictions"],
        "eqtl_significance": defaults("concordance")["eqtl_significance"],
        **(context or {}),
    }
    shared = summary[summary["gene_set"] == "shared"]
    own = summary[summary["gene_set"] == "own"]
    n_shared = int(shared["genes_tested"].max()) if len(shared) else 0
    lines = [f"# hapexp summary: cohort `{cohort}`", ""]
    people = f"the same {ctx['n_samples']} individuals" if ctx.get("n_samples") else "the same individuals"
    if ctx["residualized"]:
        k = ctx.get("n_covariates", "k")
        resid = (
            f"each predictor's predictions residualized on the same k = {k} covariates as the expression "
            "(user covariates + expression PCs), t-test on n − 2 − k degrees of freedom"
        )
    else:
        resid = "raw predictions against the residualized expression (n − 2 degrees of freedom; the anchors' form)"
    lines.append(
        "Cross-individual performance: Pearson r per gene between each predictor and the prepared "
        f"(residualized) expression, on {people}; {resid}."
    )
    lines.append("")
    own_counts = ", ".join(f"{r['predictor']} {int(r['genes_tested'])}" for _, r in own.iterrows())
    lines.append(
        f"**Shared gene set: {n_shared} genes** — the genes tested by every predictor (genes tested "
        f"per predictor on its own: {own_counts}). Every number in this table, the sentences below and "
        f"the linear-vs-deep line are on this set, with Benjamini-Hochberg FDR < {fdr} across its "
        f"{n_shared} genes. A predictor whose predictions do not vary between individuals at all is "
        "reported as constant and does not shrink the set."
    )
    lines.append("")
    lines += _table(shared, fdr, ism=True)
    lines.append("")
    lines += held_out_lines(held_out)
    for _, r in shared.iterrows():
        n_const = int(r.get("genes_constant", 0))
        if r["genes_tested"] == 0:
            lines.append(
                f"- **{r['predictor']}** ({r['kind']}): no gene could be tested: the predictions of all "
                f"{n_const} genes do not vary between individuals beyond the model's numerical resolution "
                "(float rounding at its precision). The model is insensitive to the cohort's variants here: "
                f"{NO_EVIDENCE}."
            )
            continue
        n_sig = int(r["n_sig_positive"] + r["n_sig_negative"])
        sentence = (
            f"- **{r['predictor']}** ({r['kind']}): of the {int(r['genes_tested'])} shared genes, "
            f"{n_sig} are significant at FDR {fdr}: {int(r['n_sig_positive'])} with r > 0 and "
            f"{int(r['n_sig_negative'])} with r < 0 (predicted in the wrong direction); mean r = {_fmt(r['mean_r'])}"
            + (
                f" (permutation test of mean r, {METHOD_WORDS.get(r['mean_r_method'], r['mean_r_method'])}:"
                f" p = {_fmt_p(r['mean_r_p'])})."
                if np.isfinite(r["mean_r_p"])
                else "."
            )
        )
        if n_const:
            sentence += (
                f" On {n_const} genes its predictions do not vary between individuals beyond numerical resolution"
                " (no variant the model responds to) and are not tested."
            )
        sentence += mean_r_words(r)
        lines.append(sentence)
    deep = shared[shared["kind"] == "deep"]
    linear = shared[shared["kind"] == "linear"]
    if len(deep) and len(linear):
        lines.append("")
        lines.append(
            f"Linear vs deep on the shared gene set ({n_shared} genes; {people_words(ctx, linear)}; "
            "significant genes, positive/negative): "
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
            + paired_sentence(paired, fdr)
        )
    lines += ["", "## Each predictor on its own genes (secondary)", ""]
    lines.append(
        "The genes each predictor could test (non-constant predictions), BH FDR across those genes per "
        "predictor: not comparable between predictors (different genes, different multiple-testing burden)."
    )
    lines.append("")
    lines += _table(own, fdr, ism=False)
    lines += ["", "## eQTLs, ISM and variants", ""]
    eg = ctx.get("egenes")
    if eg:
        lines.append(
            f"- eGenes: {eg['egenes']} of {eg['genes']} genes at Storey q ≤ {eg['fdr']} of the beta-approximated "
            f"permutation p-value ({eg.get('permutations', '?')} permutations per gene; π0 = {eg['pi0']:.3f}, "
            f"{eg['qvalue_method']}). Significant eQTL pairs (ISM concordance, figures): "
            + (
                "each eGene's variants with a nominal p-value below its `pval_nominal_threshold` (GTEx/tensorQTL)."
                if ctx["eqtl_significance"] == "permutation"
                else "Benjamini-Hochberg over all nominal pairs (legacy option `bh_all_pairs`)."
            )
        )
    elif ctx["eqtl_significance"] == "bh_all_pairs":
        lines.append(
            "- Significant eQTL pairs: Benjamini-Hochberg over all nominal pairs (legacy `bh_all_pairs`)."
        )
    ism_rows = own[own["ism_scores"].notna()] if "ism_scores" in own else own.iloc[0:0]
    for _, r in ism_rows.iterrows():
        lines.append(
            f"- ISM {r['predictor']}: {int(r['ism_scores'])} variant scores, {int(r['ism_unresolved'])} unresolved "
            "(alt − ref within the model's numerical resolution: unknown, excluded from every ISM statistic, "
            "not counted as 0). ISM numbers in the shared table are over the shared genes."
        )
    vp = ctx.get("variant_policy")
    if vp:
        lines.append(
            "- Variants: one policy for every predictor (haplotypes, eQTL, elastic net, ISM): "
            + ", ".join(f"{k} = {v}" for k, v in vp.get("policy", {}).items())
            + (
                f"; in the models' windows {vp['records']} variant records (one per ALT allele), {vp['kept']} kept"
                + (
                    " (" + ", ".join(f"{k} {v}" for k, v in vp["skipped"].items()) + ")."
                    if vp.get("skipped")
                    else "."
                )
                if "records" in vp
                else "."
            )
        )
    if ctx.get("predictdb_exclusions") is not None:
        lines.append(
            "- The elastic net (PredictDB's recipe) additionally excludes indels and strand-ambiguous SNPs "
            "(A/T, C/G) before fitting."
            if ctx["predictdb_exclusions"]
            else "- The elastic net uses exactly the policy's variants (elasticnet.predictdb_exclusions: false)."
        )
    lines.append("")
    return "\n".join(lines)


def summary_context(
    params: dict,
    validation_path=None,
    egenes_path=None,
    covariates_path=None,
    prepared_path=None,
) -> dict:
    """What summary.md states besides the numbers (see render_markdown). `params`: rule
    summary's `context` (residualize, eqtl_significance, predictdb_exclusions and
    permutations from the validated config); `egenes_path`: eqtl/egenes.json (rule gather_eqtl)."""
    import json
    from pathlib import Path

    ctx = {
        "residualized": bool(params["residualize"]),
        "eqtl_significance": params["eqtl_significance"],
        "predictdb_exclusions": params["predictdb_exclusions"],
    }
    if prepared_path:
        with open(prepared_path) as fh:
            ctx["n_samples"] = len(fh.readline().rstrip("\n").split("\t")) - 1
    if covariates_path:
        with open(covariates_path) as fh:
            ctx["n_covariates"] = max(sum(1 for _ in fh) - 1, 0)
    if egenes_path:
        eg = json.loads(Path(egenes_path).read_text())
        if eg:
            eg["permutations"] = params["permutations"]
            ctx["egenes"] = eg
    if validation_path:
        facts = json.loads(Path(validation_path).read_text()).get("facts", {})
        if "variant_policy" in facts:
            ctx["variant_policy"] = facts["variant_policy"]
    return ctx


def run_summary(
    performance,
    cross_gene,
    mean_r,
    paired,
    concordance,
    validation,
    egenes,
    covariates,
    prepared,
    precision,
    split_verdict,
    individuals,
    genes_split,
    tsv,
    md,
    models: list[str],
    cohort: str,
    fdr: float,
    context: dict,
    finetuned: dict,
    finetune_init: dict,
    stated: dict | None = None,
    null_check=None,
    causal_headline=None,
    causal_section=None,
):
    """Rule `summary`: summary.tsv (`tsv`) and summary.md (`md`) for one cohort, from its
    `performance`, `cross_gene`, `mean_r` and `paired` tables and each of `models'`
    `concordance` table; with
    the precision budget (`precision`), the verdict on the splits (`split_verdict`,
    `individuals`, `genes_split`) and what summary.md states besides the numbers
    (`summary_context`: `context` params, `validation`, `egenes`, `covariates`, `prepared`).
    `finetuned`: fine-tuned model → the cohort it was trained on, `finetune_init`: → the
    model it started from (the ISM/eQTL concordance before and after). `stated`: what the
    sections of other modules state (split-aware preparation, PredictDB's rules).
    `null_check`: the permuted-expression check's table (null_check.tsv; none when the check
    is off)."""
    from hapexp.engine.precision import read, summary_lines
    from hapexp.io import atomic_output, write_tsv
    from hapexp.linear.predictdb import predictdb_lines
    from hapexp.training.splits import read_splits, splits_lines
    from hapexp.variants.genotype_pcs import genotype_pcs_lines
    from hapexp.verdict.split_verdict import concordance_before_after, concordance_markdown, markdown

    ctx = summary_context(context, validation, egenes, covariates, prepared)
    # `cohort`: the unit (a cohort, or cohort/tissue); a model fine-tuned on any tissue of
    # the cohort saw these people's genomes (and its tissue's expression): out of the headline
    trained = [m for m, c in finetuned.items() if c.partition("/")[0] == cohort.partition("/")[0]]
    finetune_starts = {m: finetune_init.get(m) for m in trained}
    perf = pd.read_csv(performance, sep="\t", dtype={"gene_id": str})
    cg = pd.read_csv(cross_gene, sep="\t")
    conc = {
        m: pd.read_csv(p, sep="\t", dtype={"gene_id": str}) for m, p in zip(models, concordance, strict=True)
    }
    mr = pd.read_csv(mean_r, sep="\t")
    pairs = pd.read_csv(paired, sep="\t", dtype={"gene_id": str})
    summary = build_summary(perf, cg, conc, models, fdr, mean_r=mr, exclude=trained)
    if causal_headline:  # the causal-variant benchmark's columns per predictor (hapexp.verdict.causal)
        summary = summary.merge(pd.read_csv(causal_headline, sep="\t"), on="predictor", how="left")
    write_tsv(summary, tsv)
    held_out = mr[mr["predictor"].isin(trained) & (mr["people"] == "test")]
    text = render_markdown(summary, cohort, fdr, ctx, paired=pairs, held_out=held_out)
    lines = summary_lines(read([precision]))
    text = text.rstrip("\n") + "\n\n## Precision budget (precision.tsv)\n\n" + "\n".join(lines) + "\n"
    verdict = pd.read_csv(split_verdict, sep="\t")
    people, gene_split = read_splits(individuals, genes_split)
    if "/" in cohort:  # one tissue of several: the cohort's split, this tissue's people
        have = set(pd.read_csv(prepared, sep="\t", index_col=0, nrows=0).columns)
        people = {k: [s for s in v if s in have] for k, v in people.items()}
    # a model fine-tuned on another tissue of the cohort: say which (its transfer is judged here)
    labels = [
        m if finetuned[m] == cohort
        else f"{m} (on {finetuned[m]}'s expression)" if "/" in finetuned[m]
        else f"{m} (on every tissue's expression)"
        for m in trained
    ]  # fmt: skip
    text = text.rstrip("\n") + "\n\n" + "\n".join(markdown(verdict, people, labels))
    if finetune_starts:
        table = concordance_before_after(conc, finetune_starts, gene_split)
        text = text.rstrip("\n") + "\n\n" + "\n".join(concordance_markdown(table, finetune_starts))
    if stated is not None:  # part E's sections: split-aware preparation and gene split; PredictDB's rules
        for section in (splits_lines(people, genes_split, stated), predictdb_lines(stated)):
            text = text.rstrip("\n") + "\n\n" + "\n".join(section) if section else text
    text = text.rstrip("\n") + "\n\n" + "\n".join(genotype_pcs_lines(covariates)) + "\n"
    if null_check:
        from hapexp.verdict.null_check import null_check_lines

        judged = list(dict.fromkeys([*perf["predictor"], *verdict["predictor"]]))
        text = text.rstrip("\n") + "\n\n" + "\n".join(null_check_lines(null_check, fdr, judged)) + "\n"
    if causal_section:  # its section, written by rule causal_benchmark
        with open(causal_section) as fh:
            text = text.rstrip("\n") + "\n\n" + fh.read()
    with atomic_output(md) as tmp:
        tmp.write_text(text)
    log.info("summary:\n%s", summary.to_string())
    return summary
