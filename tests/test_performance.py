"""Per-gene statistics: exactness against scipy/statsmodels, planted signal recovered."""

import sqlite3

import numpy as np
import pandas as pd
import pysam
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hapexp.engine.precision import relative_resolution
from hapexp.linear.predictdb import predictdb_predict, read_predictdb_weights
from hapexp.variants.genotypes import span_dosages
from hapexp.verdict import performance as perf
from hapexp.verdict.cross_gene import cross_gene, level_columns
from hapexp.verdict.legacy_null import legacy_random_weights_null
from hapexp.verdict.summary import summarize_performance


def _planted(n_genes=40, n_samples=120, seed=2):
    rng = np.random.default_rng(seed)
    samples = [f"S{i:03d}" for i in range(n_samples)]
    genes = [f"G{i:02d}" for i in range(n_genes)]
    expr = pd.DataFrame(rng.normal(size=(n_genes, n_samples)), index=genes, columns=samples)
    pred = pd.DataFrame(rng.normal(size=(n_genes, n_samples)), index=genes, columns=samples)
    pred.iloc[:10] = expr.iloc[:10].to_numpy() + 0.5 * rng.normal(size=(10, n_samples))  # right direction
    pred.iloc[10:15] = -expr.iloc[10:15].to_numpy() + 0.5 * rng.normal(size=(5, n_samples))  # wrong direction
    pred.iloc[15] = 1.0  # no variant in the window: constant
    return expr, pred


def test_cross_individual_recovers_planted_genes_and_aligns_samples():
    expr, pred = _planted()
    # Shuffled sample order and an extra sample must not matter.
    shuffled = pred[pred.columns[::-1]].assign(EXTRA=0.0)
    res = perf.cross_individual(expr, {"deep": shuffled, "same": pred})
    assert list(res.columns) == perf.PERFORMANCE_COLUMNS
    a = res[res.predictor == "deep"].set_index("gene_id")
    b = res[res.predictor == "same"].set_index("gene_id")
    pd.testing.assert_frame_equal(a.drop(columns="predictor"), b.drop(columns="predictor"))
    assert (a["n"] == 120).all()
    assert (a.loc[expr.index[:10], "pearson_r"] > 0.7).all()
    assert (a.loc[expr.index[10:15], "pearson_r"] < -0.7).all()
    assert (a.loc[expr.index[:15], "fdr"] < 0.05).all()
    assert np.isnan(a.loc["G15", "pearson_r"]) and np.isnan(a.loc["G15", "fdr"])
    null = a.loc[expr.index[16:]]
    assert (null["fdr"] < 0.05).sum() <= 2
    s = summarize_performance(res[res.predictor == "deep"]).iloc[0]
    assert s["genes_tested"] == 39
    assert s["n_sig_positive"] >= 10 and s["n_sig_negative"] >= 5
    assert s["n_sig_positive"] + s["n_sig_negative"] <= 17


def test_legacy_random_weights_null():
    rng = np.random.default_rng(3)
    dos = rng.binomial(2, 0.3, size=(20, 150)).astype(float)
    y_signal = dos[4] + 0.5 * rng.normal(size=150)
    r_sig = stats.pearsonr(dos[4], y_signal)[0]
    z, p = legacy_random_weights_null(r_sig, dos, y_signal, n_draws=400, seed=1)
    assert p < 0.05 and z > 2
    y_null = rng.normal(size=150)
    r_null = stats.pearsonr(dos[4], y_null)[0]
    z0, p0 = legacy_random_weights_null(r_null, dos, y_null, n_draws=400, seed=1)
    assert p0 > 0.05 and abs(z0) < 3
    # z is r divided by the null's SD: reproducible with the same seed.
    assert legacy_random_weights_null(r_sig, dos, y_signal, 400, 1) == (z, p)


def test_cross_gene_uses_log_scale_and_recovers_rank():
    rng = np.random.default_rng(4)
    genes = [f"G{i}" for i in range(50)]
    level = rng.uniform(0, 12, size=50)
    raw = pd.DataFrame(2 ** level[:, None] * rng.uniform(0.8, 1.2, size=(50, 30)), index=genes)
    ref = pd.Series(level + 0.3 * rng.normal(size=50), index=genes)
    noise = pd.Series(rng.normal(size=50), index=genes)
    res = cross_gene(raw, {"good": ref, "bad": noise}).set_index("model")
    assert res.loc["good", "spearman_r"] > 0.9 and res.loc["good", "pearson_r"] > 0.9
    assert abs(res.loc["bad", "spearman_r"]) < 0.4
    assert res.loc["good", "expression_scale"] == "log2(x+1)"
    assert res.loc["good", "n_genes"] == 50


def _write_vcf(tmp_path):
    samples = ["A", "B", "C", "D"]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=10000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
        "chr1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0|0\t0|1\t1|1\t1|0",
        "chr1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t1|1\t0|0\t0|1\t.|.",
        "chr1\t300\t.\tG\tA\t.\tPASS\t.\tGT\t0|1\t0|1\t0|0\t0|0",
    ]
    plain = tmp_path / "c.vcf"
    plain.write_text("\n".join(lines) + "\n")
    return pysam.tabix_index(str(plain), preset="vcf", force=True), samples


def test_read_dosages_and_predictdb(tmp_path):
    vcf, samples = _write_vcf(tmp_path)

    def span(start0, end0):  # the per-gene look-up of predictdb_predict
        return span_dosages(vcf, "chr1", start0, end0, samples)

    dos = span(99, 300)  # 0-based [99, 300): 1-based 100..300
    assert list(dos.index) == ["chr1_100_A_G", "chr1_200_C_T", "chr1_300_G_A"]
    np.testing.assert_array_equal(dos.loc["chr1_100_A_G"], [0, 1, 2, 1])
    assert np.isnan(dos.loc["chr1_200_C_T", "D"])
    assert list(span(100, 300).index) == ["chr1_200_C_T", "chr1_300_G_A"]

    db = tmp_path / "m.db"
    with sqlite3.connect(db) as con:
        con.execute(
            "CREATE TABLE weights (gene TEXT, rsid TEXT, varID TEXT, ref_allele TEXT, eff_allele TEXT, weight REAL)"
        )
        con.executemany(
            "INSERT INTO weights VALUES (?,?,?,?,?,?)",
            [
                ("ENSG00000000001.3", "rs1", "chr1_100_A_G_b38", "A", "G", 0.5),
                # Effect allele is our REF: dosage flipped.
                ("ENSG00000000001.3", "rs2", "chr1_200_C_T_b38", "T", "C", 2.0),
                ("ENSG00000000001.3", "rs9", "chr1_999_A_C_b38", "A", "C", 9.0),  # absent: ignored
                ("ENSG00000000002.1", "rs3", "chr1_300_G_A_b38", "G", "A", -1.0),
            ],
        )
    w = read_predictdb_weights(db)
    pred = predictdb_predict(w, vcf, samples, ["ENSG00000000001", "ENSG00000000002.7", "OTHER"])
    # Gene 1: 0.5 * [0,1,2,1] + 2 * (2 - [2,0,1,mean(2,0,1)=1]) = [0, 4.5, 3, 2.5]
    np.testing.assert_allclose(pred.loc["ENSG00000000001"], [0.0, 4.5, 3.0, 2.5])
    np.testing.assert_allclose(pred.loc["ENSG00000000002.7"], [-1.0, -1.0, 0.0, 0.0])
    assert "OTHER" not in pred.index


def test_predictdb_rejects_non_db(tmp_path):
    from hapexp.errors import InputError

    bad = tmp_path / "x.db"
    sqlite3.connect(bad).close()
    with pytest.raises(InputError, match="PredictDB"):
        read_predictdb_weights(bad)


def test_float_rounding_variation_is_constant():
    """An insensitive model's predictions differ only at fp32 rounding level; even when that
    noise tracks expression exactly it must not count as a correlation."""
    expr = _planted()[0].iloc[:5]
    rounding = 1.46 + 1e-8 * np.sign(expr.to_numpy())  # perfectly "correlated" noise
    pred = pd.DataFrame(rounding, index=expr.index, columns=expr.columns)
    res = perf.cross_individual(expr, {"tiny": pred})
    assert res["pearson_r"].isna().all() and res["spearman_r"].isna().all() and res["fdr"].isna().all()
    s = summarize_performance(res).iloc[0]
    assert s["genes_tested"] == 0 and s["genes_constant"] == 5
    # Real variation on the same scale is kept.
    real = pd.DataFrame(1.46 + 1e-3 * expr.to_numpy(), index=expr.index, columns=expr.columns)
    assert (perf.cross_individual(expr, {"x": real})["pearson_r"] > 0.99).all()


def _cohort_with_covariates(n_genes=30, n=150, k=3, seed=11):
    """Raw expression = covariates (ancestry-PC-like) + a planted prediction effect on the
    first 10 genes + noise; predictions partly follow the covariates too."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:03d}" for i in range(n)]
    genes = [f"G{i:02d}" for i in range(n_genes)]
    cov = rng.normal(size=(k, n))
    pred = rng.normal(size=(n_genes, n)) + 1.5 * rng.normal(size=(n_genes, k)) @ cov
    raw = rng.normal(size=(n_genes, n)) + rng.normal(size=(n_genes, k)) @ cov
    raw[:10] += 0.4 * pred[:10]
    covdf = pd.DataFrame(cov, index=[f"PC{i + 1}" for i in range(k)], columns=samples)
    return (
        pd.DataFrame(raw, index=genes, columns=samples),
        pd.DataFrame(pred, index=genes, columns=samples),
        covdf,
    )


def test_residualized_correlation_is_the_ols_test_of_the_prediction():
    """r and p equal the t-test of the prediction's coefficient in OLS
    expression ~ 1 + covariates + prediction (statsmodels), dof = n - 2 - k; the expression
    given is the prepared one (already residualized), as in the workflow."""
    import statsmodels.api as sm

    from hapexp.stats import covariate_design, residualize

    raw, pred, cov = _cohort_with_covariates()
    prepared = pd.DataFrame(
        residualize(raw.to_numpy(), covariate_design(cov.to_numpy().T)), index=raw.index, columns=raw.columns
    )
    res = perf.cross_individual(prepared, {"m": pred}, cov).set_index("gene_id")
    assert (res["dof"] == 150 - 2 - 3).all()
    for g in ["G00", "G05", "G20", "G29"]:
        X = sm.add_constant(np.column_stack([cov.to_numpy().T, pred.loc[g].to_numpy()]))
        fit = sm.OLS(raw.loc[g].to_numpy(), X).fit()
        assert res.loc[g, "pearson_p"] == pytest.approx(fit.pvalues[-1], rel=1e-8)
        t = res.loc[g, "pearson_r"] * np.sqrt(res.loc[g, "dof"] / (1 - res.loc[g, "pearson_r"] ** 2))
        assert t == pytest.approx(fit.tvalues[-1], rel=1e-8)
    # the anchors' option: raw correlation, n - 2 dof (scipy.stats.pearsonr)
    raw_res = perf.cross_individual(prepared, {"m": pred}, cov, residualize=False).set_index("gene_id")
    for g in ["G00", "G20"]:
        er, ep = stats.pearsonr(pred.loc[g], prepared.loc[g])
        assert raw_res.loc[g, "pearson_r"] == pytest.approx(er, abs=1e-12)
        assert raw_res.loc[g, "pearson_p"] == pytest.approx(ep, rel=1e-8)
        assert raw_res.loc[g, "dof"] == 148


def test_rows_with_missing_samples_residualized_on_their_own_samples():
    """A prediction missing for some people is compared on the others, with the covariates
    and the expression restricted to them: OLS on that subset."""
    import statsmodels.api as sm

    from hapexp.stats import covariate_design, residualize

    raw, pred, cov = _cohort_with_covariates(seed=12)
    prepared = pd.DataFrame(
        residualize(raw.to_numpy(), covariate_design(cov.to_numpy().T)), index=raw.index, columns=raw.columns
    )
    pred.iloc[3, [1, 7, 40]] = np.nan
    res = perf.cross_individual(prepared, {"m": pred}, cov).set_index("gene_id")
    g = pred.index[3]
    keep = pred.loc[g].notna().to_numpy()
    X = sm.add_constant(np.column_stack([cov.to_numpy().T[keep], pred.loc[g].to_numpy()[keep]]))
    fit = sm.OLS(prepared.loc[g].to_numpy()[keep], X).fit()
    assert res.loc[g, "n"] == 147 and res.loc[g, "dof"] == 147 - 2 - 3
    assert res.loc[g, "pearson_p"] == pytest.approx(fit.pvalues[-1], rel=1e-8)


def test_all_predictors_on_the_same_samples_and_a_shared_gene_set():
    """Linear vs deep on identical genes and samples: a predictor missing two people moves
    every predictor to the shared people; genes one predictor cannot test (constant) leave
    the shared set for all; fdr_shared is BH over exactly the shared set."""
    expr, pred = _planted(n_genes=40, n_samples=120)
    deep = pred.drop(columns=["S000", "S001"])  # two people without a prediction
    deep.iloc[20:25] = 3.0  # constant for this model: no variant in its window
    linear = pred + 0.1
    linear.iloc[30] = 0.0  # no model for this gene
    res = perf.cross_individual(expr, {"deep": deep, "linear": linear})
    assert (res["n"] == 118).all()
    shared = perf.shared_genes(res)
    assert len(shared) == 40 - 5 - 1 - 1  # G15 is constant in both
    for name in ["deep", "linear"]:
        d = res[res.predictor == name]
        assert set(d.loc[d.in_shared_set, "gene_id"]) == set(shared)
        m = d.in_shared_set.to_numpy()
        expected = multipletests(d.loc[m, "pearson_p"], method="fdr_bh")[1]
        np.testing.assert_allclose(d.loc[m, "fdr_shared"], expected, rtol=1e-12)
    # same people for the linear model too: its r on S002.. equals a direct computation
    lin = res[(res.predictor == "linear") & (res.gene_id == "G00")].iloc[0]
    samples = [s for s in expr.columns if s not in ("S000", "S001")]
    assert lin["pearson_r"] == pytest.approx(
        stats.pearsonr(linear.loc["G00", samples], expr.loc["G00", samples])[0], abs=1e-12
    )
    s = summarize_performance(res, gene_set="shared").set_index("predictor")
    assert (s["genes_tested"] == len(shared)).all()
    own = summarize_performance(res).set_index("predictor")
    assert own.loc["deep", "genes_tested"] == 34 and own.loc["linear", "genes_tested"] == 38
    assert own.loc["deep", "genes_constant"] == 6


def _bf16(x):
    import torch

    return (
        torch.tensor(np.asarray(x, dtype=np.float32))
        .to(torch.bfloat16)
        .to(torch.float32)
        .numpy()
        .astype(float)
    )


def test_pure_bf16_rounding_noise_is_constant_not_tested():
    """An insensitive model run in bf16: its read-out is the same for every person up to
    per-sequence bf16 rounding, which here follows the genotype that drives expression.
    With the fp32 threshold (the old fixed RESOLUTION = 1e-6) that noise is tested and comes
    out strongly significant; with the bf16 resolution the genes are constant."""
    rng = np.random.default_rng(4)
    n, n_genes = 200, 20
    samples = [f"S{i}" for i in range(n)]
    dos = rng.binomial(2, 0.4, size=(n_genes, n)).astype(float)
    expr = pd.DataFrame(
        dos + rng.normal(size=(n_genes, n)), index=[f"G{i}" for i in range(n_genes)], columns=samples
    )
    level = rng.uniform(50, 500, size=(n_genes, 1))
    # per-haplotype accumulated rounding, ~1e-3 relative (below bf16's 0.4-0.8 % spacing) and
    # deterministic per sequence (here: partly set by the allele), then bf16 output rounding
    h1 = _bf16(level * (1 + 1.5e-3 * (dos >= 1) + 1e-3 * rng.normal(size=dos.shape)))
    h2 = _bf16(level * (1 + 1.5e-3 * (dos == 2) + 1e-3 * rng.normal(size=dos.shape)))
    noise = pd.DataFrame((h1 + h2) / 2, index=expr.index, columns=samples)
    assert noise.nunique(axis=1).min() >= 2  # the rounding does vary between people
    old = perf.cross_individual(expr, {"m": noise}, floors={"m": 1e-6})
    assert (old["fdr"] < 0.05).sum() >= 10  # the failure the issue describes
    new = perf.cross_individual(expr, {"m": noise}, floors={"m": relative_resolution("bf16")})
    assert new["pearson_r"].isna().all() and new["constant"].all()
    s = summarize_performance(new).iloc[0]
    assert s["genes_tested"] == 0 and s["genes_constant"] == n_genes
    # a measured floor per gene can be passed as well
    floor = pd.Series(1e-6, index=expr.index)
    floor.iloc[:5] = 1e-2
    per_gene = perf.cross_individual(expr, {"m": noise}, floors={"m": floor})
    assert per_gene["constant"].tolist() == [True] * 5 + [False] * 15


def test_cross_gene_reads_the_expression_level_not_the_residualized_matrix(tmp_path):
    """A PEER/PC-residualized expression has gene means of ~0: no level to compare the
    reference prediction with. With `expression_level` (un-residualized, columns named like
    Geuvadis GD660 libraries) the cross-gene r recovers the level; without, it cannot."""
    from hapexp.io import write_matrix

    rng = np.random.default_rng(8)
    genes = [f"G{i}" for i in range(40)]
    samples = [f"HG{i:05d}" for i in range(30)]
    level = rng.uniform(0, 10, size=40)
    rpkm = pd.DataFrame(2 ** level[:, None] * rng.uniform(0.7, 1.3, (40, 30)), index=genes)
    rpkm.columns = [f"{s}.1.M_111124_{i % 8}" for i, s in enumerate(samples)]
    rpkm["NA99999.1.M_1"] = 1e6  # a library of someone not analysed: ignored
    resid = pd.DataFrame(rng.normal(size=(40, 30)), index=genes, columns=samples)
    assert level_columns(rpkm, samples).shape[1] == 30
    prepared = tmp_path / "prepared.tsv"
    write_matrix(resid, prepared)
    matrix = tmp_path / "m.tsv"
    write_matrix(resid + rng.normal(size=resid.shape), matrix)
    ref = tmp_path / "ref.tsv"
    pd.DataFrame({"gene_id": genes, "value": level + 0.2 * rng.normal(size=40)}).to_csv(
        ref, sep="\t", index=False
    )
    raw = tmp_path / "raw.tsv"
    write_matrix(resid, raw)
    lvl = tmp_path / "level.tsv"
    rpkm.index.name = "gene_id"
    rpkm.to_csv(lvl, sep="\t")
    out = {}
    for name, kw in (("level", {"level": lvl, "level_format": "tsv"}), ("resid", {})):
        perf.run_performance(
            prepared,
            raw,
            [matrix],
            [ref],
            tmp_path / f"p_{name}.tsv",
            tmp_path / f"cg_{name}.tsv",
            models=["m"],
            raw_format="tsv",
            residualize=True,
            **kw,
        )
        out[name] = pd.read_csv(tmp_path / f"cg_{name}.tsv", sep="\t").iloc[0]
    assert out["level"]["spearman_r"] > 0.9 and out["level"]["expression_source"].startswith(
        "expression_level"
    )
    assert abs(out["resid"]["spearman_r"]) < 0.4 and out["resid"]["expression_source"].startswith(
        "expression ("
    )


def test_partial_spearman_ranks_first_and_is_calibrated_for_one_snp_predictions():
    """Spearman r is the partial Spearman: ranks of prediction and expression, each
    residualized on the covariates (OLS, statsmodels), then Pearson (scipy). On 4,000 null
    genes whose prediction is one SNP's dosage (MAF 0.05: three values), p < 0.05 must be
    within binomial 99 % bounds of 5 %; residualizing before ranking (the old order) broke
    the dosage's ties in covariate order and gave 0.6 %."""
    import statsmodels.api as sm
    from scipy import stats as sps

    from tests.null_genes import binomial_bounds

    rng = np.random.default_rng(12)
    n, genes = 120, 4000
    samples = [f"s{i}" for i in range(n)]
    cov = pd.DataFrame(rng.normal(size=(3, n)), index=["c1", "c2", "c3"], columns=samples)
    dosage = rng.binomial(2, 0.05, size=(genes, n)).astype(float)
    dosage[:, 0] = 1.0  # never monomorphic
    expr = pd.DataFrame(rng.normal(size=(genes, n)), columns=samples)
    pred = pd.DataFrame(dosage, columns=samples)
    from hapexp.verdict.performance import cross_individual

    res = cross_individual(expr, {"snp": pred}, cov)
    q = sm.add_constant(cov.to_numpy().T)
    for g in range(3):
        rp = sm.OLS(sps.rankdata(dosage[g]), q).fit().resid
        re = sm.OLS(sps.rankdata(expr.iloc[g]), q).fit().resid
        assert res["spearman_r"].iloc[g] == pytest.approx(sps.pearsonr(rp, re).statistic, rel=1e-9)
    frac = (res["spearman_p"] < 0.05).mean()
    lo, hi = binomial_bounds(genes)
    assert lo <= frac <= hi, frac
