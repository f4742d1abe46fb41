"""VCF input: GT parsing (fast and slow paths), regions, contig harmonization, normalization,
the REF check."""

from __future__ import annotations

import subprocess

import pandas as pd
import pysam
import pytest

from hapexp.errors import InputError
from hapexp.variants.files import contig_map, vcf_samples
from hapexp.variants.genotypes import read_genotypes
from hapexp.variants.normalize import check_ref, normalize
from hapexp.variants.scan import MISSING

HDR = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC
"""


def _vcf(tmp_path, body):
    p = tmp_path / "x.vcf"
    p.write_text(HDR + body)
    subprocess.run(f"bgzip -c {p} > {p}.gz && tabix -f {p}.gz", shell=True, check=True)
    return f"{p}.gz"


def test_read_genotypes_fast_and_slow_paths(tmp_path):
    body = (
        "chr1\t10\t.\tA\tG\t.\t.\t.\tGT\t0|1\t1|1\t0|0\n"
        "chr1\t20\t.\tA\tG\t.\t.\t.\tGT\t1/0\t.|1\t0|0\n"  # unphased + missing: still fixed width
        "chr1\t30\t.\tA\tG\t.\t.\t.\tGT\t1\t.\t0|1\n"  # haploid + '.' : slow path
        "chr1\t500\t.\tA\tG\t.\t.\t.\tGT\t1|1\t1|1\t1|1\n"  # outside the region
    )
    path = _vcf(tmp_path, body)
    reg = pd.DataFrame({"chrom": ["chr1"], "start0": [0], "end0": [100]})
    v, al, ph, pl = read_genotypes(path, reg)
    assert v.pos0.tolist() == [9, 19, 29]
    assert al[0].tolist() == [[0, 1], [1, 1], [0, 0]]
    assert al[1].tolist() == [[1, 0], [MISSING, 1], [0, 0]]
    assert ph[1].tolist() == [False, True, True]
    # haploid "1": second haplotype reads as reference, as bcftools -H 2 does
    assert al[2].tolist() == [[1, 0], [MISSING, MISSING], [0, 1]] and pl[2].tolist() == [1, 2, 2]
    v2, al2, _, _ = read_genotypes(path, reg, samples=["C", "A"])
    assert al2[0].tolist() == [[0, 0], [0, 1]]


def test_contig_map(tmp_path):
    assert contig_map("v", ["chr1"], "f", ["chr1"], harmonize=False) == {}
    assert contig_map("v", ["1", "2"], "f", ["chr1", "chr2"], harmonize=True) == {"1": "chr1", "2": "chr2"}
    with pytest.raises(InputError, match=r"v: chromosome names differ.*1→chr1.*harmonize_chrom"):
        contig_map("v", ["1"], "f", ["chr1"], harmonize=False)
    with pytest.raises(InputError, match="no VCF contig matches"):
        contig_map("v", ["scaffold_9"], "f", ["chr1"], harmonize=True)


def test_unindexed_vcf_fails_clearly(tmp_path):
    p = tmp_path / "u.vcf.gz"
    (tmp_path / "u.vcf").write_text(HDR)
    subprocess.run(f"bgzip -c {tmp_path / 'u.vcf'} > {p}", shell=True, check=True)
    fa = tmp_path / "r.fa"
    fa.write_text(">chr1\n" + "A" * 1000 + "\n")
    with pytest.raises(InputError, match="not indexed"):
        normalize([str(p)], fa, tmp_path / "o.bcf")


def _random_cohort_files(tmp_path, rng, n_samples=12):
    """Two chromosomes' reference + one VCF per chromosome (bgzipped VCF and BCF), with
    SNVs, indels and multi-allelic sites (norm must split them), more samples than kept."""
    import numpy as np

    samples = [f"S{i:02d}" for i in range(n_samples)]
    chroms = {"1": 3000, "2": 2500}
    seqs = {c: "".join(rng.choice(list("ACGT"), n)) for c, n in chroms.items()}
    fa = tmp_path / "ref.fa"
    fa.write_text("".join(f">{c}\n{s}\n" for c, s in seqs.items()))
    pysam.faidx(str(fa))
    paths = []
    for k, (c, seq) in enumerate(seqs.items()):
        lines = [
            "##fileformat=VCFv4.2",
            *(f"##contig=<ID={cc},length={n}>" for cc, n in chroms.items()),
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
        ]
        for pos in sorted(rng.choice(np.arange(20, len(seq) - 20), 40, replace=False)):
            ref = seq[pos - 1]
            kind = rng.integers(3)
            other = [b for b in "ACGT" if b != ref]
            if kind == 0:
                alts = [rng.choice(other)]
            elif kind == 1:  # deletion + SNV at one site: a multi-allelic record
                alts = [rng.choice(other), ref]
                ref = seq[pos - 1 : pos + 2]
                alts[0] = alts[0] + seq[pos : pos + 2]
            else:
                alts = [ref + "".join(rng.choice(list("ACGT"), 3))]
            gts = [f"{rng.integers(len(alts) + 1)}|{rng.integers(len(alts) + 1)}" for _ in samples]
            lines.append(f"{c}\t{pos}\trs{k}{pos}\t{ref}\t{','.join(alts)}\t.\t.\t.\tGT\t" + "\t".join(gts))
        raw = tmp_path / f"chr{c}.vcf"
        raw.write_text("\n".join(lines) + "\n")
        if k == 0:
            out = tmp_path / f"chr{c}.vcf.gz"
            subprocess.run(["bcftools", "view", "-Oz", "-o", str(out), str(raw)], check=True)
            subprocess.run(["bcftools", "index", "-t", str(out)], check=True)
        else:
            out = tmp_path / f"chr{c}.bcf"
            subprocess.run(["bcftools", "view", "-Ob", "-o", str(out), str(raw)], check=True)
            subprocess.run(["bcftools", "index", "-c", str(out)], check=True)
        paths.append(str(out))
    return fa, paths, samples


def test_normalize_per_chromosome_files_subset_samples(tmp_path):
    """Two per-chromosome inputs (bgzipped VCF + BCF) with more people than the cohort:
    the output equals bcftools run by hand on each file (view -S, norm -m -any), in
    chromosome order, with exactly the cohort's samples in the cohort's order."""
    import numpy as np

    rng = np.random.default_rng(3)
    fa, paths, samples = _random_cohort_files(tmp_path, rng)
    cohort = [samples[7], samples[2], samples[9], samples[0]]
    out = tmp_path / "norm.bcf"
    stats = normalize(paths, fa, out, threads=2, samples=cohort)
    assert vcf_samples(out) == cohort
    assert (tmp_path / "norm.bcf.csi").exists()
    sfile = tmp_path / "cohort.txt"
    sfile.write_text("\n".join(cohort) + "\n")
    expected = []
    for p in paths:
        cmd = f"bcftools view -S {sfile} {p} | bcftools norm -m -any -f {fa} -c w | bcftools view -H"
        expected += subprocess.run(
            cmd, shell=True, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    got = subprocess.run(
        ["bcftools", "view", "-H", str(out)], capture_output=True, text=True
    ).stdout.splitlines()
    assert got == expected
    assert stats["records"] == len(expected) and stats["input_files"] == 2
    assert {line.split("\t")[0] for line in got} == {"1", "2"}


def test_normalize_sample_missing_from_one_file(tmp_path):
    import numpy as np

    fa, paths, samples = _random_cohort_files(tmp_path, np.random.default_rng(4))
    with pytest.raises(InputError, match=r"chr1\.vcf\.gz: 1 of the cohort's 2 samples are not in this file"):
        normalize(paths, fa, tmp_path / "o.bcf", samples=[samples[0], "NOBODY"])
    assert not (tmp_path / "o.bcf").exists()


def test_check_ref_streams_and_reports(tmp_path):
    body = "".join(
        f"chr1\t{p}\t.\t{'A' if p != 700 else 'C'}\tG\t.\t.\t.\tGT\t0|1\t0|0\t0|0\n"
        for p in range(1, 1000, 3)
    )
    path = _vcf(tmp_path, body)
    fa = tmp_path / "r.fa"
    fa.write_text(">chr1\n" + "A" * 1000 + "\n")
    with pytest.raises(InputError, match=r"1 of 333 records have a REF.*chr1:700 REF=C FASTA=A"):
        check_ref(path, fa, block=64)
    ok = _vcf(tmp_path, body.replace("\tC\tG", "\tA\tG"))
    assert check_ref(ok, fa, block=64) == {"records": 333, "ref_mismatch": 0}
