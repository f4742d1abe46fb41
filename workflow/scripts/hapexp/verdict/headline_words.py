"""The headline's words (summary.md, `hapexp.verdict.summary.render_markdown`): what the
test of mean r and its size say together, which people the linear-vs-deep numbers are
on, the paired comparison, and the pointer for models fine-tuned on the cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The wording of mean r (`mean_r_verdict`): the permutation test of mean r (mean_r.tsv)
# at NULL_TEST_ALPHA decides whether there is evidence of a difference from chance; the
# effect size |mean r| < SMALL_MEAN_R qualifies a significant one as small. Significant
# genes are not part of the rule: an untrained network still reacts to variants, in
# random directions, so it can reach significance in both directions while averaging to 0.
NULL_TEST_ALPHA = 0.05
SMALL_MEAN_R = 0.05
# What summary.md says of a predictor with no evidence of doing better than chance.
NO_EVIDENCE = "no evidence that it does better than chance"


def mean_r_verdict(row: pd.Series | dict) -> str:
    """What the test of mean r and its size say together: `constant` (nothing testable:
    the predictions do not vary between individuals), `untested` (no p-value), `no_evidence`
    (p >= NULL_TEST_ALPHA, whatever the size), `better` / `worse` (significant, mean r > 0 /
    < 0), `better_small` / `worse_small` (significant, |mean r| < SMALL_MEAN_R)."""
    if row["genes_tested"] == 0:
        return "constant" if row.get("genes_constant", 0) > 0 else "untested"
    p, r = row.get("mean_r_p", np.nan), row["mean_r"]
    if not (np.isfinite(r) and p is not None and np.isfinite(p)):
        return "untested"
    if p >= NULL_TEST_ALPHA:
        return "no_evidence"
    return ("better" if r > 0 else "worse") + ("_small" if abs(r) < SMALL_MEAN_R else "")


def is_null_like(row: pd.Series | dict) -> bool:
    """No evidence that the predictor does better than chance: its mean r is not
    significant (`mean_r_verdict`), or nothing is testable because its predictions do not
    vary between individuals. A significant mean r, however small, is not chance."""
    return mean_r_verdict(row) in ("constant", "no_evidence")


def mean_r_words(row: pd.Series | dict) -> str:
    """The summary.md sentence on mean r (`mean_r_verdict`), empty for `constant`."""
    verdict = mean_r_verdict(row)
    size = f"mean r = {fmt_number(row['mean_r'])}"
    if verdict == "untested":
        return (
            " Its mean r is not tested here ("
            + UNTESTED_WHY.get(row.get("mean_r_method"), "no valid test")
            + ")."
        )
    both = bool(row["n_sig_positive"] and row["n_sig_negative"])
    if verdict == "no_evidence":
        text = (
            f" The test of mean r is not significant: {NO_EVIDENCE} on average; the predictor does not"
            " explain expression differences between people here"
        )
        if both:
            text += (
                " (its significant genes go both ways: it reacts to variants but not in the right direction)"
            )
        return text + "."
    text = {
        "better": " Better than chance on average.",
        "better_small": f" Better than chance, but the effect is small ({size}, below {SMALL_MEAN_R}).",
        "worse": " Worse than chance on average: anti-correlated with expression.",
        "worse_small": (
            f" Worse than chance (anti-correlated), but the effect is small ({size}, above −{SMALL_MEAN_R})."
        ),
    }.get(verdict, "")
    if text and both:
        text += (
            " Its significant genes go both ways: it reacts to variants, and on these genes its directions do"
            " not cancel out."
        )
    return text


UNTESTED_WHY = {
    "not_tested": (
        "a predictor fitted on this cohort is tested on an outer fold it never saw; its fold labels were not given"
    ),
    "not_tested_per_gene_folds": (
        "fitted on this cohort with outer folds drawn per gene: no permutation of people stays within every"
        " gene's held-out fold and is common to all genes, so the correlation between genes could not be kept"
    ),
}
METHOD_WORDS = {
    "freedman_lane": "people permuted, one permutation for all genes",
    "freedman_lane_one_outer_fold": "on one outer fold's people the model never saw, permuted among them",
}


def fmt_number(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}"


def fmt_p(p) -> str:
    return "–" if p is None or not np.isfinite(p) else f"{p:.2g}"


def people_words(ctx: dict, linear: pd.DataFrame) -> str:
    """Which people the linear-vs-deep numbers are on (ctx: n_samples, as render_markdown's)."""
    n = ctx.get("n_samples")
    text = f"every number on the same {n} individuals" if n else "every number on the same individuals"
    text += " for every predictor, none scored on people it was fitted on"
    if "elasticnet" in set(linear["predictor"]):
        text += (
            " (the elastic net's predictions are out-of-fold: each person's from a model fitted without them,"
            " and its p-values come from within its held-out outer folds)"
        )
    return text


def paired_sentence(paired: pd.DataFrame | None, fdr: float) -> str:
    """The paired comparison (paired.tsv) in words: per (deep, linear), genes where one
    predictor's r is higher than the other's, gene by gene, on the same people."""
    from hapexp.verdict.paired import paired_counts

    if paired is None or not len(paired):
        return ""
    parts = [
        f"{c['deep']} > {c['linear']} on {_genes(c['deep_better'])}, {c['linear']} > {c['deep']} on "
        f"{_genes(c['linear_better'])} (of {c['genes']})"
        for _, c in paired_counts(paired, fdr).iterrows()
    ]
    return (
        " Paired, gene by gene on the same people (Williams' t of the two correlations with expression, "
        f"on the covariate-residualized vectors; BH FDR < {fdr} across the shared genes; paired.tsv): "
        + "; ".join(parts)
        + "."
    )


def _genes(n) -> str:
    return f"{int(n)} gene" + ("" if int(n) == 1 else "s")


def held_out_lines(held_out: pd.DataFrame | None) -> list[str]:
    """Models fine-tuned on this cohort: not in the headline; their mean r on the test people."""
    if held_out is None or not len(held_out):
        return []
    lines = []
    for _, m in held_out.iterrows():
        test = (
            f"on its {int(m['n_people'])} test people (never seen in training), mean r = {fmt_number(m['mean_r'])} over "
            f"{int(m['n_genes'])} genes (permutation test: p = {fmt_p(m['mean_r_p'])})"
        )
        lines.append(
            f"- **{m['predictor']}** is fine-tuned on this cohort's training people, so it is not in these tables "
            f"(it would be scored on people it was trained on, and would shape the shared gene set): {test}; "
            'by gene split under "Verdict on the splits (held-out people)" below.'
        )
    return lines + [""]
