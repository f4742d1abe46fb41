"""Headline numbers (summary.tsv / summary.md) on a simulated cohort with a known answer
(tests/simulated_cohort.py)."""

import numpy as np
import pandas as pd
import pytest

from hapexp.demo import truth
from hapexp.verdict import headline_words as hw
from hapexp.verdict import mean_r as mr
from hapexp.verdict import paired as pr
from hapexp.verdict import performance as perf
from hapexp.verdict import summary as sm
from tests.simulated_cohort import concordance_table, scanned_cohort


@pytest.fixture(scope="module")
def cohort():
    return scanned_cohort()


def test_summary_reports_the_shared_gene_set(cohort):
    """Headline rows on the genes every predictor tested, BH across them; own-set rows
    secondary; summary.md names the set, its size and the linear-vs-deep line on it."""
    rng = np.random.default_rng(9)
    expr = cohort["expr"]
    tiny = cohort["tiny"].copy()
    tiny.iloc[[1, 6]] = 5.0  # constant for the deep model on two genes: out of the shared set
    linear = cohort["oracle"] + rng.normal(size=expr.shape)
    p = perf.cross_individual(expr, {"oracle": cohort["oracle"], "enformer_tiny": tiny, "elasticnet": linear})
    cg = pd.DataFrame(
        {"model": ["oracle", "enformer_tiny"], "spearman_r": [0.8, 0.1], "pearson_r": [0.7, 0.0]}
    )
    preds = {"oracle": cohort["oracle"], "enformer_tiny": tiny, "elasticnet": linear}
    means = mr.mean_r_table(expr, preds, None, p, 999, 0)
    s = sm.build_summary(
        p, cg, {"oracle": concordance_table(cohort)}, deep_models=["oracle", "enformer_tiny"], mean_r=means
    )
    assert list(s.columns) == sm.SUMMARY_COLUMNS
    shared = s[s.gene_set == "shared"].set_index("predictor")
    own = s[s.gene_set == "own"].set_index("predictor")
    assert (shared["genes_tested"] == 23).all()
    assert own.loc["oracle", "genes_tested"] == 25 and own.loc["enformer_tiny", "genes_tested"] == 23
    assert shared.loc["enformer_tiny", "genes_constant"] == 2
    # BH over the shared set: counts recomputed independently
    from statsmodels.stats.multitest import multipletests

    o = p[(p.predictor == "oracle") & p.in_shared_set]
    q = multipletests(o["pearson_p"], method="fdr_bh")[1]
    assert shared.loc["oracle", "n_sig_positive"] == int(((q < 0.05) & (o["pearson_r"] > 0)).sum())
    assert shared.loc["oracle", "ism_unresolved"] == int(cohort["ism"]["score"].isna().sum())
    assert shared.loc["oracle", "mean_r_method"] == "freedman_lane"
    paired = pr.paired_table(expr, preds, None, p, ["oracle", "enformer_tiny"], ["elasticnet"])
    md = sm.render_markdown(s, "demo", context={"n_samples": 200, "n_covariates": 0}, paired=paired)
    assert "**Shared gene set: 23 genes**" in md
    assert "Linear vs deep on the shared gene set (23 genes; every number on the same 200 individuals" in md
    counts = pr.paired_counts(paired).set_index("deep")
    assert f"oracle > elasticnet on {counts.loc['oracle', 'deep_better']} genes" in md
    assert "## Each predictor on its own genes (secondary)" in md
    assert truth.check_null_model(s, md, "enformer_tiny") == []
    oracle_line = next(ln for ln in md.splitlines() if "**oracle**" in ln)
    assert hw.NO_EVIDENCE not in oracle_line and "Better than chance on average" in oracle_line
    assert truth.check_null_model(s, md.replace(hw.NO_EVIDENCE, "fine"), "enformer_tiny")
    assert truth.check_shared_comparison(p, s) == []


def test_markdown_for_predictions_constant_across_individuals(cohort):
    expr = cohort["expr"].iloc[:10]
    # Rounding-level differences that follow expression: still "constant".
    const = pd.DataFrame(1.0 + 1e-9 * np.sign(expr.to_numpy()), index=expr.index, columns=expr.columns)
    p = perf.cross_individual(expr, {"enformer_tiny": const})
    s = sm.build_summary(p, pd.DataFrame(columns=["model", "spearman_r", "pearson_r"]), {}, ["enformer_tiny"])
    md = sm.render_markdown(s, "demo")
    assert "no gene could be tested" in md and hw.NO_EVIDENCE in md
    assert truth.check_null_model(s, md, "enformer_tiny") == []


def _row(mean_r, p, n_pos=3, n_neg=0):
    return {
        "genes_tested": 500,
        "genes_constant": 0,
        "mean_r": mean_r,
        "mean_r_p": p,
        "n_sig_positive": n_pos,
        "n_sig_negative": n_neg,
    }


def test_wording_follows_the_test_and_the_effect_size_together():
    """Not significant → no evidence (whatever the size); significant and small → better than
    chance but small (the old rule called mean r 0.04 at p = 1e-20 "chance"); significant
    and negative → worse than chance (anti-correlated)."""
    cases = {
        (0.04, 1e-20): ("better_small", "Better than chance, but the effect is small (mean r = 0.040"),
        (0.30, 1e-3): ("better", "Better than chance on average."),
        (0.30, 0.2): ("no_evidence", hw.NO_EVIDENCE),
        (0.01, 0.7): ("no_evidence", hw.NO_EVIDENCE),
        (-0.12, 1e-4): ("worse", "Worse than chance on average: anti-correlated"),
        (-0.02, 1e-4): ("worse_small", "Worse than chance (anti-correlated), but the effect is small"),
        (0.2, np.nan): ("untested", "mean r is not tested"),
    }
    for (r, p), (verdict, words) in cases.items():
        row = _row(r, p)
        assert hw.mean_r_verdict(row) == verdict, (r, p)
        assert words in hw.mean_r_words(row), (r, p)
        assert hw.is_null_like(row) == (verdict == "no_evidence"), (r, p)
    assert "go both ways" in hw.mean_r_words(_row(0.0, 0.5, 4, 5))
    assert "go both ways" in hw.mean_r_words(_row(-0.03, 0.001, 4, 5))
    assert "go both ways" not in hw.mean_r_words(_row(0.3, 0.001, 4, 0))
    assert hw.is_null_like({"genes_tested": 0, "genes_constant": 7, "mean_r": np.nan})


def test_mean_r_p_is_the_permutation_test_not_the_t_test_over_genes(cohort):
    """summary.tsv's mean_r_p comes from mean_r.tsv (permutation of people) with its method;
    without it, mean r is untested rather than t-tested over genes."""
    expr = cohort["expr"]
    preds = {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]}
    p = perf.cross_individual(expr, preds)
    cg = pd.DataFrame(columns=["model", "spearman_r", "pearson_r"])
    means = mr.mean_r_table(expr, preds, None, p, 199, 3)
    s = sm.build_summary(p, cg, {}, ["oracle", "enformer_tiny"], mean_r=means)
    got = s.set_index(["predictor", "gene_set"])
    want = means.set_index(["predictor", "gene_set"])
    for key in want.index:
        assert got.loc[key, "mean_r_p"] == want.loc[key, "mean_r_p"]
        assert got.loc[key, "mean_r_method"] == "freedman_lane"
    bare = sm.build_summary(p, cg, {}, ["oracle", "enformer_tiny"])
    assert bare["mean_r_p"].isna().all() and (bare["mean_r_method"] == "not_tested").all()


def test_finetuned_model_is_not_scored_on_its_training_people_in_the_headline(cohort):
    """A model fine-tuned on the cohort — here one that memorised its training people and
    is constant on two genes — neither appears in the headline tables nor shapes the shared
    gene set; summary.md points to its test-people numbers; the linear-vs-deep line says
    which people its numbers are on."""
    rng = np.random.default_rng(4)
    expr = cohort["expr"]
    test = list(expr.columns[150:])  # the first 150 people: its training people
    ft = expr.copy()
    ft[test] = rng.normal(size=(len(expr), len(test)))
    ft.iloc[[0, 3]] = 2.0
    preds = {
        "oracle": cohort["oracle"],
        "ft": ft,
        "elasticnet": cohort["oracle"] + rng.normal(size=expr.shape),
    }
    p = perf.cross_individual(expr, preds)
    p = perf.add_shared_set(p, exclude=["ft"])
    assert p.loc[p.predictor == "ft", "in_shared_set"].sum() == 0
    assert p.loc[p.predictor == "oracle", "in_shared_set"].sum() == 25  # ft's constant genes stay
    means = mr.mean_r_table(expr, preds, None, p, 199, 0, fitted=("elasticnet",), test_people={"ft": test})
    ft_row = means[means.predictor == "ft"].iloc[0]
    assert ft_row["people"] == "test" and ft_row["n_people"] == 50 and abs(ft_row["mean_r"]) < 0.1
    cg = pd.DataFrame(columns=["model", "spearman_r", "pearson_r"])
    s = sm.build_summary(p, cg, {}, ["oracle", "ft"], mean_r=means, exclude=["ft"])
    assert "ft" not in set(s["predictor"]) and (s.loc[s.gene_set == "shared", "genes_tested"] == 25).all()
    md = sm.render_markdown(s, "demo", context={"n_samples": 200}, held_out=means[means.people == "test"])
    top = md.split("## Each predictor on its own genes")[0]
    assert "**ft** is fine-tuned on this cohort's training people, so it is not in these tables" in top
    assert "on its 50 test people" in top and "| ft |" not in md
    assert "none scored on people it was fitted on" in top and "out-of-fold" in top
