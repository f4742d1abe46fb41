"""The causal-variant benchmark (hapexp.verdict.causal; AUROC/AUPRC, cluster bootstrap and
sign test in hapexp.stats): the statistics against scikit-learn and scipy, unresolved ISM
ranked as the smallest |ISM|, the matched variant set, the elastic-net baseline from a
PredictDB db, fine-tuned models on held-out genes, the demo's known truth end to end, and
external credible sets (rule external_finemap's function) on the demo: built from its
planted causal variants, matched, judged; another build an error."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from hapexp import stats
from hapexp.errors import InputError
from hapexp.linear.finemap import PIP_COLUMNS as PIP_COLUMNS_
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


# --------------------------------------------------------------------------- external credible sets
EQTL_CATALOGUE_HEADER = (
    "molecular_trait_id\tgene_id\tcs_id\tvariant\trsid\tcs_size\tpip\tpvalue\tbeta\tse\tz\tcs_min_r2\tregion"
)
GTEX_SUSIE_HEADER = (
    "chromosome\tstart\tend\tvariant\tvariant_hg38\tallele1\tallele2\tminor_allele\tcohort\tmethod\ttissue\t"
    "gene\tmaf\tbeta_marginal\tse_marginal\tz\tpip\tcs_id\tbeta_posterior\tsd_posterior"
)
DEMO_MODELS = ["oracle", "enformer_tiny"]


@pytest.fixture(scope="module")
def demo_cohort(tmp_path_factory, torch_one_thread):
    """The simulated demo at its own size (100 people, 30 genes; seed 7), normalized by
    bcftools as the workflow does, and the oracle's and a random-weights enformer_tiny's ISM
    (2,048 bp windows). Its truth.tsv lists the planted causal variants (1-based pos)."""
    import yaml

    from hapexp.engine import ism
    from hapexp.models.spec import model_spec
    from tests.simulated_cohort import simulated_index

    d = tmp_path_factory.mktemp("demo_external")
    index = simulated_index(d, 7)
    with open("config/config.yaml") as fh:
        cfg = yaml.safe_load(fh)["models"]
    for m in DEMO_MODELS:
        spec = model_spec({**cfg[m], **({"weights": str(d / "oracle.pt")} if m == "oracle" else {})}, m)
        ism.score_chunk(index, ism.make_readout(spec), spec, {"maf": 0.01}).to_parquet(d / f"{m}.parquet")
    return d


def _fasta_base(d, chrom: str, pos: int) -> str:
    import pysam

    with pysam.FastaFile(str(d / "reference.fa")) as fa:
        return fa.fetch(chrom, pos - 1, pos).upper()


def _external_inputs(d):
    """What the external credible sets are built from, independently of the code under test:
    the truth's causal variants (one credible set each), one listed non-causal variant per set
    from the oracle's in-window variants (PIP 0.03: neither positive nor negative), and rows
    that must not match: a position without a cohort variant (REF = the FASTA's base), a cohort
    variant's position with another ALT, a gene the cohort lacks."""
    truth = pd.read_csv(d / "truth.tsv", sep="\t")
    inwin = pd.read_parquet(d / "oracle.parquet")
    causal_ids = set(truth["variant_id"])
    decoys = []
    for gene_id, grp in truth.groupby("gene_id", sort=True):
        pool = inwin[(inwin["gene_id"] == gene_id) & ~inwin["variant_id"].isin(causal_ids)]
        decoys += [(gene_id, v) for v in pool["variant_id"].head(len(grp))]
    taken = set(inwin["pos"]) | set(truth["pos"])
    free = next(p for p in range(30_000, 40_000) if p not in taken)
    other = inwin[~inwin["variant_id"].isin(causal_ids)].iloc[-1]
    other_alt = next(b for b in "ACGT" if b not in (other["ref"], other["alt"]))
    return truth, decoys, free, other, other_alt


def _write_eqtl_catalogue(d, path, truth, decoys, free, other, other_alt):
    rows = [EQTL_CATALOGUE_HEADER]
    for k, t in enumerate(truth.itertuples(index=False)):
        cs = f"{t.gene_id}_L{k + 1}"
        rows.append(
            f"{t.gene_id}\t{t.gene_id}\t{cs}\t{t.variant_id}\trs{k}\t2\t0.95\t1e-9\t{t.effect}\t0.05\t8\t0.9\tx"
        )
        if k == 0:  # the same variant under a second rs id, as in the real files: read once
            rows.append(
                f"{t.gene_id}\t{t.gene_id}\t{cs}\t{t.variant_id}\trs9{k}\t2\t0.95\t1e-9\t{t.effect}\t0.05\t8\t0.9\tx"
            )
    for j, (gene_id, vid) in enumerate(decoys):
        rows.append(
            f"{gene_id}\t{gene_id}\t{gene_id}_L99\t{vid}\trs5{j}\t2\t0.03\t1e-3\t0.1\t0.05\t2\t0.9\tx"
        )
    g0 = truth["gene_id"].iloc[0]
    ref = _fasta_base(d, "chr1", free)
    alt = next(b for b in "ACGT" if b != ref)
    rows.append(f"{g0}\t{g0}\t{g0}_L98\tchr1_{free}_{ref}_{alt}\trs7\t1\t0.5\t1e-3\t0.1\t0.05\t2\t1\tx")
    rows.append(f"{other['gene_id']}\t{other['gene_id']}\t{other['gene_id']}_L97\t{other['chrom']}_{other['pos']}_"
                f"{other['ref']}_{other_alt}\trs8\t1\t0.5\t1e-3\t0.1\t0.05\t2\t1\tx")  # fmt: skip
    rows.append(
        "ENSG99999999999\tENSG99999999999\tENSG99999999999_L1\tchr1_1000_A_G\trs9\t1\t0.99\t1e-9\t1\t0.1\t9\t1\tx"
    )
    path.write_text("\n".join(rows) + "\n")
    return path


def _run_external(d, path, build, out, **source):
    from hapexp.linear.finemap import run_external_finemap

    policies = {"snv_only": False, "maf": 0.0, "missing": "ref", "unphased": "error"}
    run_external_finemap(
        credible_sets=path, vcf=d / "norm.bcf", genes=d / "genes.tsv", prepared=d / "expression.tsv",
        fasta=d / "reference.fa", pips=out / "external.parquet", facts=out / "external.json",
        source={"path": str(path), **source}, build=build, unit_tissue=None, window=10_000, models={},
        maf=0.01, policies=policies,
    )  # fmt: skip


def _benchmark(d, out, truth=True):
    paths = {k: out / "causal" / f"{k}.tsv" for k in ("table", "matched", "calibration", "headline")}
    return causal.run_causal_benchmark(
        pips=out / "external.parquet", pips_source=out / "external.json", ism=[d / f"{m}.parquet" for m in DEMO_MODELS],
        weights=None, genes_split=None, **paths, section=out / "causal" / "summary.md",
        curves=out / "figures" / "causal_curves.png", models=DEMO_MODELS, windows=dict.fromkeys(DEMO_MODELS, 2048),
        cfg={"bootstrap": 200}, truth=d / "truth.tsv" if truth else None,
    )  # fmt: skip


def test_external_credible_sets_on_the_demo(demo_cohort, tmp_path):
    """An eQTL Catalogue-layout file of the demo's planted causal variants, read with the
    cohort's build (GRCh38 here; the demo's FASTA holds its REF alleles), matched to the
    normalized BCF and judged by the benchmark: the match counts are the file's as built;
    the PIPs land on the eQTL scan's cis variants (unlisted ones PIP 0); the oracle ranks
    the truly causal variants far above the random model; the elastic net is not in-sample
    and sign agreement is not available (the file's beta is marginal), summary.md says so."""
    d = demo_cohort
    truth, decoys, free, other, other_alt = _external_inputs(d)
    path = _write_eqtl_catalogue(
        d, tmp_path / "QTD999999.credible_sets.tsv", truth, decoys, free, other, other_alt
    )
    _run_external(d, path, "GRCh38", tmp_path, format="auto")
    facts = json.loads((tmp_path / "external.json").read_text())
    n = len(truth) + len(decoys)
    c = facts["counts"]
    assert facts["format"] == "eqtl_catalogue" and facts["posterior"] is None
    assert "marginal" in facts["no_posterior"]
    assert (c["rows_read"], c["rows_other_genes"], c["rows"]) == (n + 3, 1, n + 2)
    assert (c["matched"], c["flipped"], c["unmatched"], c["unmatched_alleles"]) == (n, 0, 2, 1)
    pips = pd.read_parquet(tmp_path / "external.parquet")
    assert list(pips.columns[: len(PIP_COLUMNS_)]) == PIP_COLUMNS_
    listed = pips[pips["listed"]]
    # every listed variant is a file row with the file's PIP; everything else PIP 0
    want = {(t.gene_id, t.variant_id): 0.95 for t in truth.itertuples()} | {k: 0.03 for k in decoys}
    assert all(
        want[(g, v)] == p for g, v, p in zip(listed.phenotype_id, listed.variant_id, listed.pip, strict=True)
    )
    assert (pips.loc[~pips["listed"], "pip"] == 0).all() and pips.loc[~pips["listed"], "cs_id"].isna().all()
    assert c["rows_outside_cis"] == n - len(listed)  # rare variants (MAF < 0.01) are not cis variants here
    # the cis variants: every in-window variant the ISM holds for a written gene (±1,024 bp ⊂ ±10 kb)
    inwin = pd.read_parquet(d / "oracle.parquet")
    inwin = inwin[inwin["gene_id"].isin(set(pips["phenotype_id"]))]
    assert set(zip(inwin.gene_id, inwin.variant_id, strict=True)) <= set(
        zip(pips.phenotype_id, pips.variant_id, strict=True)
    )
    assert pips["af"].between(0, 1).all() and pips["posterior_mean"].isna().all()

    table = _benchmark(d, tmp_path)
    t = table.set_index("predictor")
    matched = pd.read_csv(tmp_path / "causal" / "matched.tsv", sep="\t")
    print(
        table[
            ["predictor", "n_positives", "n_negatives", "auroc", "auroc_lo", "auroc_hi", "note"]
        ].to_string()
    )
    n_pos = int(t.loc["oracle", "n_positives"])
    assert n_pos >= 10
    assert matched.loc[matched["label"] == 1, "causal_truth"].all()  # the positives are the planted variants
    assert not matched.loc[matched["label"] == 0, "causal_truth"].any()
    oracle, rand = t.loc["oracle"], t.loc["enformer_tiny"]
    assert oracle["auroc"] > 0.85 and oracle["auroc"] > rand["auroc"] + 0.2
    assert not t["in_sample"].any()
    signed = t.loc[["oracle", "enformer_tiny", "elasticnet"]]
    assert signed["sign_agreement"].isna().all() and signed["note"].str.contains("marginal").all()
    section = (tmp_path / "causal" / "summary.md").read_text()
    assert f"`{path}` (eqtl_catalogue, GRCh38" in section
    assert f"{n} of {n + 2} rows of the" in section and "2 unmatched, 1 of them" in section
    assert "Sign agreement: not available" in section and "(in-sample)" not in section


def _write_gtex_susie(path, truth, flip: str | None = None):
    """GTEx SuSiE release rows of the planted variants (beta_posterior = the planted effect
    per ALT) in two tissues; variant `flip` written with REF/ALT swapped and its effect
    negated (the file's effect allele is then the cohort's REF)."""
    rows = [GTEX_SUSIE_HEADER]
    for tissue in ("Lung", "Whole_Blood"):
        for k, t in enumerate(truth.itertuples(index=False)):
            ref, alt, effect = t.ref, t.alt, t.effect
            if t.variant_id == flip:
                ref, alt, effect = alt, ref, -effect
            vid = f"{t.chrom}_{t.pos}_{ref}_{alt}"
            pip = 0.97 if tissue == "Whole_Blood" else 0.5
            rows.append(
                f"{t.chrom}\t{t.pos - 1}\t{t.pos}\t{vid}\t{vid}_b38\t{ref}\t{alt}\t{alt}\tGTEx\tSUSIE\t{tissue}\t"
                f"{t.gene_id}\t0.2\t0.3\t0.05\t6\t{pip}\t{k + 1}\t{effect}\t0.05"
            )
    path.write_text("\n".join(rows) + "\n")
    return path


def test_external_posterior_effects_give_sign_agreement(demo_cohort, tmp_path):
    """A GTEx SuSiE-layout file (two tissues, one chosen by `tissue`) with the planted effects
    as beta_posterior, one variant written with REF/ALT swapped: matched in either
    orientation, the swapped one's effect turned back to the cohort's ALT, and the oracle's
    ISM agrees in sign with the planted effects (binomial p < 0.01)."""
    d = demo_cohort
    truth = pd.read_csv(d / "truth.tsv", sep="\t")
    # a planted SNV the benchmark scores (in the oracle's window, MAF >= 0.01) is the swapped one
    inwin = pd.read_parquet(d / "oracle.parquet")
    snv = truth[(truth["ref"].str.len() == 1) & (truth["alt"].str.len() == 1)]
    flip = snv.loc[snv["variant_id"].isin(inwin["variant_id"]), ["gene_id", "variant_id"]].iloc[0]
    path = _write_gtex_susie(tmp_path / "GTEx_49tissues_release1.tsv", truth, flip["variant_id"])
    with pytest.raises(InputError, match=r"holds 2 tissues \(Lung, Whole_Blood\)"):
        _run_external(d, path, "GRCh38", tmp_path / "no_tissue")
    _run_external(d, path, "GRCh38", tmp_path, format="gtex_susie", tissue="Whole_Blood")
    facts = json.loads((tmp_path / "external.json").read_text())
    assert facts["tissue"] == "Whole_Blood" and facts["method"] == "SUSIE"
    assert facts["posterior"] == "beta_posterior"
    assert (facts["counts"]["matched"], facts["counts"]["flipped"]) == (len(truth), 1)
    pips = pd.read_parquet(tmp_path / "external.parquet").set_index(["phenotype_id", "variant_id"])
    want = truth.set_index(["gene_id", "variant_id"])["effect"]
    got = pips.loc[pips["listed"], "posterior_mean"]
    np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy())  # per the cohort's ALT
    assert pips.loc[pips["flipped"]].index.tolist() == [tuple(flip)]
    assert (pips.loc[pips["listed"], "pip"] == 0.97).all()  # Whole_Blood's rows, not Lung's
    t = _benchmark(d, tmp_path, truth=False).set_index("predictor")
    oracle = t.loc["oracle"]
    assert oracle["n_sign"] >= 10 and oracle["sign_agreement"] >= 0.9 and oracle["sign_p"] < 0.01
    section = (tmp_path / "causal" / "summary.md").read_text()
    assert "gtex_susie, method SUSIE, tissue Whole_Blood, GRCh38" in section
    assert "posterior effect (`beta_posterior`" in section


@pytest.mark.parametrize(
    "labelled", ["eqtl_catalogue on a GRCh37 cohort", "GTEx _b37 ids on a GRCh38 cohort"]
)
def test_external_credible_sets_of_another_build_fail_and_write_nothing(demo_cohort, tmp_path, labelled):
    d = demo_cohort
    truth = pd.read_csv(d / "truth.tsv", sep="\t")
    if labelled.startswith("eqtl_catalogue"):
        truth_, decoys, free, other, other_alt = _external_inputs(d)
        path = _write_eqtl_catalogue(d, tmp_path / "QTD999999.credible_sets.tsv", truth_, decoys, free, other,
                                     other_alt)  # fmt: skip
        build, message = (
            "GRCh37",
            "the eQTL Catalogue's variants are on GRCh38, but the cohort's reference.build is GRCh37",
        )
    else:
        path = _write_gtex_susie(tmp_path / "GTEx_49tissues_release1.tsv", truth)
        path.write_text(path.read_text().replace("_b38", "_b37"))
        build, message = (
            "GRCh38",
            "variant ids end in _b37 on GRCh37, but the cohort's reference.build is GRCh38",
        )
    out = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(message)) as e:
        _run_external(d, path, build, out, tissue="Whole_Blood")
    assert (
        str(path) in str(e.value)
        and "line 2" in str(e.value)
        and "lift the credible sets over" in str(e.value)
    )
    assert not out.exists() or not any(out.iterdir())


def test_the_benchmark_reads_the_units_external_credible_sets(tmp_path):
    """The workflow parsed by Snakemake: a unit with `credible_sets` (its tissue's block, else
    its cohort's, with the schema's defaults) gets rule external_finemap's PIPs; one without
    keeps the in-cohort SuSiE's."""
    import yaml

    from tests.workflow_utils import REPO, parse_workflow

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = cfg["cohorts"]["demo"]
    cfg["cohorts"] = {
        "demo": {**demo, "credible_sets": {"path": "QTD000001.credible_sets.tsv.gz"}},
        "plain": demo,
        "tis": {
            "vcf": demo["vcf"],
            "credible_sets": {"path": "GTEx_v8_finemapping_DAPG.txt.gz", "format": "gtex_dapg"},
            "tissues": {
                "Lung": {"expression": demo["expression"], "credible_sets": {"path": "QTD000002.tsv.gz"}},
                "Whole_Blood": {"expression": demo["expression"]},
            },
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    units = ["demo", "plain", "tis/Lung", "tis/Whole_Blood"]
    got = parse_workflow(
        tmp_path,
        tmp_path / "config.yaml",
        {
            "pips": f"{{u: causal_pips(SimpleNamespace(unit=u)) for u in {units!r}}}",
            "source": f"{{u: credible_sets_source(SimpleNamespace(unit=u)) for u in {units[2:]!r}}}",
            "tissue": f"{{u: unit_tissue(SimpleNamespace(unit=u)) for u in {units!r}}}",
        },
    )
    ext = {u: {"pips": f"results/{u}/finemap/external.parquet", "pips_source": f"results/{u}/finemap/external.json"}
           for u in units}  # fmt: skip
    assert got["pips"] == {**ext, "plain": {"pips": "results/plain/finemap/pips.parquet"}}
    assert got["source"] == {
        "tis/Lung": {"path": "QTD000002.tsv.gz", "format": "auto", "method": "SUSIE", "tissue": None},
        "tis/Whole_Blood": {
            "path": "GTEx_v8_finemapping_DAPG.txt.gz",
            "format": "gtex_dapg",
            "method": "SUSIE",
            "tissue": None,
        },
    }
    assert got["tissue"] == {
        "demo": None,
        "plain": None,
        "tis/Lung": "Lung",
        "tis/Whole_Blood": "Whole_Blood",
    }
