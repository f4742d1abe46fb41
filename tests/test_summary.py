"""Headline numbers and the demo-truth checks (run here on simulated data with a known answer)."""

import numpy as np
import pandas as pd

from hapexp import performance as perf
from hapexp import summary as sm


def _simulated_cohort(seed=0, n_genes=24, n_samples=200):
    """Demo-like truth: per gene, causal SNVs with planted effects and a target h2.

    Expression = genetic value + noise scaled to h2; the oracle predicts the genetic
    value exactly, an untrained model predicts a random function of the genotypes.
    """
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(n_samples)]
    truth, genes_rows, expr, oracle, tiny = [], [], {}, {}, {}
    for g in range(n_genes):
        gid = f"G{g:02d}"
        h2 = [0.0, 0.1, 0.3, 0.5, 0.8][g % 5]
        n_causal = 0 if h2 == 0 else 2
        dos = rng.binomial(2, 0.3, size=(6, n_samples)).astype(float)
        effects = np.zeros(6)
        if n_causal:
            effects[:2] = rng.choice([-1, 1], 2) * rng.uniform(0.5, 1.0, 2)
        genetic = effects @ dos
        gv = genetic.var()
        noise_var = gv * (1 - h2) / h2 if h2 > 0 else 1.0
        expr[gid] = genetic + rng.normal(scale=np.sqrt(noise_var), size=n_samples)
        oracle[gid] = genetic if h2 > 0 else rng.normal(size=n_samples) * 0 + 1.0
        tiny[gid] = rng.normal(size=6) @ dos
        for v in range(n_causal):
            truth.append((gid, f"{gid}_v{v}", "chr1", 100 + v, "A", "G", effects[v], h2))
        genes_rows.append((gid, h2, n_causal, gv, noise_var, 0.0))
    truth = pd.DataFrame(
        truth, columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "effect", "h2"]
    )
    truth_genes = pd.DataFrame(
        genes_rows, columns=["gene_id", "h2", "n_causal", "genetic_var", "noise_var", "ref_readout"]
    )
    mk = lambda d: pd.DataFrame(d, index=samples).T  # noqa: E731
    return truth, truth_genes, mk(expr), mk(oracle), mk(tiny)


def test_oracle_check_passes_on_truth_and_fails_on_noise():
    truth, truth_genes, expr, oracle, tiny = _simulated_cohort()
    p = perf.cross_individual(expr, {"oracle": oracle, "enformer_tiny": tiny})
    assert sm.check_oracle_performance(p, truth_genes) == []
    fails = sm.check_oracle_performance(p, truth_genes, predictor="enformer_tiny")
    assert len(fails) == 1 and "below" in fails[0]


def test_ism_sign_check():
    truth, *_ = _simulated_cohort()
    ism = truth.assign(score=truth["effect"] * 0.7)[["gene_id", "variant_id", "score"]]
    assert sm.check_ism_signs(ism, truth) == []
    bad = ism.copy()
    bad.loc[0, "score"] *= -1
    fails = sm.check_ism_signs(bad, truth)
    assert len(fails) == 1 and truth.loc[0, "variant_id"] in fails[0]
    assert "no ISM score" in sm.check_ism_signs(ism.iloc[1:], truth)[0]


def test_causal_concordance_check():
    _, truth_genes, *_ = _simulated_cohort()
    conc = truth_genes[["gene_id"]].assign(ism_eqtl_r=0.4, sign_agree_topk=1.0)
    assert sm.check_causal_concordance(conc, truth_genes) == []
    assert "sign agreement" in sm.check_causal_concordance(conc.assign(sign_agree_topk=0.5), truth_genes)[0]
    assert "r > 0" in sm.check_causal_concordance(conc.assign(ism_eqtl_r=-0.1), truth_genes)[0]
    # Non-causal genes do not count.
    assert (
        "no ISM"
        in sm.check_causal_concordance(
            conc[conc.gene_id.isin(truth_genes[truth_genes.n_causal == 0].gene_id)], truth_genes
        )[0]
    )


def test_summary_and_markdown_say_null_model_is_chance():
    truth, truth_genes, expr, oracle, tiny = _simulated_cohort(seed=1, n_genes=40)
    rng = np.random.default_rng(9)
    pure_noise = pd.DataFrame(rng.normal(size=expr.shape), index=expr.index, columns=expr.columns)
    p = perf.cross_individual(
        expr,
        {"oracle": oracle, "enformer_tiny": pure_noise, "elasticnet": oracle + rng.normal(size=oracle.shape)},
    )
    cg = pd.DataFrame(
        {"model": ["oracle", "enformer_tiny"], "spearman_r": [0.8, 0.1], "pearson_r": [0.7, 0.0]}
    )
    conc = {
        "oracle": pd.DataFrame(
            {"gene_id": ["G00"], "supported_fraction": [0.6], "ism_eqtl_r": [0.9], "additive_r": [1.0]}
        )
    }
    s = sm.build_summary(p, cg, conc, deep_models=["oracle", "enformer_tiny"])
    assert list(s.columns) == sm.SUMMARY_COLUMNS
    row = s.set_index("predictor")
    expected_tested = int(np.isfinite(p[p.predictor == "oracle"]["pearson_r"]).sum())
    assert row.loc["oracle", "genes_tested"] == expected_tested
    assert row.loc["oracle", "mean_r"] > 0.4
    assert row.loc["oracle", "n_sig_positive"] >= 16 and row.loc["oracle", "n_sig_negative"] == 0
    assert row.loc["elasticnet", "kind"] == "linear" and row.loc["oracle", "kind"] == "deep"
    assert row.loc["oracle", "median_supported_fraction"] == 0.6
    assert row.loc["oracle", "cross_gene_spearman_r"] == 0.8
    md = sm.render_markdown(s, "demo")
    assert "| oracle | deep |" in md
    assert sm.check_null_model(s, md) == []
    oracle_line = next(ln for ln in md.splitlines() if "**oracle**" in ln)
    assert "no better than chance" not in oracle_line
    assert "Linear vs deep" in md
    # The check notices a summary that does not say it.
    assert sm.check_null_model(s, md.replace("no better than chance", "fine"))


def test_validate_demo_reads_workflow_outputs(tmp_path):
    truth, truth_genes, expr, oracle, tiny = _simulated_cohort(seed=2, n_genes=30)
    rng = np.random.default_rng(3)
    noise = pd.DataFrame(rng.normal(size=expr.shape), index=expr.index, columns=expr.columns)
    res, tdir = tmp_path / "results", tmp_path / "truth"
    (res / "ism").mkdir(parents=True)
    (res / "concordance").mkdir()
    tdir.mkdir()
    truth.to_csv(tdir / "truth.tsv", sep="\t", index=False)
    truth_genes.to_csv(tdir / "truth_genes.tsv", sep="\t", index=False)
    p = perf.cross_individual(expr, {"oracle": oracle, "enformer_tiny": noise})
    p.to_csv(res / "performance.tsv", sep="\t", index=False)
    ism = truth.assign(score=truth["effect"])[["gene_id", "variant_id", "score"]]
    ism.to_parquet(res / "ism" / "oracle.parquet")
    conc = truth_genes[["gene_id"]].assign(ism_eqtl_r=0.5, sign_agree_topk=1.0)
    conc.to_csv(res / "concordance" / "oracle.tsv", sep="\t", index=False)
    cg = pd.DataFrame({"model": ["oracle"], "spearman_r": [0.9], "pearson_r": [0.9]})
    s = sm.build_summary(p, cg, {}, ["oracle", "enformer_tiny"])
    s.to_csv(res / "summary.tsv", sep="\t", index=False)
    (res / "summary.md").write_text(sm.render_markdown(s, "demo"))
    out = sm.validate_demo(res, tdir)
    assert set(out) == {"oracle_performance", "oracle_ism_signs", "oracle_concordance", "null_model"}
    assert all(v == [] for v in out.values()), out
    ism.assign(score=-ism["score"]).to_parquet(res / "ism" / "oracle.parquet")
    assert len(sm.validate_demo(res, tdir)["oracle_ism_signs"]) == len(truth)


def test_markdown_for_predictions_constant_across_individuals():
    _, _, expr, _, _ = _simulated_cohort(seed=4, n_genes=10)
    # Rounding-level differences that follow expression: still "constant".
    const = pd.DataFrame(1.0 + 1e-9 * np.sign(expr.to_numpy()), index=expr.index, columns=expr.columns)
    p = perf.cross_individual(expr, {"enformer_tiny": const})
    s = sm.build_summary(p, pd.DataFrame(columns=["model", "spearman_r", "pearson_r"]), {}, ["enformer_tiny"])
    md = sm.render_markdown(s, "demo")
    assert "no gene could be tested" in md and "no better than chance" in md
    assert sm.check_null_model(s, md) == []
