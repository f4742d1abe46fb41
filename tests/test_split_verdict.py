"""The verdict on the splits (hapexp.verdict.split_verdict): elastic net fitted on training people only,
judged on held-out people; null genes centred on 0, planted effects found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.variants.genotypes import Dosages
from hapexp.verdict.performance import cross_individual
from hapexp.verdict.split_verdict import (
    ELASTICNET,
    elasticnet_on_training_people,
    split_performance,
    summarize_splits,
)


def _cohort(n_people=300, n_genes=80, n_signal=20, seed=0):
    """Random genotypes, 20 variants per gene window; the first n_signal genes have 2 causal
    variants (h2 0.5), the rest pure noise. Genes alternate chromosomes (chr1 train, chr2 test)."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:03d}" for i in range(n_people)]
    per = 20
    af = rng.uniform(0.1, 0.5, n_genes * per)
    dos = rng.binomial(2, af[:, None], size=(n_genes * per, n_people)).astype(float)
    chrom = np.repeat(np.where(np.arange(n_genes) % 2 == 0, "chr1", "chr2"), per)
    pos = np.tile(np.arange(per) * 100 + 1, n_genes) + np.repeat(np.arange(n_genes) // 2 * 100_000, per)
    d = Dosages(np.array([f"v{i}" for i in range(len(af))]), chrom, pos, np.array(["A"] * len(af)),
                np.array(["G"] * len(af)), dos, samples)  # fmt: skip
    genes = pd.DataFrame({"gene_id": [f"G{i:03d}" for i in range(n_genes)],
                          "chrom": np.where(np.arange(n_genes) % 2 == 0, "chr1", "chr2")})  # fmt: skip
    genes["start0"] = np.arange(n_genes) // 2 * 100_000
    genes["end0"] = genes["start0"] + per * 100
    expr = rng.normal(size=(n_genes, n_people))
    for g in range(n_signal):
        x = dos[g * per : g * per + 2].sum(0)
        x = (x - x.mean()) / x.std()
        expr[g] = np.sqrt(0.5) * x + np.sqrt(0.5) * expr[g]
    expr = pd.DataFrame(expr, index=genes["gene_id"], columns=samples)
    perm = rng.permutation(samples)
    people = {"train": list(perm[:150]), "validation": list(perm[150:180]), "test": list(perm[180:])}
    split = genes[["gene_id", "chrom"]].assign(split=np.where(genes["chrom"] == "chr1", "train", "test"))
    return d, genes, expr, people, split


def test_elasticnet_on_training_people_null_centred_signal_found():
    d, genes, expr, people, split = _cohort()
    pred = elasticnet_on_training_people(d, genes, expr, people["train"], alpha=0.5, inner_folds=5, seed=1)
    # trained on training people only: their expression of the test people cannot leak in
    shuffled = expr.copy()
    shuffled.loc[:, people["test"]] = np.random.default_rng(9).normal(size=(len(expr), len(people["test"])))
    few = genes.iloc[:8]
    again = elasticnet_on_training_people(d, few, shuffled, people["train"], alpha=0.5, inner_folds=5, seed=1)
    pd.testing.assert_frame_equal(pred.iloc[:8], again)
    perf = split_performance(expr, {ELASTICNET: pred}, people, split)
    assert (perf["n"] == len(people["test"])).all()
    r = perf.set_index("gene_id")["pearson_r"]
    signal, null = r.iloc[:20], r.iloc[20:]
    assert signal.mean() > 0.5  # planted h2 0.5 -> r ~ 0.7 at most
    tested_null = null.dropna()
    assert len(tested_null) >= 20
    # null genes: centred on 0 (r sd ~ 1/sqrt(120) = 0.09 per gene)
    assert abs(tested_null.mean()) < 3 * 0.092 / np.sqrt(len(tested_null))
    # the same numbers as performance.cross_individual on the test people (reused, not re-derived)
    ref = cross_individual(expr.loc[:, people["test"]], {ELASTICNET: pred.loc[:, people["test"]]})
    np.testing.assert_allclose(perf["pearson_r"], ref["pearson_r"], rtol=1e-12)


def test_summary_per_gene_split_on_the_shared_set():
    d, genes, expr, people, split = _cohort(n_people=200, n_genes=40, n_signal=40)
    rng = np.random.default_rng(3)
    oracle = expr + 0.1 * rng.normal(size=expr.shape)  # knows every gene
    noise = pd.DataFrame(rng.normal(size=expr.shape), index=expr.index, columns=expr.columns)
    perf = split_performance(expr, {"oracle": oracle, "noise": noise}, people, split)
    s = summarize_splits(perf).set_index(["predictor", "gene_split"])
    assert s.loc[("oracle", "train"), "n_genes"] == 20 and s.loc[("oracle", "test"), "n_genes"] == 20
    assert s.loc[("oracle", "test"), "mean_r"] > 0.95
    assert abs(s.loc[("noise", "test"), "mean_r"]) < 0.1
    assert (s["n_people"] == len(people["test"])).all()


def test_markdown_table_rows():
    from hapexp.verdict.split_verdict import markdown

    s = pd.DataFrame({"predictor": ["a", "a", "b"], "gene_split": ["train", "test", "train"],
                      "n_people": 10, "n_genes": [4, 3, 4], "mean_r": [0.5, 0.25, 0.125],
                      "median_r": 0.0, "n_significant": 0})  # fmt: skip
    lines = markdown(s, {"train": ["x"] * 5, "validation": ["y"], "test": ["z"] * 10})
    assert "| a | 4 | 0.500 | 3 | 0.250 |" in lines
    assert "| b | 4 | 0.125 | 0 | – |" in lines
    assert any(line.startswith("10 test people") for line in lines)
    assert not any("Fine-tuned" in line for line in lines)
    assert any(
        line.startswith("Fine-tuned on this cohort's training people: a.")
        for line in markdown(s, {"train": [], "validation": [], "test": []}, ["a"])
    )


def test_concordance_before_after_uses_the_same_genes_per_split():
    """Medians over the genes where both the fine-tuned model and the model it started from
    have an ISM–eQTL r on significant eQTL pairs, per gene split — the significant pairs'
    r and sign agreement, not every cis variant's (`ism_eqtl_r`, `sign_agree_topk` here
    differ on purpose); a model started from its own initialisation gets a line saying
    what to set, not numbers."""
    from hapexp.verdict.split_verdict import concordance_before_after, concordance_markdown

    def conc(r, sign, sup):
        return pd.DataFrame({"gene_id": list("abcde"), "ism_eqtl_r_sig": r, "sign_agree_sig": sign,
                             "supported_fraction": sup, "ism_eqtl_r": -9.0, "sign_agree_topk": -9.0})  # fmt: skip

    before = conc([0.1, np.nan, 0.3, -0.2, 0.5], [0.5, 0.5, 1.0, 0.0, 1.0], [0.0, 0.0, 0.5, 0.0, 1.0])
    after = conc([0.4, 0.9, np.nan, 0.2, 0.7], [1.0, 1.0, 1.0, 0.5, 1.0], [0.5, 1.0, 1.0, 0.5, 1.0])
    # every cis variant's r exists for every gene: it must not widen the gene set
    split = {"train": list("abc"), "test": list("de")}
    t = concordance_before_after({"base": before, "ft": after}, {"ft": "base", "own": None}, split)
    tr, te = t.set_index("gene_split").loc["train"], t.set_index("gene_split").loc["test"]
    # training genes: only a (b lacks a significant-pair r before, c after); held-out: d and e
    assert tr["n_genes"] == 1 and tr["ism_eqtl_r_sig_before"] == 0.1 and tr["ism_eqtl_r_sig_after"] == 0.4
    assert te["n_genes"] == 2 and te["ism_eqtl_r_sig_before"] == pytest.approx(0.15, abs=1e-12)
    assert te["ism_eqtl_r_sig_after"] == pytest.approx(0.45, abs=1e-12)
    assert te["sign_agree_sig_before"] == 0.5 and te["supported_fraction_after"] == 0.75
    md = "\n".join(concordance_markdown(t, {"ft": "base", "own": None}))
    assert "| ft | base | held-out | 2 | 0.150 → 0.450 | 0.500 → 0.750 | 0.500 → 0.750 |" in md
    assert "significant eQTL pairs" in md and "-9" not in md
    assert "| own | (its own random initialisation" in md


def test_split_verdict_floors_one_rule_per_precision():
    """The split verdict gives the training-people elastic net and the heads (float64
    arithmetic) the main elastic net's floor, as `performance` does: a prediction varying by
    1e-9 of its level (float64 resolves it; the old default, fp32's 1e-6, called it
    constant) is tested for all three alike."""
    from hapexp.verdict.performance import LINEAR_FLOOR, resolve_floors

    rng = np.random.default_rng(0)
    people = [f"S{i:02d}" for i in range(60)]
    expr = pd.DataFrame(rng.normal(size=(1, 60)), index=["g"], columns=people)
    tiny = pd.DataFrame(100 + 1e-7 * rng.normal(size=(1, 60)), index=["g"], columns=people)
    preds = {"elasticnet": tiny, ELASTICNET: tiny, "m_head_gene": tiny, "m_head_crossgene": tiny}
    floors = resolve_floors({}, [], preds)
    assert set(floors.values()) == {LINEAR_FLOOR}
    split = pd.DataFrame({"gene_id": ["g"], "split": ["test"]})
    ppl = {"train": [], "validation": [], "test": people}
    perf = split_performance(expr, preds, ppl, split, None, floors)
    assert not perf["constant"].any() and perf["pearson_r"].notna().all()


def test_per_gene_models_are_labelled_in_the_split_tables():
    """The elastic net on the training people and the per-gene heads are fitted on every gene,
    the held-out ones included: verdict.tsv says so (`per_gene_model`) and the markdown labels
    their rows and explains the label; a model that never saw the held-out genes is not labelled."""
    from hapexp.verdict.split_verdict import PER_GENE_NOTE, markdown

    d, genes, expr, people, split = _cohort(n_people=240, n_genes=20, n_signal=20)
    rng = np.random.default_rng(4)
    preds = {name: expr + rng.normal(size=expr.shape) for name in ("deep", "deep_head_gene", ELASTICNET)}
    perf = split_performance(expr, preds, people, split)
    s = summarize_splits(perf, per_gene=[ELASTICNET, "deep_head_gene"])
    flags = s.groupby("predictor")["per_gene_model"].all()
    assert flags.to_dict() == {"deep": False, "deep_head_gene": True, ELASTICNET: True}
    lines = markdown(s, people)
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in lines if ln.startswith("| ") and "---" not in ln}
    assert f"{ELASTICNET} (per-gene model †)" in rows and "deep_head_gene (per-gene model †)" in rows
    assert "deep" in rows and "deep (per-gene model †)" not in rows
    assert PER_GENE_NOTE in lines and "held-out genes included" in PER_GENE_NOTE
    # a table without per-gene models carries no note
    assert PER_GENE_NOTE not in markdown(s[s["predictor"] == "deep"], people)
