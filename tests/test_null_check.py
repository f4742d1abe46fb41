"""The permuted-expression check (hapexp.verdict.null_check), against independent answers:
statsmodels OLS for Freedman–Lane, simulated null and planted-signal cohorts for the
fractions and their bounds, the elastic net's own per-gene fit for the refit, the config
schema for bad keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.stats import bh_fdr, covariate_design, residualize
from hapexp.verdict import null_check as nc
from hapexp.verdict.performance import cross_individual


def _frame(x, prefix="g"):
    n = x.shape[1]
    return pd.DataFrame(
        x, index=[f"{prefix}{i}" for i in range(x.shape[0])], columns=[f"s{j}" for j in range(n)]
    )


def _cohort(rng, genes=400, n=150, k=3, factors=5, signal=0.0, signal_fraction=0.5):
    """Prepared expression (residualized on k covariates), the covariates, and two fixed
    predictors: `null_model` (unrelated to expression; correlated across genes and with the
    covariates) and `signal_model` (drives `signal_fraction` of the genes with weight `signal`).
    Genes share `factors` latent factors: correlated, as real genes are."""
    cov = rng.normal(size=(k, n))
    load = rng.normal(size=(genes, factors)) * 0.7
    latent = load @ rng.normal(size=(factors, n))
    pred_null = rng.normal(size=(genes, n)) + 0.5 * rng.normal(size=(genes, 1)) * cov[0]
    pred_sig = rng.normal(size=(genes, n)) + 0.3 * latent
    raw = latent + rng.normal(size=(genes, n)) + rng.normal(size=(genes, k)) @ cov
    planted = np.arange(genes) < int(signal_fraction * genes)
    raw[planted] += signal * pred_sig[planted]
    cols = [f"s{j}" for j in range(n)]
    covariates = pd.DataFrame(cov, index=pd.Index([f"c{i}" for i in range(k)], name="id"), columns=cols)
    prepared = _frame(residualize(raw, covariate_design(cov.T)))
    return prepared, covariates, {"null_model": _frame(pred_null), "signal_model": _frame(pred_sig)}


def _runs(prepared, covariates, fixed, permutations, seed=3):
    real = cross_individual(prepared, fixed, covariates).assign(run=nc.REAL, permutation=0)
    permuted = nc.score_permutations(
        prepared, covariates, fixed, {}, {}, permutations=permutations, seed=seed, floors={}, residualize=True
    )
    return pd.concat([real[[*nc.PVALUE_COLUMNS, "fdr"]], permuted], ignore_index=True)


def test_one_permutation_for_all_genes_keeps_gene_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 25))
    x[1] = 0.8 * x[0] + 0.2 * x[1]  # two correlated genes
    x -= x.mean(axis=1, keepdims=True)
    e = _frame(x)
    perm = nc.permuted_expression(e, None, seed=11, b=1).to_numpy()
    # each gene's permutation, recovered from its values alone (all values distinct)
    found = [[int(np.flatnonzero(np.isclose(x[g], v, atol=1e-12))[0]) for v in perm[g]] for g in range(6)]
    assert all(f == found[0] for f in found), "genes were permuted differently"
    assert found[0] != list(range(25)), "the permutation is the identity"
    np.testing.assert_allclose(np.corrcoef(perm), np.corrcoef(x), atol=1e-12)
    # with covariates: the permuted expression is residualized on them (orthogonal, centred)
    cov = pd.DataFrame(rng.normal(size=(2, 25)), index=pd.Index(["a", "b"], name="id"), columns=e.columns)
    p2 = nc.permuted_expression(e, cov, seed=11, b=1).to_numpy()
    np.testing.assert_allclose(p2 @ cov.to_numpy().T, 0, atol=1e-10)
    np.testing.assert_allclose(p2.sum(axis=1), 0, atol=1e-10)


def test_freedman_lane_equals_statsmodels_ols():
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    n, genes = 40, 3
    z = rng.normal(size=(n, 2))
    y = rng.normal(size=(genes, n)) + rng.normal(size=(genes, 2)) @ z.T
    pred = rng.normal(size=(genes, n)) + 0.4 * z[:, 0]  # a prediction that follows a covariate
    cov = pd.DataFrame(z.T, index=pd.Index(["c0", "c1"], name="id"), columns=[f"s{j}" for j in range(n)])
    prepared = _frame(residualize(y, covariate_design(z)))
    ours_e = nc.permuted_expression(prepared, cov, seed=5, b=2)
    ours_p = cross_individual(ours_e, {"m": _frame(pred)}, cov).set_index("gene_id")["pearson_p"]
    pi = nc.permutation_index(n, 5, 2)
    design0 = sm.add_constant(z)
    for g in range(genes):
        reduced = sm.OLS(y[g], design0).fit()
        y_star = reduced.fittedvalues + reduced.resid[pi]  # Freedman–Lane: permuted residuals
        np.testing.assert_allclose(ours_e.iloc[g], sm.OLS(y_star, design0).fit().resid, atol=1e-10)
        full = sm.OLS(y_star, np.column_stack([design0, pred[g]])).fit()
        assert ours_p[f"g{g}"] == pytest.approx(full.pvalues[-1], rel=1e-8)


def test_null_fractions_centre_on_nominal_and_planted_signal_is_outside():
    prepared, covariates, fixed = _cohort(np.random.default_rng(2), signal=0.6)
    runs = _runs(prepared, covariates, fixed, permutations=12)
    table = nc.run_fractions(runs, fdr=0.05)
    bounds = nc.null_bounds(table, fdr=0.05).set_index("predictor")
    perm = table[table["run"] == nc.PERMUTED]
    for name in ("null_model", "signal_model"):
        f = perm[perm["predictor"] == name]
        # 400 genes × 12 permutations: the mean within 1.5 points of 5 % (2.5 % each way)
        assert abs(f["fraction_p05"].mean() - 0.05) < 0.015, (name, f["fraction_p05"].tolist())
        assert abs(f["fraction_p05_positive"].mean() - 0.025) < 0.012
        assert abs(f["fraction_p05_negative"].mean() - 0.025) < 0.012
        assert bounds.loc[name, "inside"], bounds.loc[name].to_dict()
        # every permuted run within one run's null bounds
        assert f["fraction_p05"].between(bounds.loc[name, "run_lo"], bounds.loc[name, "run_hi"]).all()
    # uniform, not just centred: the null model's permuted p-values (its predictions are
    # independent across genes, so its tests are nearly independent within a permutation)
    from scipy import stats

    p_null = runs.loc[(runs["run"] == nc.PERMUTED) & (runs["predictor"] == "null_model"), "pearson_p"]
    assert stats.kstest(p_null, "uniform").pvalue > 0.01
    sig, null = bounds.loc["signal_model"], bounds.loc["null_model"]
    assert sig["real_p05"] > sig["run_hi"] and sig["real_fdr"] > 0.3
    assert null["run_lo"] <= null["real_p05"] <= null["run_hi"]


def test_bounds_catch_an_anticonservative_predictor():
    """Per-permutation fractions of a predictor whose null p-values are too small (its z
    inflated 1.3×: about 11 % below 0.05) are outside; a calibrated one is inside; permuted
    runs that still carry the real signal (no permutation) are outside too."""
    from scipy import stats

    rng = np.random.default_rng(4)
    rows = []
    for b in range(1, 6):
        z = rng.normal(size=2000)
        for name, scale in (("calibrated", 1.0), ("inflated", 1.3)):
            p = 2 * stats.norm.sf(np.abs(scale * z))
            rows.append(pd.DataFrame({"predictor": name, "run": nc.PERMUTED, "permutation": b,
                                      "gene_id": np.arange(2000).astype(str), "pearson_r": z,
                                      "pearson_p": p, "fdr": bh_fdr(p)}))  # fmt: skip
    table = nc.run_fractions(pd.concat(rows, ignore_index=True), fdr=0.05)
    bounds = nc.null_bounds(table, fdr=0.05).set_index("predictor")
    assert bounds.loc["calibrated", "inside"] and not bounds.loc["inflated", "inside"]
    assert not bounds.loc["inflated", "fraction_p05_inside"]

    prepared, covariates, fixed = _cohort(np.random.default_rng(5), genes=200, signal=0.6)
    real = cross_individual(prepared, {"signal_model": fixed["signal_model"]}, covariates)
    fake = pd.concat([real.assign(run=nc.PERMUTED, permutation=b) for b in (1, 2, 3)], ignore_index=True)
    assert not nc.null_bounds(nc.run_fractions(fake, 0.05), 0.05)["inside"].iloc[0]


def test_elasticnet_refit_is_rule_elasticnets_fit_on_the_permuted_expression():
    from hapexp.linear.elasticnet import fit_gene
    from hapexp.variants.genotypes import Dosages

    rng = np.random.default_rng(6)
    n, snps, genes = 60, 12, 2
    g = rng.binomial(2, 0.3, size=(genes * snps, n)).astype(float)
    y = np.stack([2.5 * g[i * snps] + rng.normal(size=n) for i in range(genes)])  # a strong eQTL each
    samples = [f"s{j}" for j in range(n)]
    prepared = pd.DataFrame(y - y.mean(axis=1, keepdims=True), index=["A", "B"], columns=samples)
    m = genes * snps
    dos = Dosages(np.array([f"v{i}" for i in range(m)]), np.array(["1"] * m), np.arange(1, m + 1) * 10,
                  np.array(["A"] * m), np.array(["G"] * m), g, samples)  # fmt: skip
    table = pd.DataFrame({"gene_id": ["A", "B"], "name": ["A", "B"], "chrom": ["1", "1"],
                          "start0": [0, snps * 10], "end0": [snps * 10, m * 10]})  # fmt: skip
    en = {"alpha": 0.5, "outer_folds": 3, "inner_folds": 3, "seed": 42, "thresh": 1e-7}
    oof, _ = nc.refit_elasticnet(dos, table, prepared, None, permutations=2, seed=9, en=en)
    by_b = nc._split_long(oof)
    assert sorted(by_b) == [1, 2]
    kw = {k: en[k] for k in ("alpha", "outer_folds", "inner_folds", "seed", "thresh")}
    for b in (1, 2):
        e = nc.permuted_expression(prepared, None, seed=9, b=b)
        for i, gene in enumerate(["A", "B"]):
            x = np.ascontiguousarray(g[i * snps : (i + 1) * snps].T)
            _, want, _ = fit_gene(gene, x, e.loc[gene].to_numpy(), **kw)
            np.testing.assert_allclose(by_b[b].loc[gene].to_numpy(), want, atol=1e-12)
    # the real fit finds the eQTL; the refits on permuted people do not
    real = np.array([fit_gene(gn, np.ascontiguousarray(g[i * snps : (i + 1) * snps].T), y[i], **kw)[1]
                     for i, gn in enumerate(["A", "B"])])  # fmt: skip
    assert min(np.corrcoef(real[i], y[i])[0, 1] for i in range(genes)) > 0.7
    permuted = nc.permuted_expression(prepared, None, seed=9, b=1)
    for i in range(genes):  # an empty model (constant out-of-fold predictions) has no r: fine
        oof_b = by_b[1].iloc[i].to_numpy()
        assert np.ptp(oof_b) == 0 or abs(np.corrcoef(oof_b, permuted.iloc[i])[0, 1]) < 0.4


def test_deterministic_by_seed():
    prepared, covariates, fixed = _cohort(np.random.default_rng(7), genes=50, n=60)
    a = nc.permuted_expression(prepared, covariates, 1, 1)
    pd.testing.assert_frame_equal(a, nc.permuted_expression(prepared, covariates, 1, 1))
    assert not np.allclose(a, nc.permuted_expression(prepared, covariates, 2, 1))
    assert not np.allclose(a, nc.permuted_expression(prepared, covariates, 1, 2))
    three = _runs(prepared, covariates, fixed, permutations=3, seed=8)
    two = _runs(prepared, covariates, fixed, permutations=2, seed=8)
    pd.testing.assert_frame_equal(three[three["permutation"] <= 2].reset_index(drop=True), two)
    with pytest.raises(ValueError, match="start at 1"):
        nc.permutation_index(10, 1, 0)


def _config(block):
    return {
        "reference": {"fasta": "ref.fa"},
        "genes": {"table": "genes.tsv"},
        "cohorts": {"c": {"vcf": "c.vcf.gz", "expression": "e.tsv"}},
        "models": {"m": {"kind": "oracle", "window": 1024, "weights": "oracle.pt"}},
        "null_check": block,
    }


@pytest.mark.parametrize(
    "block, fragments",
    [
        (
            {"enabled": True, "permutations": 1},
            ["null_check.permutations", "1 is less than the minimum of 2"],
        ),
        ({"enable": True}, ["null_check", "did you mean 'enabled'"]),
        ({"enabled": "yes"}, ["null_check.enabled", "'yes' is not of type 'boolean'"]),
        ({"seed": -1}, ["null_check.seed"]),
    ],
)
def test_bad_config_names_the_key(block, fragments):
    from hapexp.config.check import check_config

    check_config(_config({"enabled": True, "permutations": 3, "seed": 0}), "my.yaml")
    with pytest.raises(InputError) as exc:
        check_config(_config(block), "my.yaml")
    msg = str(exc.value)
    assert msg.startswith("my.yaml") and all(f in msg for f in fragments), msg


def test_summary_section_states_bounds_few_genes_and_uncovered():
    prepared, covariates, fixed = _cohort(np.random.default_rng(8), genes=30, n=80, signal=0.8)
    table = nc.run_fractions(_runs(prepared, covariates, fixed, permutations=4), fdr=0.05)
    lines = nc.null_check_lines(table, 0.05, ["null_model", "signal_model", "tiny_ft", "tiny_head_gene"])
    text = "\n".join(lines)
    assert "| null_model | 30 |" in text and "| signal_model | 30 |" in text
    assert "above: more genes than chance" in text  # the planted-signal predictor's real run
    assert f"fewer than {nc.MIN_GENES}" in text
    assert "Not covered: tiny_ft, tiny_head_gene" in text
    assert "4 permutations" in text and "at least 10" in text
    # a predictor constant on every gene is not checked (not "outside")
    flat = table[table["predictor"] == "null_model"].assign(predictor="flat", genes_tested=0)
    text = "\n".join(nc.null_check_lines(pd.concat([table, flat]), 0.05, []))
    assert "flat: its predictions do not vary" in text and "| no gene tested |" in text
    assert "flat is outside" not in text and "Every predictor checked (null_model, signal_model)" in text
    big = nc.run_fractions(
        _runs(*_cohort(np.random.default_rng(9), genes=nc.MIN_GENES + 10, n=80)[:2],
              {"m": _cohort(np.random.default_rng(10), genes=nc.MIN_GENES + 10, n=80)[2]["null_model"]}, 10), 0.05
    )  # fmt: skip
    text = "\n".join(nc.null_check_lines(big, 0.05, ["m"]))
    assert "fewer than" not in text and "Not covered" not in text and "at least 10" not in text
    assert "Every predictor checked (m) is inside the bounds." in text
    assert nc.MIN_GENES == 127  # z(0.995)² · 0.95 / 0.05 = 126.1


def test_run_null_check_reads_the_rules_files_and_takes_the_real_run_from_performance(tmp_path):
    """Rule null_check's entry point on files: a fixed model and a refitted predictor (long
    tables as rule null_check_elasticnet writes them), the real run copied from performance.tsv."""
    from hapexp.io import write_matrix, write_tsv

    prepared, covariates, fixed = _cohort(np.random.default_rng(11), genes=40, n=60, signal=0.7)
    write_matrix(prepared, tmp_path / "prepared.tsv")
    write_matrix(covariates, tmp_path / "covariates.tsv", index_col="id")
    write_matrix(fixed["signal_model"], tmp_path / "m.matrix.tsv")
    perf = cross_individual(prepared, {"m": fixed["signal_model"], "en": fixed["null_model"]}, covariates)
    write_tsv(perf, tmp_path / "performance.tsv")
    # the "refitted" predictor: the same fixed predictions under each permutation, split in two chunks
    refits = pd.concat([fixed["null_model"].assign(permutation=b) for b in (1, 2)]).rename_axis("gene_id")
    refits = refits.reset_index()[["permutation", "gene_id", *prepared.columns]]
    labels = pd.DataFrame(np.tile(np.arange(prepared.shape[1]) % 3, (len(prepared), 1)),
                          index=prepared.index, columns=prepared.columns)  # fmt: skip
    folds = pd.concat([labels.assign(permutation=b) for b in (1, 2)]).rename_axis("gene_id").reset_index()
    folds = folds[["permutation", "gene_id", *prepared.columns]]
    chunks = []
    for i, part in enumerate((refits[refits["gene_id"] < "g2"], refits[refits["gene_id"] >= "g2"])):
        write_tsv(part, tmp_path / f"{i}.oof.tsv")
        write_tsv(folds[folds["gene_id"].isin(part["gene_id"])], tmp_path / f"{i}.folds.tsv")
        chunks.append(i)
    out = nc.run_null_check(
        tmp_path / "performance.tsv", tmp_path / "prepared.tsv", tmp_path / "covariates.tsv",
        [tmp_path / "m.matrix.tsv"], [tmp_path / f"{i}.oof.tsv" for i in chunks],
        [tmp_path / f"{i}.folds.tsv" for i in chunks], tmp_path / "null_check.tsv", tmp_path / "pvalues.tsv",
        models=["m"], floors={"m": 1e-6}, residualize=True, fdr=0.05,
        null_check={"enabled": True, "permutations": 2, "seed": 4},
    )  # fmt: skip
    table = pd.read_csv(tmp_path / "null_check.tsv", sep="\t")
    pd.testing.assert_frame_equal(table, out.reset_index(drop=True), check_dtype=False)
    assert list(table.columns) == nc.TABLE_COLUMNS
    assert set(zip(table["predictor"], table["permutation"], strict=True)) == {
        (p, b) for p in ("m", "elasticnet") for b in (0, 1, 2)
    } - {("elasticnet", 0)}  # performance.tsv has no "elasticnet" here: no real row for it
    pv = pd.read_csv(tmp_path / "pvalues.tsv", sep="\t", dtype={"gene_id": str})
    real = pv[(pv["run"] == nc.REAL) & (pv["predictor"] == "m")].set_index("gene_id")["pearson_p"]
    want = perf[perf["predictor"] == "m"].set_index("gene_id")["pearson_p"]
    np.testing.assert_allclose(real.loc[want.index], want, rtol=1e-12)
    # the refitted predictor was scored against the permuted expressions on its outer folds
    fixed_scored = nc.score_permutations(prepared, covariates, {}, {"elasticnet": {1: fixed["null_model"],
                                         2: fixed["null_model"]}}, {"elasticnet": {1: labels, 2: labels}},
                                         permutations=2, seed=4, floors={}, residualize=True)  # fmt: skip
    got = pv[pv["predictor"] == "elasticnet"].set_index(["permutation", "gene_id"])["pearson_p"]
    want = fixed_scored.set_index(["permutation", "gene_id"])["pearson_p"]
    np.testing.assert_allclose(got.loc[want.index], want, rtol=1e-10)
