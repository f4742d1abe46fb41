"""The demo-truth checks (hapexp.demo.truth) on a simulated cohort with a known answer.

Every table the checks read is computed here by the workflow's own functions from simulated
genotypes and expression (the eQTL scan, the performance table, ISM–eQTL concordance), so a
check passes only if those computations recover the planted truth — and each test also
shows the check failing on a corrupted input.
"""

import numpy as np
import pandas as pd
import pytest

from hapexp.demo import truth
from hapexp.verdict import performance as perf
from hapexp.verdict import summary as sm
from hapexp.verdict.mean_r import mean_r_table
from tests.simulated_cohort import concordance_table, scanned_cohort


@pytest.fixture(scope="module")
def cohort():
    return scanned_cohort()


def test_oracle_check_passes_on_truth_and_fails_on_noise(cohort):
    p = perf.cross_individual(cohort["expr"], {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]})
    assert truth.check_oracle_performance(p, cohort["truth_genes"]) == []
    fails = truth.check_oracle_performance(p, cohort["truth_genes"], predictor="enformer_tiny")
    assert len(fails) == 1 and "below" in fails[0]


def test_ism_sign_check(cohort):
    planted = cohort["truth"]
    ism = cohort["ism"]
    assert truth.check_ism_signs(ism, planted) == []
    bad = ism.copy()
    i = bad.index[bad["variant_id"] == planted.loc[0, "variant_id"]]
    bad.loc[i, "score"] *= -1
    fails = truth.check_ism_signs(bad, planted)
    assert len(fails) == 1 and planted.loc[0, "variant_id"] in fails[0]
    unresolved = ism.copy()
    unresolved.loc[i, "score"] = np.nan  # an unresolved causal SNV is a failure, not a 0
    assert "no resolved ISM score" in truth.check_ism_signs(unresolved, planted)[0]


def test_causal_concordance_check_on_computed_concordance(cohort):
    """ISM vs the eQTL scan's slopes (both computed): the oracle's ISM agrees; an ISM with
    every sign flipped (a model predicting the wrong direction) fails both criteria."""
    table = concordance_table(cohort)
    assert (table["n_ism_unresolved"] > 0).any()
    assert truth.check_causal_concordance(table, cohort["truth_genes"]) == []
    flipped = concordance_table(cohort, cohort["ism"].assign(score=-cohort["ism"]["score"]))
    fails = truth.check_causal_concordance(flipped, cohort["truth_genes"])
    assert any("sign agreement" in f for f in fails) and any("r > 0" in f for f in fails)


def test_null_gene_check_catches_a_biased_predictor(cohort):
    """On h2 = 0 genes r must centre on 0: the oracle and an untrained model pass; a
    predictor with the old elastic net's fold-intercept leak (predictions = minus the
    held-out fold's mean expression) fails."""
    expr = cohort["expr"]
    p = perf.cross_individual(expr, {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]})
    assert truth.check_null_genes(p, cohort["truth_genes"]) == []
    folds = np.arange(expr.shape[1]) % 5
    leak = expr.copy()
    for k in range(5):
        m = folds == k
        leak.loc[:, m] = -0.25 * expr.loc[:, m].mean(axis=1).to_numpy()[:, None]
    leak += 1e-3 * np.random.default_rng(0).normal(size=leak.shape)
    bad = perf.cross_individual(expr, {"leaky": leak})
    fails = truth.check_null_genes(bad, cohort["truth_genes"])
    assert fails and "h2 = 0" in fails[0]


def test_validate_demo_on_computed_outputs(tmp_path, cohort):
    """validate_demo reads the outputs as the workflow writes them; here they come from the
    workflow's functions on simulated data, so all checks pass only because the truth was
    recovered — and corrupting one output makes its check fail."""
    res, tdir = tmp_path / "results", tmp_path / "truth"
    (res / "ism").mkdir(parents=True)
    (res / "concordance").mkdir()
    tdir.mkdir()
    cohort["truth"].to_csv(tdir / "truth.tsv", sep="\t", index=False)
    cohort["truth_genes"].to_csv(tdir / "truth_genes.tsv", sep="\t", index=False)
    p = perf.cross_individual(cohort["expr"], {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]})
    p.to_csv(res / "performance.tsv", sep="\t", index=False)
    cohort["ism"].to_parquet(res / "ism" / "oracle.parquet")
    conc = concordance_table(cohort)
    conc.to_csv(res / "concordance" / "oracle.tsv", sep="\t", index=False)
    cg = pd.DataFrame({"model": ["oracle"], "spearman_r": [0.9], "pearson_r": [0.9]})
    preds = {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]}
    means = mean_r_table(cohort["expr"], preds, None, p, 999, 0)
    s = sm.build_summary(p, cg, {"oracle": conc}, ["oracle", "enformer_tiny"], mean_r=means)
    s.to_csv(res / "summary.tsv", sep="\t", index=False)
    (res / "summary.md").write_text(sm.render_markdown(s, "demo"))
    out = truth.validate_demo(res, tdir, "oracle", "enformer_tiny")
    assert set(out) == {
        "oracle_performance",
        "oracle_ism_signs",
        "oracle_concordance",
        "null_genes",
        "shared_comparison",
        "null_model",
    }
    assert all(v == [] for v in out.values()), out
    cohort["ism"].assign(score=-cohort["ism"]["score"]).to_parquet(res / "ism" / "oracle.parquet")
    assert len(truth.validate_demo(res, tdir, "oracle", "enformer_tiny")["oracle_ism_signs"]) == len(
        cohort["truth"]
    )
    shuffled = cohort["oracle"].sample(frac=1.0, axis=1, random_state=1)
    shuffled.columns = cohort["oracle"].columns
    perf.cross_individual(cohort["expr"], {"oracle": shuffled, "enformer_tiny": cohort["tiny"]}).to_csv(
        res / "performance.tsv", sep="\t", index=False
    )
    assert truth.validate_demo(res, tdir, "oracle", "enformer_tiny")["oracle_performance"]
