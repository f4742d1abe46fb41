"""VCF input: GT parsing (fast and slow paths), regions, contig harmonization."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from hapexp import vcf as V
from hapexp.errors import InputError

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
    v, al, ph, pl = V.read_genotypes(path, reg)
    assert v.pos0.tolist() == [9, 19, 29]
    assert al[0].tolist() == [[0, 1], [1, 1], [0, 0]]
    assert al[1].tolist() == [[1, 0], [V.MISSING, 1], [0, 0]]
    assert ph[1].tolist() == [False, True, True]
    # haploid "1": second haplotype reads as reference, as bcftools -H 2 does
    assert al[2].tolist() == [[1, 0], [V.MISSING, V.MISSING], [0, 1]] and pl[2].tolist() == [1, 2, 2]
    v2, al2, _, _ = V.read_genotypes(path, reg, samples=["C", "A"])
    assert al2[0].tolist() == [[0, 0], [0, 1]]


def test_merge_regions():
    r = pd.DataFrame({"chrom": ["a", "a", "a", "b"], "start0": [10, 0, 30, 5], "end0": [20, 12, 40, 6]})
    m = V.merge_regions(r)
    assert m.values.tolist() == [["a", 0, 20], ["a", 30, 40], ["b", 5, 6]]


def test_contig_map(tmp_path):
    assert V.contig_map("v", ["chr1"], "f", ["chr1"], harmonize=False) == {}
    assert V.contig_map("v", ["1", "2"], "f", ["chr1", "chr2"], harmonize=True) == {"1": "chr1", "2": "chr2"}
    with pytest.raises(InputError, match=r"v: chromosome names differ.*1→chr1.*harmonize_chrom"):
        V.contig_map("v", ["1"], "f", ["chr1"], harmonize=False)
    with pytest.raises(InputError, match="no VCF contig matches"):
        V.contig_map("v", ["scaffold_9"], "f", ["chr1"], harmonize=True)


def test_unindexed_vcf_fails_clearly(tmp_path):
    p = tmp_path / "u.vcf.gz"
    (tmp_path / "u.vcf").write_text(HDR)
    subprocess.run(f"bgzip -c {tmp_path / 'u.vcf'} > {p}", shell=True, check=True)
    fa = tmp_path / "r.fa"
    fa.write_text(">chr1\n" + "A" * 1000 + "\n")
    with pytest.raises(InputError, match="not indexed"):
        V.normalize([str(p)], fa, tmp_path / "o.bcf")
