"""Concordance metrics on planted ISM / eQTL / dosage data with known answers."""

import numpy as np
import pandas as pd
import pytest

from hapexp.verdict import concordance as cc


def _tables(seed=0):
    rng = np.random.default_rng(seed)
    rows_ism, rows_eq = [], []
    for gene, sign in (("G_same", 1.0), ("G_flip", -1.0)):
        score = rng.normal(size=30)
        score[:3] = [3.0, -2.5, 2.0]  # the top-|ISM| variants
        slope = sign * 0.2 * score + 0.02 * rng.normal(size=30)
        p = np.where(np.abs(score) > 1.5, 1e-12, 0.5)
        for i in range(30):
            vid = f"{gene}_v{i}"
            rows_ism.append((gene, vid, "chr1", 1000 + i, "A", "G", 0.3, i * 10 - 100, score[i]))
            rows_eq.append((gene, vid, slope[i], p[i]))
    ism = pd.DataFrame(
        rows_ism,
        columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"],
    )
    eqtl = pd.DataFrame(rows_eq, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"])
    return ism, eqtl


def test_concordance_direction_and_support():
    ism, eqtl = _tables()
    table, drivers = cc.concordance(ism, eqtl, {"fdr": 0.05, "top_k": 3, "eqtl_significance": "bh_all_pairs"})
    t = table.set_index("gene_id")
    assert list(table.columns) == cc.CONCORDANCE_COLUMNS
    assert t.loc["G_same", "ism_eqtl_r"] > 0.95 and t.loc["G_flip", "ism_eqtl_r"] < -0.95
    assert t["ism_eqtl_p"].isna().all()  # no expression and dosages: no permutation p-value
    assert t.loc["G_same", "sign_agree_topk"] == 1.0 and t.loc["G_flip", "sign_agree_topk"] == 0.0
    assert t.loc["G_same", "supported_fraction"] == 1.0 and t.loc["G_flip", "supported_fraction"] == 0.0
    n_sig = int((ism[ism.gene_id == "G_same"]["score"].abs() > 1.5).sum())
    assert t.loc["G_same", "n_sig_eqtl"] == n_sig
    assert t.loc["G_same", "sign_agree_sig"] == 1.0
    assert t.loc["G_same", "ism_eqtl_r_sig"] > 0.95
    assert drivers.empty and (t["n_drivers"] == 0).all()  # no dosages given


def test_supported_fraction_counts_only_significant_same_sign():
    ism = pd.DataFrame(
        {
            "gene_id": "G",
            "variant_id": ["a", "b", "c", "d"],
            "score": [5.0, -4.0, 3.0, 0.1],
            "tss_distance": [1, 2, 3, 4],
        }
    )
    eqtl = pd.DataFrame(
        {
            "variant_id": ["a", "b", "c", "d"],
            "slope": [1.0, 1.0, 1.0, 1.0],
            "significant": [True, True, False, True],
        }
    )
    row, _ = cc.gene_concordance("G", ism, eqtl, top_k=3)
    # top-3: a (sig, same sign), b (sig, opposite), c (n.s., same sign) → 1/3 supported.
    assert row["supported_fraction"] == pytest.approx(1 / 3)
    assert row["sign_agree_topk"] == pytest.approx(2 / 3)
    assert row["sign_agree_sig"] == pytest.approx(2 / 3)


def test_forward_selection_finds_planted_drivers():
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(12, 200))
    target = feats[3] + feats[8] + 0.05 * rng.normal(size=200)
    chosen, rs = cc.forward_select_drivers(feats, target, target_r=0.99, max_drivers=5)
    assert chosen[:2] == [3, 8]
    assert rs[1] > 0.99 and len(chosen) == 2
    assert all(b >= a for a, b in zip(rs, rs[1:], strict=False))


def test_additive_approximation_and_drivers_with_dosages():
    rng = np.random.default_rng(6)
    samples = [f"S{i}" for i in range(80)]
    vids = [f"v{i}" for i in range(6)]
    dos = pd.DataFrame(rng.binomial(2, 0.4, size=(6, 80)).astype(float), index=vids, columns=samples)
    score = np.array([1.0, 0.0, -0.5, 0.0, 0.02, 0.0])
    ism = pd.DataFrame(
        {
            "gene_id": "G",
            "variant_id": vids,
            "score": score,
            "tss_distance": [-500, -10, 40, 90, 1000, 5],
            "chrom": "chr1",
            "pos": range(6),
        }
    )
    pred = pd.Series(score @ dos.to_numpy(), index=samples)
    eqtl = pd.DataFrame({"variant_id": vids, "slope": score, "significant": True})
    row, drivers = cc.gene_concordance("G", ism, eqtl, dosages=dos, prediction=pred, driver_target_r=0.999)
    assert row["additive_r"] == pytest.approx(1.0, abs=1e-12)
    assert list(drivers["variant_id"][:2]) == ["v0", "v2"]
    assert list(drivers["tss_distance"][:2]) == [-500, 40]
    assert row["driver_tss_distance"].startswith("-500;40")
    # A non-additive model (prediction unrelated to ISM × dosage) is detected.
    row2, _ = cc.gene_concordance(
        "G", ism, eqtl, dosages=dos, prediction=pd.Series(rng.normal(size=80), index=samples)
    )
    assert abs(row2["additive_r"]) < 0.4


def test_mark_significant_is_bh_over_all_tests():
    eqtl = pd.DataFrame({"pval_nominal": [0.2, 0.001, 0.036, 0.008, 0.5]})
    out = cc.mark_significant(eqtl, 0.05, method="bh_all_pairs")
    np.testing.assert_allclose(out["eqtl_fdr"], [0.25, 0.005, 0.06, 0.02, 0.5])
    # 0.036 < 0.05 nominally but not after BH.
    assert list(out["significant"]) == [False, True, False, True, False]


def test_model_agreement_separates_magnitude_from_direction():
    ism, _ = _tables()
    a = ism
    b = ism.assign(score=-ism["score"])
    c = ism.assign(score=ism["score"] * 3)
    t = cc.model_agreement({"a": a, "b": b, "c": c})
    ab = t[(t.model_a == "a") & (t.model_b == "b")]
    assert len(ab) == 2 and (ab["n"] == 30).all()
    np.testing.assert_allclose(ab["r_score"], -1.0)
    np.testing.assert_allclose(ab["r_magnitude"], 1.0)
    np.testing.assert_allclose(ab["sign_agreement"], 0.0)
    ac = t[(t.model_a == "a") & (t.model_b == "c")]
    np.testing.assert_allclose(ac["sign_agreement"], 1.0)


def test_permutation_significance_uses_egenes_and_their_thresholds():
    """GTEx: only eGenes' pairs, each below its own gene's nominal threshold (strict)."""
    eqtl = pd.DataFrame(
        {
            "phenotype_id": ["A", "A", "A", "B", "B"],
            "variant_id": ["a1", "a2", "a3", "b1", "b2"],
            "pval_nominal": [1e-8, 2e-5, 1e-4, 1e-12, 0.3],
        }
    )
    egenes = pd.DataFrame(
        {"phenotype_id": ["A", "B"], "is_egene": [True, False], "pval_nominal_threshold": [1e-4, 0.5]}
    )
    out = cc.mark_significant(eqtl, method="permutation", egenes=egenes)
    # a3 sits exactly at A's threshold (not below); B is no eGene however small its p
    assert out["significant"].tolist() == [True, True, False, False, False]
    with pytest.raises(ValueError, match="permutations"):
        cc.mark_significant(eqtl, method="permutation", egenes=None)


def test_unresolved_ism_is_excluded_and_counted_not_zero():
    """Unresolved scores (NaN) leave correlations, sign agreement, top-k and support exactly
    as if those variants had not been scored, and are counted; read as 0 they would have
    pulled the ISM-eQTL r towards 0 and entered the top k / agreement."""
    ism, eqtl = _tables()
    g = ism[ism.gene_id == "G_same"].copy()
    e = eqtl[eqtl.phenotype_id == "G_same"]
    unresolved = g.index[[5, 8, 11, 14, 20, 25]]
    g.loc[unresolved, "score"] = np.nan
    cfg = {"top_k": 3, "eqtl_significance": "bh_all_pairs"}
    t_nan, _ = cc.concordance(g, e, cfg)
    t_drop, _ = cc.concordance(g.drop(index=unresolved), e, cfg)
    row = t_nan.iloc[0]
    assert row["n_ism"] == 30 and row["n_ism_unresolved"] == 6 and row["n_shared"] == 24
    for col in ["ism_eqtl_r", "ism_eqtl_r_sig", "sign_agree_topk", "sign_agree_sig", "supported_fraction"]:
        assert row[col] == pytest.approx(t_drop.iloc[0][col], abs=1e-12), col
    ok = g["score"].notna().to_numpy()
    slope = e.set_index("variant_id").loc[g["variant_id"], "slope"].to_numpy()
    assert row["ism_eqtl_r"] == pytest.approx(
        np.corrcoef(g["score"].to_numpy()[ok], slope[ok])[0, 1], abs=1e-12
    )
    zero = cc.concordance(g.fillna({"score": 0.0}), e, cfg)[0].iloc[0]
    assert zero["n_ism_unresolved"] == 0 and zero["ism_eqtl_r"] != pytest.approx(row["ism_eqtl_r"], abs=1e-3)


def test_model_agreement_counts_only_variants_resolved_by_both():
    ism, _ = _tables()
    a = ism.copy()
    b = ism.assign(score=-ism["score"])
    a.loc[[0, 1], "score"] = np.nan  # unresolved in model a
    b.loc[[1, 2, 3], "score"] = np.nan  # unresolved in model b
    t = cc.model_agreement({"a": a, "b": b}).set_index("gene_id")
    # G_same holds rows 0..29: rows 0-3 unresolved in either model
    assert t.loc["G_same", "n"] == 26 and t.loc["G_same", "n_unresolved"] == 4
    assert t.loc["G_flip", "n"] == 30 and t.loc["G_flip", "n_unresolved"] == 0
    assert t.loc["G_same", "sign_agreement"] == 0.0 and t.loc["G_same", "r_score"] == pytest.approx(-1.0)
    # "both 0" would have agreed in sign: with NaN read as 0 the pairs (0, 0) never existed
    assert np.isfinite(t["r_magnitude"]).all()


def _ld_cohort(n_genes, n=120, blocks=3, per_block=8, seed=0, effect=0.0):
    """Genes whose variants sit in `blocks` strong LD blocks (each variant copies its block's
    founder allele, 3 % switched), ISM scores smooth along the window (a value per block +
    small noise), expression independent of genotype (`effect` 0) or driven by the
    variants with the ISM scores as effects; 2 covariates. Returns (ism, eqtl with OLS
    slopes from numpy's least squares, dosages per gene, expression, covariates)."""
    rng = np.random.default_rng(seed)
    people = [f"P{i:03d}" for i in range(n)]
    cov = pd.DataFrame(rng.normal(size=(2, n)), index=pd.Index(["c1", "c2"], name="id"), columns=people)
    rows_ism, rows_eq, dos, expr = [], [], {}, {}
    for k in range(n_genes):
        gene = f"G{k:03d}"
        founders = rng.random((blocks, n, 2)) < 0.4
        hap = np.repeat(founders, per_block, axis=0) ^ (rng.random((blocks * per_block, n, 2)) < 0.03)
        d = hap.sum(-1).astype(float)  # variants × people
        score = np.repeat(rng.normal(size=blocks), per_block) + 0.1 * rng.normal(size=blocks * per_block)
        y = effect * (score @ (d - d.mean(1, keepdims=True))) / np.sqrt(len(score)) + rng.normal(size=n)
        y = y + cov.to_numpy().T @ rng.normal(size=2)
        vids = [f"{gene}_v{i}" for i in range(len(score))]
        x0 = np.column_stack([np.ones(n), cov.to_numpy().T])
        for i, v in enumerate(vids):  # tensorQTL's slope: OLS y ~ 1 + covariates + g
            beta = np.linalg.lstsq(np.column_stack([x0, d[i]]), y, rcond=None)[0]
            rows_eq.append((gene, v, beta[-1], 0.5))
            rows_ism.append((gene, v, "chr1", 1000 + i, "A", "G", 0.3, i, score[i]))
        dos[gene] = pd.DataFrame(d, index=vids, columns=people)
        expr[gene] = y
    ism = pd.DataFrame(rows_ism, columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af",
                                          "tss_distance", "score"])  # fmt: skip
    eqtl = pd.DataFrame(rows_eq, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"])
    expression = pd.DataFrame.from_dict(expr, orient="index", columns=people)
    return ism, eqtl, dos, expression, cov


def test_ism_eqtl_p_is_calibrated_under_ld():
    """Null: expression independent of genotype, ISM scores unrelated to the slopes, but
    variants in 3 strong LD blocks and ISM smooth along the window (300 genes, 24
    variants each). The old t-test of r on the number of variants treats them as
    independent and rejects far too often; the permutation p-value (people permuted, LD
    kept) is uniform: ≈ 5 % below 0.05, half in each direction of r (binomial 99 %
    bounds), KS not rejected at 0.01. Its observed r is r(ISM, OLS slopes) (numpy lstsq)."""
    from scipy.stats import binom, kstest

    from hapexp import stats

    n_genes = 300
    ism, eqtl, dos, expression, cov = _ld_cohort(n_genes)
    res = stats.Residualizer(cov.to_numpy().T)
    rng = np.random.default_rng(7)
    slope = eqtl.set_index("variant_id")["slope"]
    p, r, old = np.empty(n_genes), np.empty(n_genes), np.empty(n_genes)
    for k, (gene, g) in enumerate(ism.groupby("gene_id", sort=True)):
        y = expression.loc[gene]
        perm = rng.permuted(np.tile(np.arange(len(y)), (400, 1)), axis=1)
        r[k], null = stats.slope_score_correlation(g["score"], dos[gene].to_numpy(), y, res, perm)
        p[k] = stats.permutation_pvalue(r[k], null)
        assert r[k] == pytest.approx(np.corrcoef(g["score"], slope[g["variant_id"]])[0, 1], abs=1e-10)
        old[k] = stats.r_pvalue(r[k], len(g))  # the old ism_eqtl_p
    assert np.mean(old < 0.05) > 0.25  # LD-blind: anti-conservative
    lo, hi = binom.ppf(0.005, n_genes, 0.05) / n_genes, binom.ppf(0.995, n_genes, 0.05) / n_genes
    assert lo <= np.mean(p < 0.05) <= hi
    lo, hi = binom.ppf(0.005, n_genes, 0.025) / n_genes, binom.ppf(0.995, n_genes, 0.025) / n_genes
    assert lo <= np.mean((p < 0.05) & (r > 0)) <= hi and lo <= np.mean((p < 0.05) & (r < 0)) <= hi
    assert kstest(p, "uniform").pvalue > 0.01


def test_concordance_ism_eqtl_p_by_permutation():
    """`concordance` computes ism_eqtl_p from the dosages and the expression (seeded per
    gene: the same p twice) and finds planted concordance (expression driven by the
    variants with the ISM scores as effects); NaN without permutations."""
    ism, eqtl, dos, expression, cov = _ld_cohort(20, effect=1.0, seed=5)
    cfg = {"eqtl_significance": "bh_all_pairs", "ism_eqtl_permutations": 200, "seed": 1}
    table, _ = cc.concordance(ism, eqtl, cfg, lambda g, v: dos[g], None, None, expression, cov)
    again, _ = cc.concordance(ism, eqtl, cfg, lambda g, v: dos[g], None, None, expression, cov)
    assert table["ism_eqtl_p"].equals(again["ism_eqtl_p"])
    assert np.mean(table["ism_eqtl_p"] < 0.05) >= 0.8 and (table["ism_eqtl_r"] > 0).mean() >= 0.9
    assert table["ism_eqtl_p"].min() == pytest.approx(1 / 201)
    off, _ = cc.concordance(ism, eqtl, {**cfg, "ism_eqtl_permutations": 0}, lambda g, v: dos[g], None, None,
                            expression, cov)  # fmt: skip
    assert off["ism_eqtl_p"].isna().all()


def test_headline_ism_eqtl_r_is_on_significant_pairs():
    """summary.tsv's `median_ism_eqtl_r` is the median of the per-gene r over significant eQTL
    pairs (`ism_eqtl_r_sig`, as the README says), not over every cis variant."""
    from hapexp.verdict.summary import build_summary

    ism, eqtl = _tables()
    # on significant pairs G_same's r is ≈ +1 and G_flip's ≈ −1 (median ≈ 0); the
    # all-variant r is set to 0.2 for both, so the two medians differ
    table, _ = cc.concordance(ism, eqtl, {"fdr": 0.05, "top_k": 3, "eqtl_significance": "bh_all_pairs"})
    table.loc[:, "ism_eqtl_r"] = [0.2, 0.2]
    perf = pd.DataFrame({"gene_id": ["G_same", "G_flip"], "predictor": "m", "pearson_r": [0.1, 0.2],
                         "spearman_r": [0.1, 0.2], "constant": False, "fdr": 0.5, "in_shared_set": True,
                         "fdr_shared": 0.5})  # fmt: skip
    s = build_summary(perf, pd.DataFrame(columns=["model"]), {"m": table}, ["m"])
    want = table["ism_eqtl_r_sig"].median()
    assert np.isfinite(want) and abs(want - 0.2) > 0.1
    assert (s["median_ism_eqtl_r"] == want).all()
    assert np.isnan(cc.ism_headline(None)["median_ism_eqtl_r"])


def _unchunked_concordance(
    ism, eqtl, egenes, predictions, bcf, table, drivers, cfg, prepared=None, covariates=None
):
    """The reference: rule concordance as it was before it was chunked (git 2db8ab7,
    `run_concordance`, verbatim but for the imports and its log lines): every gene in one call."""
    from hapexp.io import read_matrix, write_tsv

    ism = pd.read_parquet(ism)
    eqtl = pd.read_parquet(eqtl, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"])
    predictions = read_matrix(predictions)
    expression = read_matrix(prepared) if prepared else None
    cov = read_matrix(covariates, index_col="id") if covariates else None
    egenes = cc.read_egenes(egenes) if egenes else None
    people = list(predictions.columns)
    if expression is not None:
        people += [s for s in expression.columns if s not in set(people)]
    dosage_fn = cc.vcf_dosage_fn(bcf, people, ism) if len(ism) else None
    per_gene, driver_table = cc.concordance(ism, eqtl, cfg, dosage_fn, predictions, egenes, expression, cov)
    write_tsv(per_gene, table)
    write_tsv(driver_table, drivers)
    return per_gene


def _chunked_cohort(d, n_people=60, seed=4):
    """Nine genes in three chunks (the last chunk without ISM scores: an empty chunk), each
    with 12 variants in a phased VCF; ISM scores (some unresolved), eQTL pairs split per
    chunk and whole (one gene without pairs: NaN counts in one chunk only), eGenes,
    predictions driven by one variant (a lone driver) or by several (none for one gene), the
    prepared expression and covariates."""
    import pysam

    from hapexp.inputs.genes import write_chunks
    from hapexp.io import write_matrix, write_parquet, write_tsv

    rng = np.random.default_rng(seed)
    samples = [f"P{i:02d}" for i in range(n_people)]
    genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(9)], "chrom": ["chr1"] * 5 + ["chr2"] * 4,
                          "tss": [1000 + 500 * (i % 5) for i in range(9)], "strand": "+"})  # fmt: skip
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=10000>", "##contig=<ID=chr2,length=10000>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)]  # fmt: skip
    ism_rows, eq_rows, dos = [], [], {}
    for k, g in enumerate(genes.itertuples()):
        for v in range(12):
            pos = g.tss + 30 * v + 1
            haps = rng.random((n_people, 2)) < rng.uniform(0.15, 0.5)
            vid = f"{g.chrom}_{pos}_A_G"
            dos[vid] = haps.sum(1).astype(float)
            lines.append(
                f"{g.chrom}\t{pos}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(f"{a:d}|{b:d}" for a, b in haps)
            )
            score = np.nan if v % 5 == 4 else rng.normal()
            ism_rows.append((g.gene_id, vid, g.chrom, pos, "A", "G", 0.3, pos - g.tss, score))
            if k != 1:  # G1: no eQTL pairs
                eq_rows.append((g.gene_id, vid, rng.normal(), 10 ** -rng.uniform(0, 8)))
    (d / "c.vcf").write_text("\n".join(lines) + "\n")
    bcf = pysam.tabix_index(str(d / "c.vcf"), preset="vcf", force=True)
    cols = ["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"]
    ism = pd.DataFrame(ism_rows, columns=cols)
    ism = ism[~ism["gene_id"].isin(["G6", "G7", "G8"])].sample(frac=1.0, random_state=1)  # any order
    write_parquet(ism, d / "ism.parquet")
    eq = pd.DataFrame(eq_rows, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"])
    chunks = [d / f"{c:03d}.tsv" for c in range(3)]
    write_chunks(genes, chunks)
    for c in chunks:
        part = eq[eq["phenotype_id"].isin(pd.read_csv(c, sep="\t")["gene_id"])]
        write_parquet(part, d / f"{c.stem}.eqtl.parquet")
    write_parquet(eq, d / "nominal.parquet")
    write_tsv(pd.DataFrame({"phenotype_id": genes["gene_id"], "is_egene": [True, False] * 4 + [True],
                            "pval_nominal_threshold": 1e-3}), d / "egenes.tsv")  # fmt: skip
    ids = genes["gene_id"]
    pred = pd.DataFrame(rng.normal(size=(9, n_people)) * 0.01, index=ids, columns=samples)
    expr = pd.DataFrame(rng.normal(size=(9, n_people)), index=ids, columns=samples)
    by_gene = ism.groupby("gene_id")
    for g in ["G0", "G2", "G4"]:  # one variant drives the prediction: a lone driver
        vid = by_gene.get_group(g).dropna()["variant_id"].iloc[0]
        pred.loc[g] += dos[vid]
        expr.loc[g] += dos[vid]
    for g in ["G3", "G5"]:  # every resolved variant contributes: several drivers
        t = by_gene.get_group(g).dropna()
        pred.loc[g] += sum(s * dos[v] for v, s in zip(t["variant_id"], t["score"], strict=True))
    write_matrix(pred.drop("G1"), d / "pred.tsv")  # G1: no prediction, no drivers
    write_matrix(expr, d / "prepared.tsv")
    cov = pd.DataFrame(
        rng.normal(size=(2, n_people)), index=pd.Index(["c1", "c2"], name="id"), columns=samples
    )
    write_matrix(cov, d / "covariates.tsv", index_col="id")
    return bcf, chunks


@pytest.mark.parametrize("significance", ["permutation", "bh_all_pairs"])
def test_chunked_concordance_equals_the_unchunked_run_byte_for_byte(tmp_path, significance):
    """Rule concordance_chunk per chunk + rule concordance's gather write the same bytes as the
    rule before chunking (every gene in one job: `_unchunked_concordance`), with a lone driver
    beside genes without one, NaN counts in one chunk only and an empty chunk; under
    `bh_all_pairs` each chunk reads every pair of the scan (BH over all of them)."""
    d = tmp_path
    bcf, chunks = _chunked_cohort(d)
    cfg = {"ism_eqtl_permutations": 50, "seed": 3, "eqtl_significance": significance, "fdr": 0.05}
    files = dict(ism=d / "ism.parquet", egenes=d / "egenes.tsv", predictions=d / "pred.tsv", bcf=bcf, cfg=cfg,
                 prepared=d / "prepared.tsv", covariates=d / "covariates.tsv")  # fmt: skip
    _unchunked_concordance(
        eqtl=d / "nominal.parquet", table=d / "ref.tsv", drivers=d / "ref.drivers.tsv", **files
    )
    tables = [d / f"{c.stem}.conc.tsv" for c in chunks]
    drivers = [d / f"{c.stem}.drivers.tsv" for c in chunks]
    for c, t, dr in zip(chunks, tables, drivers, strict=True):
        eqtl = d / "nominal.parquet" if significance == "bh_all_pairs" else d / f"{c.stem}.eqtl.parquet"
        cc.run_concordance_chunk(eqtl=eqtl, chunk=c, table=t, drivers=dr, **files)
    cc.run_concordance(tables, drivers, d / "out.tsv", d / "out.drivers.tsv")
    assert (d / "out.tsv").read_bytes() == (d / "ref.tsv").read_bytes()
    assert (d / "out.drivers.tsv").read_bytes() == (d / "ref.drivers.tsv").read_bytes()
    # what the equality covers: the cases named above
    out = pd.read_csv(d / "out.tsv", sep="\t", dtype={"driver_tss_distance": str})
    assert list(out["gene_id"]) == [f"G{i}" for i in range(6)] and len(pd.read_csv(tables[2], sep="\t")) == 0
    assert out.set_index("gene_id").loc[["G0", "G2", "G4"], "n_drivers"].eq(1).all()
    assert (out["n_drivers"] == 0).any() and (out["n_drivers"] > 1).any()
    assert np.isnan(out.set_index("gene_id").loc["G1", "n_sig_eqtl"]) and out["ism_eqtl_p"].notna().sum() >= 4
