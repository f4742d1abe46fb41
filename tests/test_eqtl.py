"""cis-eQTL scan: statistics equal OLS (statsmodels) and tensorQTL's map_nominal; planted
effects recovered; permutation p-values and q-values behave."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from hapexp.linear.eqtl import (
    NOMINAL_COLUMNS,
    allele_stats,
    nominal_association,
    scan_genes,
)
from hapexp.stats import Residualizer, residualize
from hapexp.variants.genotypes import Dosages
from hapexp.variants.windows import gene_window, resolve_window

N, K = 80, 3


def _cohort(seed=0, n_genes=4, n_var=60, effect=0.8, missing=False):
    """Genes on chr1 every 10 kb; variants every 500 bp; gene i's causal variant planted."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(N)]
    pos = np.arange(1, n_var + 1) * 500
    af = rng.uniform(0.05, 0.5, n_var)
    g = rng.binomial(2, af[:, None], (n_var, N)).astype(float)
    if missing:  # imputed values (non-integer dosages) as tensorQTL's impute_mean produces
        g[::7, 3] = g[::7].mean(axis=1)
    cov = rng.normal(size=(K, N))
    genes, expr, causal = [], [], {}
    for i in range(n_genes):
        tss = 2000 + i * 7000
        strand = "+" if i % 2 == 0 else "-"
        c = int(np.argmin(np.abs(pos - tss))) + 2
        causal[f"G{i}"] = c
        y = effect * g[c] + cov.T @ rng.normal(size=K) + rng.normal(size=N)
        genes.append(("G" + str(i), "G" + str(i), "chr1", tss, strand))
        expr.append(y)
    genes = pd.DataFrame(genes, columns=["gene_id", "name", "chrom", "tss", "strand"])
    expr = pd.DataFrame(np.array(expr), index=genes.gene_id, columns=samples)
    covdf = pd.DataFrame(cov, index=[f"c{i}" for i in range(K)], columns=samples)
    ids = np.array([f"chr1_{p}_A_G" for p in pos], dtype=object)
    d = Dosages(
        ids,
        np.array(["chr1"] * n_var, dtype=object),
        pos,
        np.array(["A"] * n_var, dtype=object),
        np.array(["G"] * n_var, dtype=object),
        g,
        samples,
    )
    return d, genes, expr, covdf, causal


def _windowed(genes, w):
    genes = genes.copy()
    win = [gene_window(t, s, resolve_window(w)) for t, s in zip(genes.tss, genes.strand, strict=True)]
    genes["start0"], genes["end0"] = [x[0] for x in win], [x[1] for x in win]
    return genes


def test_nominal_equals_statsmodels_ols():
    d, genes, expr, cov, _ = _cohort()
    res = Residualizer(cov.to_numpy().T)
    y = expr.loc["G1"].to_numpy()
    s = nominal_association(d.dosage, y, res)
    for j in [0, 5, 17, 40]:
        X = sm.add_constant(np.column_stack([d.dosage[j], cov.to_numpy().T]))
        fit = sm.OLS(y, X).fit()
        np.testing.assert_allclose(s["slope"][j], fit.params[1], rtol=1e-8)
        np.testing.assert_allclose(s["slope_se"][j], fit.bse[1], rtol=1e-8)
        np.testing.assert_allclose(s["t"][j], fit.tvalues[1], rtol=1e-8)
        np.testing.assert_allclose(s["pval_nominal"][j], fit.pvalues[1], rtol=1e-8)
        assert fit.df_resid == res.dof


def test_prepared_residuals_give_identical_statistics():
    """The workflow scans residualized expression + covariates: identical to raw + covariates."""
    d, genes, expr, cov, _ = _cohort(seed=3)
    res = Residualizer(cov.to_numpy().T)
    resid = pd.DataFrame(residualize(expr.to_numpy(), res.q), index=expr.index, columns=expr.columns)
    g = _windowed(genes, 3000)
    a, _ = scan_genes(d, g, expr, cov)
    b, _ = scan_genes(d, g, resid, cov)
    for col in ["slope", "slope_se", "t", "pval_nominal", "r"]:
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9)


def test_allele_stats_minor_allele():
    g = np.array([[0, 1, 2, 2, 2], [0, 0, 1, 0, 2.0]])
    af, ms, mc = allele_stats(g)
    np.testing.assert_allclose(af, [0.7, 0.3])
    assert list(ms) == [2, 2] and list(mc) == [3, 3]


def test_planted_eqtls_ranked_top_and_strand_aware_distance():
    d, genes, expr, cov, causal = _cohort(seed=1, effect=1.0)
    nominal, top = scan_genes(d, _windowed(genes, 3000), expr, cov)
    assert list(nominal.columns) == NOMINAL_COLUMNS
    for _, row in top.iterrows():
        assert row.variant_id == d.variant_id[causal[row.phenotype_id]]
        assert row.pval_nominal < 1e-3
        pos = int(row.variant_id.split("_")[1])
        tss = int(genes.set_index("gene_id").loc[row.phenotype_id, "tss"])
        sign = 1 if genes.set_index("gene_id").loc[row.phenotype_id, "strand"] == "+" else -1
        assert row.tss_distance == sign * (pos - tss)
    # every pair within ±3000 bp of its TSS, and all of them present
    for gid, grp in nominal.groupby("phenotype_id"):
        assert grp.tss_distance.abs().max() <= 3000
        tss = int(genes.set_index("gene_id").loc[gid, "tss"])
        assert len(grp) == int(np.sum(np.abs(d.pos - tss) <= 3000))


def test_matches_tensorqtl_map_nominal(tmp_path, monkeypatch):
    tensorqtl = pytest.importorskip(
        "tensorqtl", reason="tensorqtl not installed (pip install --no-deps tensorqtl)"
    )
    import torch
    from tensorqtl import cis

    d, genes, expr, cov, _ = _cohort(seed=2, missing=True)
    genes = genes.assign(strand="+")  # tensorQTL's start_distance is not strand-aware
    genotype_df = pd.DataFrame(d.dosage, index=d.variant_id, columns=d.samples)
    variant_df = pd.DataFrame({"chrom": d.chrom, "pos": d.pos}, index=d.variant_id)
    pos_df = pd.DataFrame({"chr": genes.chrom.to_numpy(), "pos": genes.tss.to_numpy()}, index=genes.gene_id)
    # tensorQTL computes in float32; run its exact code path in float64 so that the
    # comparison tests the statistics, not the precision (its output slope/af stay float32).
    monkeypatch.setattr(torch, "float", torch.float64)
    monkeypatch.setattr(torch, "float32", torch.float64)
    cis.map_nominal(
        genotype_df,
        variant_df,
        expr,
        pos_df,
        "t",
        covariates_df=cov.T,
        window=3000,
        output_dir=str(tmp_path),
        verbose=False,
        logger=None,
    )
    monkeypatch.undo()
    ref = pd.read_parquet(tmp_path / "t.cis_qtl_pairs.chr1.parquet")
    ours, _ = scan_genes(d, _windowed(genes, 3000), expr, cov)
    m = ref.merge(ours, on=["phenotype_id", "variant_id"], suffixes=("_tq", ""))
    assert len(m) == len(ref) == len(ours) > 40
    np.testing.assert_array_equal(m.start_distance, m.tss_distance)
    np.testing.assert_array_equal(m.ma_samples_tq, m.ma_samples)
    np.testing.assert_array_equal(m.ma_count_tq, m.ma_count)
    for col in ["pval_nominal", "slope", "slope_se", "af"]:
        np.testing.assert_allclose(m[col], m[f"{col}_tq"], rtol=1e-6, err_msg=col)
    assert tensorqtl is not None


def _mixed_cohort(seed=4, n_genes=24):
    """Planted eQTLs on odd genes; even genes' expression is noise (null genes)."""
    d, genes, expr, cov, causal = _cohort(seed=seed, n_genes=n_genes, n_var=n_genes * 15 + 20, effect=1.0)
    rng = np.random.default_rng(seed)
    for i in range(0, n_genes, 2):
        expr.iloc[i] = cov.to_numpy().T @ rng.normal(size=K) + rng.normal(size=N)
    return d, genes.assign(strand="+"), expr, cov, causal


def _tensorqtl_map_cis(d, genes, expr, cov, nperm, seed, monkeypatch):
    pytest.importorskip("tensorqtl", reason="tensorqtl not installed (pip install --no-deps tensorqtl)")
    import torch
    from tensorqtl import cis

    genotype_df = pd.DataFrame(d.dosage, index=d.variant_id, columns=d.samples)
    variant_df = pd.DataFrame({"chrom": d.chrom, "pos": d.pos}, index=d.variant_id)
    pos_df = pd.DataFrame({"chr": genes.chrom.to_numpy(), "pos": genes.tss.to_numpy()}, index=genes.gene_id)
    with monkeypatch.context() as m:  # float64 through tensorQTL's own code path (see map_nominal test)
        m.setattr(torch, "float", torch.float64)
        m.setattr(torch, "float32", torch.float64)
        res = cis.map_cis(
            genotype_df,
            variant_df,
            expr,
            pos_df,
            covariates_df=cov.T,
            nperm=nperm,
            window=3000,
            seed=seed,
            verbose=False,
            logger=_QuietLogger(),
        )
    # tensorQTL's permutations: np.random.seed(seed), then one permutation per row
    legacy = np.random.RandomState(seed)  # noqa: NPY002 - tensorQTL seeds numpy's legacy global generator
    perm_ix = np.array([legacy.permutation(np.arange(expr.shape[1])) for _ in range(nperm)])
    return res, perm_ix


class _QuietLogger:
    def write(self, msg):
        pass


def test_permutation_pass_matches_tensorqtl_map_cis(monkeypatch):
    """Same data, same permutations (tensorQTL draws them from np.random.seed(seed)): the
    permutation p-value is identical, the effective dof agrees to 1e-6, and the Beta shapes
    and pval_beta agree to tensorQTL's optimizer tolerance: tensorQTL stops Nelder-Mead at
    tol 1e-4 and stores the shapes as float32, hapexp polishes to the exact MLE
    (`test_beta_fit_is_the_exact_mle`); measured: shapes 4.7e-6, pval_beta 5.7e-5 apart."""
    d, genes, expr, cov, _ = _mixed_cohort()
    ref, perm_ix = _tensorqtl_map_cis(d, genes, expr, cov, nperm=1000, seed=11, monkeypatch=monkeypatch)
    _, top = scan_genes(d, _windowed(genes, 3000), expr, cov, permutation_ix=perm_ix)
    t = top.set_index("phenotype_id").loc[ref.index]
    assert (t["variant_id"] == ref["variant_id"]).all() and (t["num_var"] == ref["num_var"]).all()
    np.testing.assert_array_equal(t["pval_perm"].to_numpy(float), ref["pval_perm"].to_numpy(float))
    for col, rtol in [
        ("true_df", 1e-6),
        ("pval_true_df", 1e-6),
        ("beta_shape1", 2e-5),
        ("beta_shape2", 2e-5),
        ("pval_beta", 2e-4),
    ]:
        np.testing.assert_allclose(t[col].to_numpy(float), ref[col].to_numpy(float), rtol=rtol, err_msg=col)
    # the pass separates planted from null genes
    pb = t["pval_beta"].to_numpy(float)
    assert np.median(pb[1::2]) < 1e-3 and np.median(pb[::2]) > 0.05


def test_egene_thresholds_and_significant_pairs_match_tensorqtl(monkeypatch, tmp_path):
    """tensorQTL's calculate_qvalues (its own code; q-values from our R-exact qvalue, tested in
    test_qvalue.py, since rpy2/R are not a dependency) gives the same eGenes and the same
    pval_nominal_threshold per gene; get_significant_pairs on our nominal scan picks the same
    pairs as `significant_pairs`."""
    pytest.importorskip("tensorqtl", reason="tensorqtl not installed")
    from tensorqtl import post

    from hapexp.linear.egenes import egenes, significant_pairs
    from hapexp.linear.qvalue import qvalue

    d, genes, expr, cov, _ = _mixed_cohort(seed=8, n_genes=30)
    ref, perm_ix = _tensorqtl_map_cis(d, genes, expr, cov, nperm=1000, seed=3, monkeypatch=monkeypatch)
    monkeypatch.setattr(
        post,
        "rfunc",
        types.SimpleNamespace(qvalue=lambda p, lambda_qvalue=None: qvalue(np.asarray(p))[:2]),
        raising=False,
    )
    post.calculate_qvalues(ref, fdr=0.05, logger=_QuietLogger())
    nominal, top = scan_genes(d, _windowed(genes, 3000), expr, cov, permutation_ix=perm_ix)
    ours, summary = egenes(top, fdr=0.05)
    o = ours.set_index("phenotype_id").loc[ref.index]
    # q-values and thresholds inherit pval_beta's optimizer-tolerance difference (see above)
    np.testing.assert_allclose(o["qval"].to_numpy(float), ref["qval"].to_numpy(float), rtol=2e-4)
    np.testing.assert_array_equal(o["is_egene"].to_numpy(bool), (ref["qval"] <= 0.05).to_numpy())
    np.testing.assert_allclose(
        o["pval_nominal_threshold"].to_numpy(float), ref["pval_nominal_threshold"].to_numpy(float), rtol=2e-4
    )
    assert 10 <= summary["egenes"] < 30
    # significant pairs: tensorQTL's get_significant_pairs reads our nominal parquet
    nominal.to_parquet(tmp_path / "x.cis_qtl_pairs.chr1.parquet")
    sig = post.get_significant_pairs(ref, {"chr1": str(tmp_path / "x.cis_qtl_pairs.chr1.parquet")})
    mask = significant_pairs(nominal, ours)
    theirs = set(zip(sig["phenotype_id"], sig["variant_id"], strict=True))
    assert set(zip(nominal["phenotype_id"][mask], nominal["variant_id"][mask], strict=True)) == theirs
    assert len(theirs) >= 10


def test_permutations_seeded_per_gene():
    """Without given indices each gene draws its own permutations from (seed, gene id):
    deterministic, independent of the chunk the gene is in."""
    d, genes, expr, cov, _ = _mixed_cohort(seed=5, n_genes=6)
    g = _windowed(genes, 3000)
    _, a = scan_genes(d, g, expr, cov, permutations=200, seed=5)
    _, b = scan_genes(d, g.iloc[3:], expr, cov, permutations=200, seed=5)
    pd.testing.assert_frame_equal(a.iloc[3:].reset_index(drop=True), b.reset_index(drop=True))
    assert {"pval_perm", "pval_beta", "true_df", "beta_shape1"} <= set(a.columns)


def test_blocked_scan_equals_per_gene_association_and_ties_break_first():
    """scan_genes computes blocks of genes with one matrix product; every pair must equal the
    single-gene computation, also for windows that are not runs of rows (two chromosomes
    interleaved), and perfect-LD ties pick the first variant of the window."""
    d, genes, expr, cov, _ = _cohort(seed=6, n_genes=6, n_var=80)
    # variant 11 duplicates variant 10 with flipped alleles: r exactly opposite, r² tied
    d.dosage[11] = 2.0 - d.dosage[10]
    expr.loc["G0"] += 3.0 * d.dosage[11]  # the tied pair is G0's top (TSS 2000, variants at 5.5 kb)
    chrom = d.chrom.copy()
    chrom[3::9] = "chr2"  # chr1 windows are no longer runs of consecutive rows
    for dd in (d, Dosages(d.variant_id, chrom, d.pos, d.ref, d.alt, d.dosage, d.samples)):
        g = _windowed(genes, 6000)
        nominal, top = scan_genes(dd, g, expr, cov)
        res = Residualizer(cov.to_numpy().T)
        for row in g.itertuples():
            ix = dd.window_index("chr1", row.start0, row.end0)
            ref = nominal_association(dd.dosage[ix], expr.loc[row.gene_id].to_numpy(), res)
            got = nominal[nominal.phenotype_id == row.gene_id]
            assert list(got.variant_id) == list(dd.variant_id[ix])
            for col in ["r", "slope", "slope_se", "t", "pval_nominal"]:
                np.testing.assert_allclose(got[col], ref[col], rtol=1e-9, atol=1e-300, err_msg=col)
            t = top.set_index("phenotype_id").loc[row.gene_id]
            assert t.num_var == ix.size
            assert t.r**2 == pytest.approx(np.max(ref["r"] ** 2), rel=1e-12)
        assert top.set_index("phenotype_id").loc["G0", "variant_id"] == d.variant_id[10]
