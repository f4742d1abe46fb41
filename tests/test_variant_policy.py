"""One variant policy for every stage: haplotypes (hence ISM), eQTL and elastic net keep the
same records, checked against a direct reading of the VCF."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pysam
import pytest

from hapexp.sequences.haplotypes import build_index
from hapexp.sequences.index import HaplotypeIndex
from hapexp.variants.genotypes import Dosages, chunk_dosages
from hapexp.variants.normalize import normalize
from hapexp.variants.policy import filter_dosages, record_mask
from hapexp.variants.windows import resolve_window

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
WINDOW = 2048


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from hapexp.demo.simulate import simulate_demo

    d = tmp_path_factory.mktemp("policy")
    simulate_demo(d, seed=11, n_individuals=40, n_chromosomes=1, chromosome_length=60_000, n_genes=6)
    bcf = d / "normalized.bcf"
    normalize([str(d / "cohort.vcf.gz")], d / "reference.fa", bcf)
    genes = pd.read_csv(d / "genes.tsv", sep="\t", dtype={"chrom": str})
    samples = list(pysam.VariantFile(str(bcf)).header.samples)
    return d, bcf, genes, samples


def _expected(bcf, chrom, start0, end0, samples, policy):
    """Records of [start0, end0) kept by the policy, straight from the VCF (pysam)."""
    out = set()
    with pysam.VariantFile(str(bcf)) as vf:
        for rec in vf.fetch(chrom, start0, end0):
            if not start0 <= rec.start < end0:
                continue
            alt = rec.alts[0]
            gts = [a for s in samples for a in rec.samples[s]["GT"] if a is not None]
            af = np.mean([a == 1 for a in gts])
            if policy["snv_only"] and not (len(rec.ref) == 1 and len(alt) == 1):
                continue
            if min(af, 1 - af) < policy["maf"]:
                continue
            out.add(f"{rec.chrom}_{rec.pos}_{rec.ref}_{alt}")
    return out


@pytest.mark.parametrize("policy", [{"snv_only": True, "maf": 0.05}, {"snv_only": False, "maf": 0.0}])
def test_haplotypes_eqtl_and_elastic_net_see_the_same_records(cohort, tmp_path, policy):
    d, bcf, genes, samples = cohort
    idx_path = tmp_path / "idx.npz"
    build_index(bcf, d / "reference.fa", genes, WINDOW, idx_path, samples=samples, policies=policy)
    index = HaplotypeIndex.load(idx_path)
    dosages, windows = chunk_dosages(
        bcf, genes, resolve_window("model", {"model": {"kind": "oracle", "window": WINDOW}}), samples, 0.0
    )
    kept, counts = filter_dosages(dosages, policy)
    n_indels = total = 0
    for g in windows.itertuples():
        expected = _expected(bcf, g.chrom, g.start0, g.end0, samples, policy)
        from_index = set(index.variants(g.gene_id, WINDOW)["variant_id"])
        from_dosages = set(kept.window(g.chrom, g.start0, g.end0).variant_id)
        assert from_index == expected, g.gene_id
        # the dosage reader also drops monomorphic records (untestable); the policy is the same
        assert from_dosages == {v for v in expected if v in set(dosages.variant_id)}, g.gene_id
        total += len(expected)
        n_indels += sum(len(v.split("_")[2]) != len(v.split("_")[3]) for v in expected)
    assert total > 30 and (n_indels == 0) == policy["snv_only"]
    assert counts["records_read"] == len(dosages) and counts["variants_kept"] == len(kept)
    if policy["snv_only"]:
        assert counts["skipped_indel_snv_only"] > 0 and counts["skipped_maf"] > 0


def test_record_mask_counts_each_reason():
    ref = ["A", "A", "AT", "C", "G", "N", "C"]
    alt = ["G", "<DEL>", "A", "CT", "G", "T", "T"]
    af = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.01]
    keep, counts = record_mask(ref, alt, af, {"snv_only": True, "maf": 0.05})
    assert keep.tolist() == [True, False, False, False, False, True, False]
    assert counts["skipped_symbolic"] == 1 and counts["skipped_indel_snv_only"] == 2
    assert counts["skipped_maf"] == 1 and counts["records_read"] == 7


def test_filter_dosages_maf_is_the_called_allele_frequency():
    """Mean-imputed missing dosages leave the frequency unchanged: a record with 2 of 20
    called alleles ALT (MAF 0.1) and a missing sample stays at maf 0.1."""
    dos = np.array([[1.0] * 2 + [0.0] * 8 + [0.2]])  # 10 called samples + 1 imputed at the mean
    d = Dosages(
        np.array(["c_1_A_G"], dtype=object),
        np.array(["c"], dtype=object),
        np.array([1]),
        np.array(["A"], dtype=object),
        np.array(["G"], dtype=object),
        dos,
        [f"s{i}" for i in range(11)],
    )
    assert len(filter_dosages(d, {"maf": 0.1})[0]) == 1
    assert len(filter_dosages(d, {"maf": 0.1 + 1e-9})[0]) == 0
