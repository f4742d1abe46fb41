"""End to end: the two-tissue demo (config/demo_tissues.yaml, issue 21).

The simulation drives tissue_a by one motif set and tissue_b by another, and the oracle
exposes one track per tissue (hapexp.demo, test_simulate_tissues.py): the truth is that
each tissue's own oracle track predicts it and the other does not. Checked here against
that truth and by the DAG: predictions and ISM run once for both tissues, one split of
people serves both, and a model fine-tuned on tissue_a is judged in both tissues.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.workflow_utils import REPO, run_snakemake

pytestmark = pytest.mark.long

COHORT = "demo_tissues"
TISSUES = ["tissue_a", "tissue_b"]


@pytest.fixture(scope="module")
def tissues_demo(tmp_path_factory):
    """config/demo_tissues.yaml as it is, but for CI's time: no permuted-expression check
    and a 3 × 3 nested CV (as the small demo; nothing asserted here depends on them)."""
    d = tmp_path_factory.mktemp("tissues_demo")
    cfg = yaml.safe_load((REPO / "config/demo_tissues.yaml").read_text())
    cfg["null_check"]["enabled"] = False
    cfg["elasticnet"].update(outer_folds=3, inner_folds=3)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(d, "--configfile", "config.yaml")
    return d


def _job_counts(workdir, configfile=REPO / "config/demo_tissues.yaml") -> dict[str, int]:
    """Snakemake's job table of a dry run in an empty directory (every job of the DAG)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--configfile",
           str(configfile), "-d", str(workdir)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    table = out[out.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_predict_and_ism_run_once_for_both_tissues(tmp_path):
    cfg = yaml.safe_load((REPO / "config/demo_tissues.yaml").read_text())
    n_models, n_chunks = len(cfg["models"]), int(cfg["genes"]["chunks"])
    jobs = _job_counts(tmp_path)
    # genotype-level work: once per cohort (not per tissue)
    assert jobs["predict"] == n_models * n_chunks and jobs["ism"] == n_models * n_chunks
    assert jobs["haplotypes"] == n_chunks and jobs["normalize_variants"] == 1 and jobs["splits"] == 1
    # per-tissue stages: once per tissue
    for rule in ("prepare_expression", "performance", "split_verdict", "summary", "track_heads", "null_check"):
        assert jobs[rule] == 2, rule
    assert jobs["eqtl"] == jobs["elasticnet"] == 2 * n_chunks
    # the per-gene fits of the split verdict and of the heads: per tissue x chunk (x model)
    assert jobs["split_verdict_elasticnet"] == 2 * n_chunks
    assert jobs["track_heads_gene"] == 2 * len(cfg["heads"]) * n_chunks
    assert jobs["concordance_chunk"] == 2 * n_models * n_chunks and jobs["concordance"] == 2 * n_models
    # each tissue's view of the one run; one fine-tuning (on tissue_a)
    assert jobs["tissue_predictions"] == jobs["tissue_ism"] == 2 * n_models
    assert jobs["finetune"] == 1 and jobs["tissue_summary"] == 1


def test_finetuning_on_every_tissue_is_one_job(tmp_path):
    """finetune.cohort naming the cohort: one rule finetune_tissues job reads every tissue's
    split-aware expression; predict loads its weights (the cohort-level path)."""
    cfg = yaml.safe_load((REPO / "config/demo_tissues.yaml").read_text())
    cfg["models"]["enformer_tiny_ft"]["finetune"]["cohort"] = COHORT
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    jobs = _job_counts(tmp_path / "w", tmp_path / "c.yaml")
    assert jobs["finetune_tissues"] == 1 and "finetune" not in jobs
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "-p", "--configfile",
           str(tmp_path / "c.yaml"), "-d", str(tmp_path / "w"), "--forceall"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    block = out[out.index("rule finetune_tissues:") :].split("\n\n")[0]
    for t in TISSUES:
        assert f"results/{COHORT}/{t}/expression/prepared_split.tsv" in block
    assert f"results/{COHORT}/finetune/enformer_tiny_ft/weights.pt" in block


def test_each_tissues_own_oracle_track_beats_the_others(tissues_demo):
    res = tissues_demo / "results" / COHORT
    matched = pd.read_csv(res / "tissues/matched.tsv", sep="\t")
    oracle = matched[matched["model"] == "oracle"].set_index("tissue")
    assert sorted(oracle.index) == TISSUES
    for t in TISSUES:
        r = oracle.loc[t]
        print(f"{t}: oracle own track mean r {r['mean_r_matched']:.3f}, other tissue's track "
              f"{r['mean_r_mismatched']:.3f}; genes better with own {r['n_matched_better']}, "
              f"with other {r['n_mismatched_better']} of {r['genes']}")  # fmt: skip
        assert r["mean_r_matched"] > r["mean_r_mismatched"] + 0.2
        assert r["n_matched_better"] >= 3 and r["n_mismatched_better"] == 0
    # against the simulation's truth (independent of the workflow): each tissue's view of the
    # oracle is the tissue's noiseless genetic value on the genes where that tissue is causal
    sim = tissues_demo / "resources" / COHORT
    for k, t in enumerate(TISSUES):
        view = pd.read_csv(res / t / "predict/oracle.matrix.tsv", sep="\t", index_col=0)
        truth = pd.read_csv(sim / f"expression_noiseless_{t}.tsv", sep="\t", index_col=0)
        causal = pd.read_csv(sim / f"truth_genes_{t}.tsv", sep="\t")
        genes = [g for g in causal.loc[causal["h2"] > 0, "gene_id"] if g in view.index]
        people = [p for p in truth.columns if p in view.columns]
        assert len(genes) >= 5 and len(people) >= 80
        r = [np.corrcoef(view.loc[g, people], truth.loc[g, people])[0, 1] for g in genes]
        assert min(r) > 0.999, (t, r)
        other = TISSUES[1 - k]
        ov = pd.read_csv(res / other / "predict/oracle.matrix.tsv", sep="\t", index_col=0)
        sd_other = ov.loc[genes, people].std(axis=1) / view.loc[genes, people].std(axis=1)
        assert (sd_other < 0.5).mean() >= 0.5  # the other tissue's track barely moves on most of them


def test_one_split_shared_by_both_tissues(tissues_demo):
    res = tissues_demo / "results" / COHORT
    ind = pd.read_csv(res / "splits/individuals.tsv", sep="\t").set_index("sample")["split"]
    sheet = pd.read_csv(tissues_demo / "resources" / COHORT / "samples.tsv", sep="\t").set_index("sample")
    counts = pd.read_csv(res / "splits/tissues.tsv", sep="\t").set_index("tissue")
    for t in TISSUES:
        people = list(pd.read_csv(res / t / "expression/prepared.tsv", sep="\t", index_col=0).columns)
        split_people = list(pd.read_csv(res / t / "expression/prepared_split.tsv", sep="\t", index_col=0).columns)
        # every tissue's people are split once, in the cohort's table, and only its own people are used
        assert set(split_people) == set(people) and set(people) <= set(ind.index)
        got = ind[people].value_counts()
        assert [counts.loc[t, k] for k in ("people", "train", "validation", "test")] == [
            len(people), got["train"], got["validation"], got["test"]]  # fmt: skip
        # the split verdict of this tissue is on the cohort's test people it has
        perf = pd.read_csv(res / t / "splits/performance.tsv", sep="\t")
        assert perf["n"].max() == got["test"]
    # stratified: each sex keeps about its share of test people (±1 per stratum of tissues × sex)
    n_test = ind[sheet.index].eq("test").groupby(sheet["sex"]).sum()
    n_all = sheet["sex"].value_counts()
    assert ((n_test - 0.25 * n_all).abs() <= 2).all(), (n_test, n_all)


def test_finetuned_on_one_tissue_is_judged_in_both(tissues_demo):
    res = tissues_demo / "results" / COHORT
    assert (res / "tissue_a/finetune/enformer_tiny_ft/weights.pt").exists()
    assert not (res / "tissue_b/finetune").exists()
    for t in TISSUES:
        verdict = pd.read_csv(res / t / "splits/verdict.tsv", sep="\t")
        assert "enformer_tiny_ft" in set(verdict["predictor"]), t
        md = (res / t / "summary.md").read_text()
        assert "enformer_tiny_ft" in md
    table = pd.read_csv(res / "tissues.tsv", sep="\t")
    assert "enformer_tiny_ft" not in set(table["predictor"])  # out of the all-people table
    assert set(table["tissue"]) == set(TISSUES) and set(table["gene_set"]) == {"shared", "common"}
    md = (res / "summary.md").read_text()
    assert "Tissue × predictor" in md and "Own tracks vs other tissues' tracks" in md
    assert (res / "figures/tissues_mean_r.png").stat().st_size > 1000
