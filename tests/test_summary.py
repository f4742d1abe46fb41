"""Headline numbers and the demo-truth checks, on a simulated cohort with a known answer.

Every table the checks read is computed here by the workflow's own functions from simulated
genotypes and expression (the eQTL scan, the performance table, ISM–eQTL concordance), so a
check passes only if those computations recover the planted truth — and each test also
shows the check failing on a corrupted input.
"""

import numpy as np
import pandas as pd
import pytest

from hapexp.linear.eqtl import scan_genes
from hapexp.variants.genotypes import Dosages
from hapexp.verdict import concordance as cc
from hapexp.verdict import performance as perf
from hapexp.verdict import summary as sm

N_VAR = 8


def _simulated_cohort(seed=0, n_genes=25, n_samples=200):
    """Per gene 8 variants, the first two causal (planted effects) unless h2 = 0; expression
    = genetic value + noise scaled to h2. The oracle predicts the genetic value, an untrained
    model a random linear function of the same genotypes. The oracle's ISM is each variant's
    effect (non-causal variants: a tiny motif-free effect, some below resolution = NaN)."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(n_samples)]
    truth, genes_rows, expr, oracle, tiny, ism_rows, dos_rows, gene_rows = [], [], {}, {}, {}, [], [], []
    for g in range(n_genes):
        gid = f"G{g:02d}"
        h2 = [0.0, 0.1, 0.3, 0.5, 0.8][g % 5]
        dos = rng.binomial(2, rng.uniform(0.15, 0.5, N_VAR)[:, None], size=(N_VAR, n_samples)).astype(float)
        effects = np.zeros(N_VAR)
        if h2 > 0:
            effects[:2] = rng.choice([-1, 1], 2) * rng.uniform(0.5, 1.0, 2)
        genetic = effects @ dos
        gv = genetic.var()
        noise_var = gv * (1 - h2) / h2 if h2 > 0 else 1.0
        expr[gid] = genetic + rng.normal(scale=np.sqrt(noise_var), size=n_samples)
        oracle[gid] = genetic if h2 > 0 else 1e-3 * rng.normal(size=N_VAR) @ dos
        tiny[gid] = rng.normal(size=N_VAR) @ dos
        base = 10_000 * (g + 1)
        for v in range(N_VAR):
            vid = f"chr1_{base + 10 * v}_A_G"
            if effects[v]:
                truth.append((gid, vid, "chr1", base + 10 * v, "A", "G", effects[v], h2))
            score = effects[v] if effects[v] else (np.nan if v % 3 == 0 else 1e-3 * rng.normal())
            ism_rows.append((gid, vid, "chr1", base + 10 * v, "A", "G", 0.3, 10 * v, score))
            dos_rows.append((vid, base + 10 * v, dos[v]))
        gene_rows.append((gid, gid, "chr1", base, "+", base - 1, base + 10 * N_VAR))
        genes_rows.append((gid, h2, 2 if h2 > 0 else 0, gv, noise_var, 0.0))
    truth = pd.DataFrame(
        truth, columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "effect", "h2"]
    )
    truth_genes = pd.DataFrame(
        genes_rows, columns=["gene_id", "h2", "n_causal", "genetic_var", "noise_var", "ref_readout"]
    )
    ism = pd.DataFrame(
        ism_rows,
        columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"],
    )
    d = Dosages(
        np.array([r[0] for r in dos_rows], dtype=object),
        np.array(["chr1"] * len(dos_rows), dtype=object),
        np.array([r[1] for r in dos_rows]),
        np.array(["A"] * len(dos_rows), dtype=object),
        np.array(["G"] * len(dos_rows), dtype=object),
        np.vstack([r[2] for r in dos_rows]),
        samples,
    )
    genes = pd.DataFrame(gene_rows, columns=["gene_id", "name", "chrom", "tss", "strand", "start0", "end0"])
    mk = lambda d_: pd.DataFrame(d_, index=samples).T  # noqa: E731
    return {
        "truth": truth,
        "truth_genes": truth_genes,
        "expr": mk(expr),
        "oracle": mk(oracle),
        "tiny": mk(tiny),
        "ism": ism,
        "dosages": d,
        "genes": genes,
    }


@pytest.fixture(scope="module")
def cohort():
    c = _simulated_cohort()
    c["nominal"], _ = scan_genes(c["dosages"], c["genes"], c["expr"], None)
    return c


def _concordance(c, ism=None):
    table, _ = cc.concordance(
        c["ism"] if ism is None else ism, c["nominal"], {"top_k": 3, "eqtl_significance": "bh_all_pairs"}
    )
    return table


def test_oracle_check_passes_on_truth_and_fails_on_noise(cohort):
    p = perf.cross_individual(cohort["expr"], {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]})
    assert sm.check_oracle_performance(p, cohort["truth_genes"]) == []
    fails = sm.check_oracle_performance(p, cohort["truth_genes"], predictor="enformer_tiny")
    assert len(fails) == 1 and "below" in fails[0]


def test_ism_sign_check(cohort):
    truth = cohort["truth"]
    ism = cohort["ism"]
    assert sm.check_ism_signs(ism, truth) == []
    bad = ism.copy()
    i = bad.index[bad["variant_id"] == truth.loc[0, "variant_id"]]
    bad.loc[i, "score"] *= -1
    fails = sm.check_ism_signs(bad, truth)
    assert len(fails) == 1 and truth.loc[0, "variant_id"] in fails[0]
    unresolved = ism.copy()
    unresolved.loc[i, "score"] = np.nan  # an unresolved causal SNV is a failure, not a 0
    assert "no resolved ISM score" in sm.check_ism_signs(unresolved, truth)[0]


def test_causal_concordance_check_on_computed_concordance(cohort):
    """ISM vs the eQTL scan's slopes (both computed): the oracle's ISM agrees; an ISM with
    every sign flipped (a model predicting the wrong direction) fails both criteria."""
    table = _concordance(cohort)
    assert (table["n_ism_unresolved"] > 0).any()
    assert sm.check_causal_concordance(table, cohort["truth_genes"]) == []
    flipped = _concordance(cohort, cohort["ism"].assign(score=-cohort["ism"]["score"]))
    fails = sm.check_causal_concordance(flipped, cohort["truth_genes"])
    assert any("sign agreement" in f for f in fails) and any("r > 0" in f for f in fails)


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
    s = sm.build_summary(p, cg, {"oracle": _concordance(cohort)}, deep_models=["oracle", "enformer_tiny"])
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
    assert sm.check_null_model(s, md) == []
    oracle_line = next(ln for ln in md.splitlines() if "**oracle**" in ln)
    assert "no better than chance" not in oracle_line
    assert sm.check_null_model(s, md.replace("no better than chance", "fine"))
    assert sm.check_shared_comparison(p, s) == []


def test_null_gene_check_catches_a_biased_predictor(cohort):
    """On h2 = 0 genes r must centre on 0: the oracle and an untrained model pass; a
    predictor with the old elastic net's fold-intercept leak (predictions = minus the
    held-out fold's mean expression) fails."""
    expr = cohort["expr"]
    p = perf.cross_individual(expr, {"oracle": cohort["oracle"], "enformer_tiny": cohort["tiny"]})
    assert sm.check_null_genes(p, cohort["truth_genes"]) == []
    folds = np.arange(expr.shape[1]) % 5
    leak = expr.copy()
    for k in range(5):
        m = folds == k
        leak.loc[:, m] = -0.25 * expr.loc[:, m].mean(axis=1).to_numpy()[:, None]
    leak += 1e-3 * np.random.default_rng(0).normal(size=leak.shape)
    bad = perf.cross_individual(expr, {"leaky": leak})
    fails = sm.check_null_genes(bad, cohort["truth_genes"])
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
    conc = _concordance(cohort)
    conc.to_csv(res / "concordance" / "oracle.tsv", sep="\t", index=False)
    cg = pd.DataFrame({"model": ["oracle"], "spearman_r": [0.9], "pearson_r": [0.9]})
    s = sm.build_summary(p, cg, {"oracle": conc}, ["oracle", "enformer_tiny"])
    s.to_csv(res / "summary.tsv", sep="\t", index=False)
    (res / "summary.md").write_text(sm.render_markdown(s, "demo"))
    out = sm.validate_demo(res, tdir)
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
    assert len(sm.validate_demo(res, tdir)["oracle_ism_signs"]) == len(cohort["truth"])
    shuffled = cohort["oracle"].sample(frac=1.0, axis=1, random_state=1)
    shuffled.columns = cohort["oracle"].columns
    perf.cross_individual(cohort["expr"], {"oracle": shuffled, "enformer_tiny": cohort["tiny"]}).to_csv(
        res / "performance.tsv", sep="\t", index=False
    )
    assert sm.validate_demo(res, tdir)["oracle_performance"]


def test_markdown_for_predictions_constant_across_individuals(cohort):
    expr = cohort["expr"].iloc[:10]
    # Rounding-level differences that follow expression: still "constant".
    const = pd.DataFrame(1.0 + 1e-9 * np.sign(expr.to_numpy()), index=expr.index, columns=expr.columns)
    p = perf.cross_individual(expr, {"enformer_tiny": const})
    s = sm.build_summary(p, pd.DataFrame(columns=["model", "spearman_r", "pearson_r"]), {}, ["enformer_tiny"])
    md = sm.render_markdown(s, "demo")
    assert "no gene could be tested" in md and "no better than chance" in md
    assert sm.check_null_model(s, md) == []
