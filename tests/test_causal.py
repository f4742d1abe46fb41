"""The causal-variant benchmark (hapexp.verdict.causal; AUROC/AUPRC, cluster bootstrap and
sign test in hapexp.stats): the statistics against scikit-learn and scipy, unresolved ISM
ranked as the smallest |ISM|, the matched variant set, the elastic-net baseline from a
PredictDB db, fine-tuned models on held-out genes, and the demo's known truth end to end."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from hapexp import stats
from hapexp.verdict import causal


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("seed", range(6))
def test_auroc_and_auprc_are_sklearns_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.uniform(size=n) < rng.uniform(0.05, 0.6)
    y[:2] = [True, False]
    s = np.round(rng.normal(size=n) + 0.7 * y, int(rng.integers(0, 2)))  # heavy ties
    assert len(np.unique(s)) < n
    assert stats.auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert stats.average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    fpr, tpr = stats.roc_points(s, y)
    f2, t2, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    assert np.trapezoid(tpr, fpr) == pytest.approx(stats.auroc(s, y), abs=1e-12)
    rec, prec = stats.pr_points(s, y)
    p2, r2, _ = precision_recall_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(rec, r2[::-1][1:])
    np.testing.assert_allclose(prec, p2[::-1][1:])


def test_auroc_undefined_without_both_classes_and_refuses_nan():
    assert math.isnan(stats.auroc([1, 2, 3], [0, 0, 0]))
    assert math.isnan(stats.average_precision([1, 2, 3], [0, 0, 0]))
    assert stats.average_precision([1, 2, 3], [1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        stats.auroc([1, np.nan], [0, 1])


def test_unresolved_ism_ranks_as_the_smallest_score_tied():
    """NaN → −inf: tied with each other below every resolved |ISM| — the same AUROC/AUPRC as
    putting them all at one value below the smallest resolved |ISM|; not the same as dropping."""
    rng = np.random.default_rng(3)
    score = rng.normal(size=200)
    y = rng.uniform(size=200) < 0.25
    score[rng.uniform(size=200) < 0.4] = np.nan
    r = causal.rank_scores(score)
    assert np.all(np.isneginf(r) == np.isnan(score)) and np.all(r[np.isfinite(r)] >= 0)
    stand_in = np.where(np.isnan(score), -1.0, np.abs(score))
    assert stats.auroc(r, y) == pytest.approx(roc_auc_score(y, stand_in), abs=1e-12)
    assert stats.average_precision(r, y) == pytest.approx(average_precision_score(y, stand_in), abs=1e-12)
    ok = ~np.isnan(score)
    assert stats.auroc(r, y) != pytest.approx(roc_auc_score(y[ok], np.abs(score[ok])), abs=1e-3)


def test_sign_test_is_scipys_binomtest():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=60), rng.normal(size=60)
    a[:5], b[5:8] = np.nan, 0.0  # left out
    n, k, frac, p = stats.sign_agreement_test(a, b)
    ok = np.isfinite(a) & (a != 0) & (b != 0)
    want_k = int(np.sum(np.sign(a[ok]) == np.sign(b[ok])))
    assert (n, k) == (int(ok.sum()), want_k) and frac == want_k / n
    assert p == pytest.approx(binomtest(want_k, n, 0.5).pvalue, rel=1e-12)
    assert stats.sign_agreement_test([np.nan], [1.0])[0] == 0


def _planted(rng, n_genes: int, d: float, pos_per_gene: int = 2, neg_per_gene: int = 10):
    gene, y, s = [], [], []
    for g in range(n_genes):
        gene += [f"G{g}"] * (pos_per_gene + neg_per_gene)
        y += [1] * pos_per_gene + [0] * neg_per_gene
        # a gene-level shift shared by its variants: genes are the resampling unit
        shift = rng.normal(scale=0.5)
        s += list(shift + rng.normal(size=pos_per_gene) + d) + list(shift + rng.normal(size=neg_per_gene))
    return np.array(gene), np.array(y, bool), np.array(s)


def test_gene_bootstrap_interval_covers_the_planted_auroc():
    """Positives' scores shifted by d: true AUROC Φ(d/√(2·(1 + ...))) ≈ measured on a huge draw;
    the 95 % gene-bootstrap interval covers it in ≥ 85 % of 40 small replicates."""
    rng = np.random.default_rng(11)
    d = 1.0
    g_big, y_big, s_big = _planted(rng, 4000, d)
    truth = stats.auroc(s_big, y_big)
    assert truth == pytest.approx(norm.cdf(d / math.sqrt(2)), abs=0.03)
    covered = 0
    for rep in range(40):
        g, y, s = _planted(rng, 30, d)
        reps = stats.cluster_bootstrap(
            g, lambda ix, s=s, y=y: stats.auroc(s[ix], y[ix]), 300, np.random.default_rng(rep)
        )
        lo, hi = stats.percentile_ci(reps, 0.95)
        assert lo <= stats.auroc(s, y) <= hi
        covered += lo <= truth <= hi
    assert covered >= 34, covered
    # a replicate resamples whole genes: each draw holds multiples of a gene's 12 variants
    sizes = []
    stats.cluster_bootstrap(g, lambda ix: sizes.append(len(ix)) or 0.0, 5, np.random.default_rng(0))
    assert all(n == 12 * 30 for n in sizes)


# --------------------------------------------------------------------------- the variant set
def _synthetic(rng, n_genes=12, per_gene=60):
    """PIPs and two models' ISM tables: model `big` sees ±1000 bp, model `small` ±400 bp."""
    pips, ism_big = [], []
    for g in range(n_genes):
        gid = f"G{g:02d}"
        dist = rng.integers(-1000, 1000, per_gene)
        dist = np.unique(dist)
        pos = 100_000 * (g + 1) + dist
        vid = [f"chr1_{p}_A_G" for p in pos]
        pip = rng.choice([0.001, 0.005, 0.05, 0.3, 0.95], len(pos), p=[0.5, 0.3, 0.1, 0.05, 0.05])
        af = rng.uniform(0.01, 0.99, len(pos))
        pips.append(pd.DataFrame({"phenotype_id": gid, "variant_id": vid, "pip": pip, "af": af, "cs_id": pd.NA,
                                  "posterior_mean": rng.normal(size=len(pos)), "posterior_sd": 0.1}))  # fmt: skip
        score = rng.normal(size=len(pos))
        score[rng.uniform(size=len(pos)) < 0.2] = np.nan
        ism_big.append(pd.DataFrame({"gene_id": gid, "variant_id": vid, "chrom": "chr1", "pos": pos, "ref": "A",
                                     "alt": "G", "af": af, "tss_distance": dist, "score": score}))  # fmt: skip
    pips = pd.concat(pips, ignore_index=True)
    big = pd.concat(ism_big, ignore_index=True)
    small = big[big["tss_distance"].between(-400, 399)].assign(score=lambda t: -2 * t["score"])
    return pips, {"big": big, "small": small}, {"big": 2000, "small": 800}


CFG = {"distance_bins": [0, 100, 200, 300, 400], "maf_bins": [0, 0.1, 0.3, 0.5], "negatives_per_positive": 3,
       "bootstrap": 50, "min_positives": 5}  # fmt: skip


def test_matching_respects_bins_ratio_windows_and_is_seeded():
    pips, ism, windows = _synthetic(np.random.default_rng(0))
    m, facts = causal.matched_set(pips, ism, windows, CFG)
    assert facts["window"] == 800
    # the common in-window set: the smaller model's window
    assert m["tss_distance"].between(-400, 399).all()
    pos, neg = m[m["label"] == 1], m[m["label"] == 0]
    assert (pos["pip"] >= 0.9).all() and (neg["pip"] < 0.01).all()
    assert len(pos) >= 10 and not neg["variant_id"].duplicated().any()  # a negative is used once
    by_pos = pos.set_index("variant_id")
    for vid, grp in neg.groupby("matched_to"):
        p = by_pos.loc[vid]
        assert len(grp) <= 3
        assert (grp["gene_id"] == p["gene_id"]).all()
        assert (grp["distance_bin"] == p["distance_bin"]).all()
        if (grp["matched_on"] == "distance+maf").all():
            assert (grp["maf_bin"] == p["maf_bin"]).all() and len(grp) == 3
    # bins are |distance| bins
    assert (
        m["distance_bin"] == np.searchsorted([0, 100, 200, 300, 400], m["tss_distance"].abs(), "right") - 1
    ).all()
    # positives of the data outside the common set are counted, not scored
    all_pos = pips[pips["pip"] >= 0.9]
    assert facts["positives_not_scored"] + len(pos) + facts["positives_unmatched"] == len(all_pos)
    # both models' scores ride along
    assert {"ism:big", "ism:small"} <= set(m.columns)
    # seeded: the same draws again; per gene: a subset of genes draws the same for its genes
    again, _ = causal.matched_set(pips, ism, windows, CFG)
    pd.testing.assert_frame_equal(m, again)
    other, _ = causal.matched_set(pips, ism, windows, {**CFG, "seed": 2})
    assert set(other["variant_id"]) != set(m["variant_id"])
    keep = sorted(m["gene_id"].unique())[:3]
    sub, _ = causal.matched_set(pips[pips["phenotype_id"].isin(keep)], ism, windows, CFG)
    pd.testing.assert_frame_equal(
        sub.reset_index(drop=True), m[m["gene_id"].isin(keep)].reset_index(drop=True)
    )


def test_elasticnet_weights_from_a_predictdb_db(tmp_path):
    from hapexp.linear.predictdb import read_predictdb_weights, varids, write_db

    pips, ism, windows = _synthetic(np.random.default_rng(0))
    m, facts = causal.matched_set(pips, ism, windows, CFG)
    pick = m.groupby("gene_id").head(2)
    w = pd.DataFrame({"gene": pick["gene_id"], "rsid": ".", "varID": varids(pick["chrom"], pick["pos"], pick["ref"],
                      pick["alt"], "GRCh38"), "ref_allele": "A", "eff_allele": "G",
                      "weight": np.linspace(-1, 1, len(pick))})  # fmt: skip
    extra = pd.DataFrame({"gene": sorted(set(pick["gene_id"])), "genename": "x", "gene_type": "NA",
                          "n.snps.in.model": 2, "pred.perf.R2": 0.1, "pred.perf.pval": 0.01, "pred.perf.qval": None})  # fmt: skip
    write_db(tmp_path / "w.db", w, extra, ["1"], 42, 100)
    got = causal.elasticnet_weights(m, read_predictdb_weights(tmp_path / "w.db"))
    want = pd.Series(0.0, index=m.index)
    want[pick.index] = w["weight"].to_numpy()
    np.testing.assert_allclose(got, want.to_numpy())
    table = causal.benchmark(m, ["big", "small"], read_predictdb_weights(tmp_path / "w.db"), CFG, facts)
    en = table.set_index("predictor").loc["elasticnet"]
    assert bool(en["in_sample"]) and en["kind"] == "baseline"


def test_benchmark_rows_minimum_and_finetuned_on_held_out_genes():
    pips, ism, windows = _synthetic(np.random.default_rng(0))
    m, facts = causal.matched_set(pips, ism, windows, CFG)
    genes = sorted(m["gene_id"].unique())
    held = genes[: len(genes) // 2]
    t = causal.benchmark(m, ["big", "small"], None, CFG, facts, finetuned=["small"], test_genes=held)
    assert list(t.columns) == causal.BENCHMARK_COLUMNS
    assert set(t.loc[t["genes"] == "all", "predictor"]) == {"big", "distance", "elasticnet"}  # not `small`
    assert set(t.loc[t["genes"] == "held_out", "predictor"]) == {"big", "small", "distance", "elasticnet"}
    h = t[t["genes"] == "held_out"].iloc[0]
    assert h["n_positives"] == int(m.loc[m["gene_id"].isin(held), "label"].sum())
    r = t.set_index(["predictor", "genes"]).loc[("big", "all")]
    ok = m["label"].to_numpy(bool)
    assert r["auroc"] == pytest.approx(stats.auroc(causal.rank_scores(m["ism:big"]), ok))
    assert r["auroc_lo"] <= r["auroc"] <= r["auroc_hi"]
    assert r["n_unresolved_positives"] == int((m["ism:big"].isna() & ok).sum())
    assert r["window"] == 800 and r["n_genes"] == len(genes)
    n, k, frac, p = stats.sign_agreement_test(m.loc[ok, "ism:big"], m.loc[ok, "posterior_mean"])
    assert (r["n_sign"], r["sign_agreement"], r["sign_p"]) == (n, frac, p)
    # the elastic net without a model: every weight 0, AUROC ½
    assert t.set_index(["predictor", "genes"]).loc[("elasticnet", "all"), "auroc"] == 0.5
    # below the minimum: no number, a reason
    few = causal.benchmark(m, ["big", "small"], None, {**CFG, "min_positives": 10_000}, facts)
    assert few["auroc"].isna().all() and few["auprc"].isna().all() and few["sign_agreement"].isna().all()
    assert few["note"].str.contains("fewer than 10000 positives").all()
    lines = causal.causal_markdown(t)
    assert any("TSS ± 400 bp" in x for x in lines) and any(
        x.startswith("| elasticnet (in-sample)") for x in lines
    )
    assert causal.causal_headline(t, "small")["causal_n_positives"] == h["n_positives"]


# --------------------------------------------------------------------------- the demo's truth
SIZES = {"n_individuals": 400, "n_chromosomes": 2, "chromosome_length": 1_000_000, "n_genes": 100}


@pytest.mark.long  # ~25 s: make test's budget
@pytest.mark.usefixtures("torch_one_thread")
def test_demo_truth_end_to_end(tmp_path):
    """The simulated demo, fine-mapped (SuSiE on the expression and covariates, cis window
    TSS ± 10 kb), the oracle's and a random-weights enformer_tiny's ISM, then the rule's entry
    point: PIP ≥ 0.9 variants are mostly truly causal, the oracle ranks them far above a
    random model and above ½, the random model stays near ½; the distance baseline printed.
    At the demo's own size (100 people, 30 genes) only ~10 variants reach PIP ≥ 0.9 and half
    of them find no negative in their distance bin: too few; 400 people and 100 genes give ~18."""
    import yaml

    from hapexp.engine import ism
    from hapexp.io import read_matrix
    from hapexp.linear.finemap import finemap_genes
    from hapexp.models.spec import model_spec
    from hapexp.variants.genotypes import cis_dosages
    from hapexp.variants.windows import resolve_window
    from tests.simulated_cohort import simulated_index

    t0 = time.time()
    d = tmp_path
    index = simulated_index(d, 7, **SIZES)
    expr = read_matrix(d / "expression.tsv")
    cov = pd.read_csv(d / "covariates.tsv", sep="\t", index_col=0)
    genes = pd.read_csv(d / "genes.tsv", sep="\t")
    policies = {"snv_only": False, "maf": 0.0, "missing": "ref", "unphased": "error"}
    dos, genes_w = cis_dosages(
        d / "norm.bcf", genes, resolve_window(10_000), list(expr.columns), 0.01, policies
    )
    pips, _ = finemap_genes(dos, genes_w, expr, cov)
    pips.to_parquet(d / "pips.parquet")
    with open("config/config.yaml") as fh:
        cfg = yaml.safe_load(fh)["models"]
    models = ["oracle", "enformer_tiny"]
    for m in models:
        spec = model_spec({**cfg[m], **({"weights": str(d / "oracle.pt")} if m == "oracle" else {})}, m)
        ism.score_chunk(index, ism.make_readout(spec), spec, {"maf": 0.01}).to_parquet(d / f"{m}.parquet")
    genes[["gene_id", "chrom"]].assign(
        split=np.where(np.arange(len(genes)) % 3 == 0, "test", "train")
    ).to_csv(d / "genes_split.tsv", sep="\t", index=False)
    out = {
        k: d / "causal" / f"{f}.tsv"
        for k, f in (
            ("table", "benchmark"),
            ("matched", "matched"),
            ("calibration", "calibration"),
            ("headline", "headline"),
        )
    }
    out["section"] = d / "causal" / "summary.md"
    table = causal.run_causal_benchmark(
        pips=d / "pips.parquet", ism=[d / f"{m}.parquet" for m in models], weights=None,
        genes_split=d / "genes_split.tsv", **out, curves=d / "figures" / "causal_curves.png",
        models=models, windows={m: 2048 for m in models}, finetuned=[], cfg={"bootstrap": 300},
        truth=d / "truth.tsv",
    )  # fmt: skip
    assert (d / "figures" / "causal_curves.png").stat().st_size > 0 and (
        d / "figures" / "causal_curves.pdf"
    ).exists()
    cal = pd.read_csv(out["calibration"], sep="\t")
    matched = pd.read_csv(out["matched"], sep="\t")
    t = table.set_index("predictor")
    truth = pd.read_csv(d / "truth.tsv", sep="\t")
    top = pips[pips["pip"] >= 0.9]
    frac = causal.truth_labels(top.rename(columns={"phenotype_id": "gene_id"}), truth).mean()
    print(f"\nPIP >= 0.9: {len(top)} variants, {frac:.3f} truly causal")
    print(cal.to_string())
    print(table[["predictor", "n_positives", "n_negatives", "n_genes", "auroc", "auroc_lo", "auroc_hi", "auprc",
                 "prevalence", "n_sign", "sign_agreement", "sign_p"]].to_string())  # fmt: skip
    print(f"elapsed {time.time() - t0:.1f} s")
    assert frac >= 0.8 and len(top) >= 15
    assert cal.iloc[-1]["fraction_causal"] == pytest.approx(frac)  # the last bin is PIP >= 0.9
    assert cal.iloc[0]["fraction_causal"] < 0.01  # PIP < 0.01: almost never causal
    n_pos = int(t.loc["oracle", "n_positives"])
    assert n_pos >= 10 and (t["n_positives"] == n_pos).all()
    assert matched.loc[matched["label"] == 1, "causal_truth"].mean() >= 0.8
    oracle, rand = t.loc["oracle"], t.loc["enformer_tiny"]
    assert oracle["auroc"] > 0.85 and oracle["auroc_lo"] > 0.6
    assert oracle["auroc"] > rand["auroc"] + 0.2
    assert abs(rand["auroc"] - 0.5) < 0.2
    assert oracle["auprc"] > 2 * oracle["prevalence"]
    # the oracle's ISM has the sign of the causal variants' SuSiE effects
    assert oracle["sign_agreement"] >= 0.9 and oracle["sign_p"] < 0.01
    assert np.isfinite(t.loc["distance", "auroc"])
    # what rule summary reads
    head = pd.read_csv(out["headline"], sep="\t").set_index("predictor")
    assert head.loc["oracle", "causal_auroc"] == pytest.approx(oracle["auroc"])
    assert list(head.columns) == causal.HEADLINE_COLUMNS
    section = out["section"].read_text()
    assert "TSS ± 1,024 bp" in section and "PIP calibration" in section
    assert t.loc["elasticnet", "auroc"] == 0.5  # no elastic net given: every weight 0


def test_no_positives_reports_nothing_and_draws_no_data(tmp_path):
    pips, ism, windows = _synthetic(np.random.default_rng(0))
    m, facts = causal.matched_set(pips.assign(pip=0.001), ism, windows, CFG)
    assert len(m) == 0 and list(m.columns[: len(causal.MATCHED_COLUMNS)]) == causal.MATCHED_COLUMNS
    t = causal.benchmark(m, ["big", "small"], None, CFG, facts)
    assert (t["n_positives"] == 0).all() and t["auroc"].isna().all()
    causal.curves_figure(m, t, ["big", "small"], None, tmp_path / "c.png")
    assert (tmp_path / "c.png").exists() and (tmp_path / "c.pdf").exists()
    empty, facts = causal.matched_set(pips, {k: v.iloc[0:0] for k, v in ism.items()}, windows, CFG)
    assert len(empty) == 0 and facts["positives_not_scored"] == int((pips["pip"] >= 0.9).sum())
