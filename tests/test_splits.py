"""Splits of people and genes (hapexp.training.splits): seeded, disjoint, whole groups and chromosomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.training.splits import read_splits, run_splits, split_genes, split_individuals

SAMPLES = [f"S{i:03d}" for i in range(100)]


def test_individuals_fractions_seeded_disjoint():
    cfg = {"seed": 3, "validation_fraction": 0.15, "test_fraction": 0.25}
    a = split_individuals(SAMPLES, cfg)
    assert list(a["sample"]) == SAMPLES
    assert a["split"].value_counts().to_dict() == {"train": 60, "test": 25, "validation": 15}
    pd.testing.assert_frame_equal(a, split_individuals(SAMPLES, cfg))
    b = split_individuals(SAMPLES, {**cfg, "seed": 4})
    assert set(a.loc[a["split"] == "test", "sample"]) != set(b.loc[b["split"] == "test", "sample"])


def test_individuals_whole_groups_held_out():
    pops = pd.Series(np.repeat(["CEU", "YRI", "TSI", "FIN", "GBR"], 20), index=SAMPLES)
    t = split_individuals(SAMPLES, {"seed": 1, "test_fraction": 0.3}, pops)
    t["pop"] = pops.to_numpy()
    by = t.groupby("pop")["split"].agg(lambda s: set(s))
    test_pops = [p for p, s in by.items() if "test" in s]
    assert all(by[p] == {"test"} for p in test_pops)  # a held-out population is held out whole
    assert (t["split"] == "test").sum() >= 30 and len(test_pops) == 2
    assert (t["group"] == t["pop"]).all()
    explicit = split_individuals(SAMPLES, {"seed": 1, "test_groups": ["YRI"]}, pops)
    assert set(explicit.loc[explicit["split"] == "test", "sample"]) == set(pops.index[pops == "YRI"])
    with pytest.raises(InputError, match="ASW"):
        split_individuals(SAMPLES, {"test_groups": ["ASW"]}, pops)
    with pytest.raises(InputError, match="every group"):
        split_individuals(SAMPLES, {"test_groups": ["CEU", "YRI", "TSI", "FIN", "GBR"]}, pops)


def _genes(chroms):
    return pd.DataFrame(
        {
            "gene_id": [f"G{i}" for i in range(len(chroms))],
            "chrom": chroms,
            "tss": np.arange(len(chroms)) * 10 + 1,
        }
    )


def test_genes_by_chromosome_never_share_a_chromosome():
    genes = _genes(["chr1"] * 10 + ["chr2"] * 6 + ["chr3"] * 8 + ["chr4"] * 6)
    t = split_genes(genes, {"seed": 2, "genes": {"test_fraction": 0.3}})
    per_chrom = t.groupby("chrom")["split"].nunique()
    assert (per_chrom == 1).all() and (t["unit"] == "chromosome").all()
    assert 9 <= (t["split"] == "test").sum() <= 20 and (t["split"] == "train").any()
    fixed = split_genes(genes, {"genes": {"test_chromosomes": ["chr2"]}})
    assert list(fixed.loc[fixed["split"] == "test", "gene_id"]) == [f"G{i}" for i in range(10, 16)]


def test_genes_one_chromosome_falls_back_to_seeded_gene_split():
    genes = _genes(["chr1"] * 20)
    t = split_genes(genes, {"seed": 5, "genes": {"test_fraction": 0.25}})
    assert (t["unit"] == "gene").all() and (t["split"] == "test").sum() == 5
    pd.testing.assert_frame_equal(t, split_genes(genes, {"seed": 5, "genes": {"test_fraction": 0.25}}))


def test_run_splits_files_and_bad_sheet(tmp_path):
    genes = _genes(["chr1"] * 6 + ["chr2"] * 6)
    genes["strand"] = "+"
    genes.to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    samples = SAMPLES[:20]
    prepared = pd.DataFrame(np.zeros((11, 20)), index=[f"G{i}" for i in range(11)], columns=samples)
    prepared.index.name = "gene_id"
    prepared.to_csv(tmp_path / "prepared.tsv", sep="\t")
    out = tmp_path / "out"
    run_splits(tmp_path / "genes.tsv", tmp_path / "prepared.tsv", out / "ind.tsv", out / "genes.tsv",
               out / "tissues.tsv", {})  # fmt: skip
    people, gsplit = read_splits(out / "ind.tsv", out / "genes.tsv")
    assert sorted(people["train"] + people["validation"] + people["test"]) == samples
    assert sorted(gsplit["train"] + gsplit["test"]) == sorted(prepared.index)  # G11: no expression
    sheet = tmp_path / "sheet.tsv"
    pd.DataFrame({"sample": samples[:-1], "pop": "CEU"}).to_csv(sheet, sep="\t", index=False)
    cfg = {"sample_sheet": str(sheet), "group_column": "pop"}
    with pytest.raises(InputError, match=rf"{sheet}.*{samples[-1]}"):
        run_splits(
            tmp_path / "genes.tsv",
            tmp_path / "prepared.tsv",
            tmp_path / "o2/i.tsv",
            tmp_path / "o2/g.tsv",
            tmp_path / "o2/t.tsv",
            cfg,
        )
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())


def _stated(**kw):
    return {"expression_corrected_upstream": False, "covariates": True, "splits_seed": 5,
            "expression": {"transform": "inverse_normal", "n_pcs": 3}, **kw}  # fmt: skip


def test_summary_states_a_random_gene_split_and_upstream_correction(tmp_path):
    """A one-chromosome cohort's random gene split is said in summary.md, not only in the log; a
    chromosome split names the held-out chromosomes; an upstream correction on all people is said."""
    from hapexp.training.splits import splits_lines

    people = {"train": ["a"] * 30, "validation": ["b"] * 5, "test": ["c"] * 10}
    split_genes(_genes(["chr7"] * 20), {"seed": 5}).to_csv(tmp_path / "one.tsv", sep="\t", index=False)
    text = "\n".join(splits_lines(people, tmp_path / "one.tsv", _stated()))
    assert "**Genes split at random, not by chromosome**: all 20 genes lie on one chromosome (chr7)" in text
    assert "seed 5; 14 training and 6 held-out genes" in text
    assert "fitted on the 30 training people and applied to the 15 validation and test people" in text
    assert "3 expression PCs" in text and "corrected upstream" not in text
    split_genes(_genes(["chr1"] * 6 + ["chr2"] * 6), {"seed": 5}).to_csv(
        tmp_path / "two.tsv", sep="\t", index=False
    )
    text = "\n".join(splits_lines(people, tmp_path / "two.tsv", _stated(expression_corrected_upstream=True)))
    assert "at random" not in text and "Genes split by chromosome" in text
    assert "**The cohort's expression was corrected upstream on all people**" in text
