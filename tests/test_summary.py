"""Headline numbers (summary.tsv / summary.md) on a simulated cohort with a known answer
(tests/simulated_cohort.py)."""

import numpy as np
import pandas as pd
import pytest

from hapexp.demo import truth
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
    s = sm.build_summary(
        p, cg, {"oracle": concordance_table(cohort)}, deep_models=["oracle", "enformer_tiny"]
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
    md = sm.render_markdown(s, "demo", context={"n_samples": 200, "n_covariates": 0})
    assert "**Shared gene set: 23 genes**" in md
    assert "Linear vs deep on the shared gene set (23 genes, same individuals" in md
    assert "## Each predictor on its own genes (secondary)" in md
    assert truth.check_null_model(s, md, "enformer_tiny") == []
    oracle_line = next(ln for ln in md.splitlines() if "**oracle**" in ln)
    assert "no better than chance" not in oracle_line
    assert truth.check_null_model(s, md.replace("no better than chance", "fine"), "enformer_tiny")
    assert truth.check_shared_comparison(p, s) == []


def test_markdown_for_predictions_constant_across_individuals(cohort):
    expr = cohort["expr"].iloc[:10]
    # Rounding-level differences that follow expression: still "constant".
    const = pd.DataFrame(1.0 + 1e-9 * np.sign(expr.to_numpy()), index=expr.index, columns=expr.columns)
    p = perf.cross_individual(expr, {"enformer_tiny": const})
    s = sm.build_summary(p, pd.DataFrame(columns=["model", "spearman_r", "pearson_r"]), {}, ["enformer_tiny"])
    md = sm.render_markdown(s, "demo")
    assert "no gene could be tested" in md and "no better than chance" in md
    assert truth.check_null_model(s, md, "enformer_tiny") == []
