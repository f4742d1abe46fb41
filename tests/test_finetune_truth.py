"""Known truth for fine-tuning (issue 16): enformer_tiny from random weights, trained on the
training people × training chromosome of a simulated cohort, judged on held-out people.

Two expressions over the same genomes:
- shared motifs: the simulator's noiseless genetic values (the oracle's output): a model
  that learns the motifs predicts held-out people of the genes it was trained on;
- gene-specific: per gene, up to two SNVs (MAF > 5%) near the TSS with effects of random sign (no
  motif, no rule shared between genes): on held-out genes the fine-tuned model's r is
  centred on 0 by the symmetry of the draw — the literature's finding on known truth.

Bounds reached on the development machine (2-core x86, torch 2.13 CPU, one thread) and
the asserted ones are in the test bodies; each run prints its numbers (pytest -s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.models.spec import model_spec
from hapexp.training.data import GeneSource
from hapexp.training.finetune import Trainer, resolve, start_model, validation_r

W = 1024
SPEC = {"kind": "enformer_tiny", "hparams": {"dim": 24, "heads": 2, "attn_dim_key": 12}, "seed": 0, "window": W,
        "tracks": [0], "bins": 2, "batch_size": 64, "device": "cpu", "precision": "fp32"}  # fmt: skip
TRAIN = {"epochs": 12, "lr": 3e-3, "people_per_step": 56, "dropout": False, "progress": False, "patience": 12}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """100 people, 60 genes on 6 chromosomes (window 1024); people 56/16/28, genes chr1 / chr2-6."""
    from hapexp.demo.simulate import simulate_demo
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    d = tmp_path_factory.mktemp("truth")
    simulate_demo(d, seed=5, n_individuals=100, n_chromosomes=6, chromosome_length=60000, n_genes=60,
                  window=W, zero_h2_fraction=0.0)  # fmt: skip
    genes = pd.read_csv(d / "genes.tsv", sep="\t", dtype={"gene_id": str, "chrom": str})
    normalize([str(d / "cohort.vcf.gz")], d / "reference.fa", d / "norm.bcf")
    build_index(d / "norm.bcf", d / "reference.fa", genes, W, d / "idx.npz")
    idx = HaplotypeIndex.load(d / "idx.npz")
    samples = list(map(str, idx.samples))
    perm = list(np.random.default_rng(0).permutation(samples))
    people = {"train": perm[:56], "validation": perm[56:72], "test": perm[72:]}
    return d, idx, genes, people


def planted_expression(d, genes: pd.DataFrame, samples: list[str]) -> pd.DataFrame:
    """Gene-specific truth: up to two SNVs (MAF > 5%) within 450 bp of each TSS, effects ±1 (seeded)."""
    from hapexp.variants.genotypes import read_dosages

    rng = np.random.default_rng(11)
    rows = {}
    for g in genes.itertuples():
        dos = read_dosages(d / "norm.bcf", [(g.chrom, g.tss - 451, g.tss + 450)], samples)
        af = dos.dosage.mean(1) / 2
        snv = np.array([len(r) == 1 and len(a) == 1 for r, a in zip(dos.ref, dos.alt, strict=True)], bool)
        ok = np.flatnonzero(snv & (af > 0.05) & (af < 0.95))
        if not len(ok):
            continue
        pick = rng.choice(ok, min(2, len(ok)), replace=False)
        rows[g.gene_id] = rng.choice([-1.0, 1.0], len(pick)) @ dos.dosage[pick]
    return pd.DataFrame(rows, index=samples).T


def fit_and_judge(idx, expr, genes, people, tag):
    expr = expr[expr.loc[:, people["train"]].std(axis=1) > 1e-6]
    by_chrom = genes.set_index("gene_id")["chrom"]
    split = {"train": [g for g in expr.index if by_chrom[g] == "chr1"],
             "test": [g for g in expr.index if by_chrom[g] != "chr1"]}  # fmt: skip
    spec = model_spec(SPEC, "tiny_ft")
    src = GeneSource([idx], W, True)
    tr = Trainer(spec, resolve(TRAIN), start_model(spec, None))

    def judge():
        tr.module.eval()
        return {k: validation_r(tr.predictor, src, expr, split[k], people["test"]) for k in ("train", "test")}

    before = judge()
    out = tr.fit(src, expr, people, split, tr_path(tag), "truth")
    tr.module.load_state_dict(out["best_model"])
    after = judge()
    print(f"\n{tag}: {len(split['train'])} training / {len(split['test'])} held-out genes; held-out people "
          f"r before {before}, after {after}; validation r per epoch "
          f"{[round(h['validation_r'], 3) for h in out['history']]}")  # fmt: skip
    return before, after, split


def tr_path(tag):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / f"{tag}.pt"


@pytest.mark.long  # make test's 15-min budget
def test_shared_motifs_learned_on_training_genes(cohort, torch_one_thread):
    d, idx, genes, people = cohort
    from hapexp.io import read_matrix

    expr = read_matrix(d / "expression_noiseless.tsv")
    before, after, _ = fit_and_judge(idx, expr, genes, people, "shared")
    # Reached (fine-tuning seeds 0-3): mean r on held-out people of the 10 training genes
    # -0.18 untrained, 0.80-0.88 fine-tuned (the oracle: 1, noiseless truth); on the 47
    # held-out genes -0.03 untrained, -0.17..0.14 fine-tuned: at this budget the tiny model
    # learns the training genes' variants, not motifs that transfer (reported, not asserted).
    assert after["train"] >= 0.5
    assert after["train"] - before["train"] >= 0.4
    assert np.isfinite(after["test"])


@pytest.mark.long  # make test's 15-min budget
def test_gene_specific_effects_do_not_transfer(cohort, torch_one_thread):
    d, idx, genes, people = cohort
    expr = planted_expression(d, genes, list(map(str, idx.samples)))
    before, after, split = fit_and_judge(idx, expr, genes, people, "gene_specific")
    # Reached (seeds 0-3): 10 training genes 0.00 -> 0.74-0.89; 46 held-out genes
    # -0.03 untrained, -0.09..0.03 fine-tuned.
    assert len(split["test"]) >= 40
    assert after["train"] - before["train"] >= 0.3  # it does learn the training genes' own variants
    assert abs(after["test"]) <= 0.15  # held-out genes: centred on 0


@pytest.mark.long
def test_one_model_trained_on_two_tissues_learns_each_tissue_on_its_own_track(tmp_path, torch_one_thread):
    """Fine-tuning on several tissues (issue 21: one track per tissue): a two-tissue
    simulation (tissue a's expression from one motif set, b's from another: hapexp.demo),
    enformer_tiny from random weights with tracks 0 (a) and 1 (b), trained on both tissues'
    training people (b lacks 15 % of the people). On the held-out people of the training
    genes, track k must predict tissue k's noiseless genetic value, and better than the
    other track does: each tissue's steps trained its own track."""
    from hapexp.io import read_matrix
    from hapexp.training.finetune import Trainer as T
    from tests.simulated_cohort import simulated_index

    idx = simulated_index(tmp_path, 5, W, n_individuals=100, n_chromosomes=3, chromosome_length=60000,
                          n_genes=30, zero_h2_fraction=0.0, tissues=["a", "b"])  # fmt: skip
    samples = list(map(str, idx.samples))
    perm = list(np.random.default_rng(0).permutation(samples))
    split = {"train": perm[:60], "validation": perm[60:72], "test": perm[72:]}
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t", dtype={"gene_id": str, "chrom": str})
    tissues = {}
    for t in ("a", "b"):
        e = read_matrix(tmp_path / f"expression_noiseless_{t}.tsv")
        e = e[e.loc[:, [p for p in split["train"] if p in e.columns]].std(axis=1) > 1e-6]
        tissues[t] = (e, {k: [p for p in v if p in e.columns] for k, v in split.items()})
    assert len(tissues["b"][1]["train"]) < 60  # b lacks some people
    train_genes = genes.loc[genes["chrom"] != "chr3", "gene_id"].tolist()
    gsplit = {"train": train_genes, "test": genes.loc[genes["chrom"] == "chr3", "gene_id"].tolist()}
    spec = model_spec({**SPEC, "tracks": [0], "track_groups": {"a": [0], "b": [1]}}, "tiny_ft")
    tr = T(spec, resolve({**TRAIN, "epochs": 16, "lr": 1e-3}), start_model(spec, None))
    src = GeneSource([idx], W, True)
    out = tr.fit(src, None, None, gsplit, tmp_path / "ck.pt", "two", tissues=tissues)
    tr.module.load_state_dict(out["best_model"])
    tr.module.eval()
    r = {}
    for t, (e, p) in tissues.items():
        g = [x for x in train_genes if x in e.index]
        for k, track in (("a", [0]), ("b", [1])):
            r[(t, k)] = validation_r(tr.predictor, src, e, g, p["test"], tracks=track)
    print(f"\nheld-out people, training genes: r(tissue, track) {r}; validation r per epoch "
          f"{[round(h['validation_r'], 3) for h in out['history']]}")  # fmt: skip
    # Reached (2-core x86, torch 2.13 CPU, one thread): r(tissue, own track) a 0.76, b 0.77;
    # the other track 0.19 (a), 0.40 (b: shared genes' causal SNVs are in LD across tissues);
    # lr 3e-3 and 8 epochs diverged after epoch 3 (b's track did not learn: 0.02).
    for t, other in (("a", "b"), ("b", "a")):
        assert r[(t, t)] >= 0.4, r
        assert r[(t, t)] - r[(t, other)] >= 0.2, r
