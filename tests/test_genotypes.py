"""Dosage reading from a phased VCF: windows (1-based POS, inclusive ±W), imputation, MAF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pysam
import pytest

from hapexp.variants.genotypes import (
    chunk_dosages,
    gene_window,
    merge_intervals,
    read_dosages,
    resolve_window,
)

SAMPLES = ["A", "B", "C", "D"]
RECORDS = [
    # pos, ref, alt, GTs
    (100, "A", "G", ["0|0", "0|1", "1|1", "0|0"]),
    (150, "C", "T", ["0|1", ".|.", "1|1", "0|0"]),  # missing → mean of 1, 2, 0 = 1
    (200, "G", "A,C", ["0|1", "0|2", "1|1", "0|0"]),  # multi-allelic: skipped
    (250, "T", "C", ["0|0", "0|0", "0|0", "0|0"]),  # monomorphic: dropped
    (300, "A", "AT", ["1|0", "0|0", "0|0", "0|0"]),  # maf 1/8
]


def _vcf(tmp_path):
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=10000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES),
    ]
    for pos, ref, alt, gts in RECORDS:
        lines.append(f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t" + "\t".join(gts))
    raw = tmp_path / "x.vcf"
    raw.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(raw), str(raw) + ".gz")
    pysam.tabix_index(str(raw) + ".gz", preset="vcf")
    return str(raw) + ".gz"


def test_dosages_imputation_and_filters(tmp_path):
    vcf = _vcf(tmp_path)
    d = read_dosages(vcf, [("chr1", 0, 1000)], ["D", "A", "B", "C"], maf=0.0)
    assert list(d.variant_id) == ["chr1_100_A_G", "chr1_150_C_T", "chr1_300_A_AT"]
    np.testing.assert_array_equal(d.dosage[0], [0, 0, 1, 2])
    np.testing.assert_array_equal(d.dosage[1], [0, 1, 1, 2])  # B imputed to mean 1
    assert list(d.pos) == [100, 150, 300]
    d2 = read_dosages(vcf, [("chr1", 0, 1000)], SAMPLES, maf=0.2)
    assert list(d2.variant_id) == ["chr1_100_A_G", "chr1_150_C_T"]


def test_window_bounds_are_inclusive_1based(tmp_path):
    vcf = _vcf(tmp_path)
    w = resolve_window(50, None)
    start0, end0 = gene_window(150, "+", w)  # |POS - 150| <= 50 → POS 100..200
    assert (start0, end0) == (99, 200)
    d = read_dosages(vcf, [("chr1", start0, end0)], SAMPLES)
    assert list(d.pos) == [100, 150]
    genes = pd.DataFrame({"gene_id": ["g1"], "chrom": ["chr1"], "tss": [250], "strand": ["-"]})
    dd, g = chunk_dosages(vcf, genes, resolve_window(50, None), SAMPLES, 0.0)
    assert list(dd.window("chr1", int(g.start0[0]), int(g.end0[0])).pos) == [300]


def test_model_window_matches_architecture():
    models = {"m": {"kind": "oracle", "window": 512}}
    w = resolve_window("m", models)
    assert w == ("model", 512)
    # + strand: [tss0 - 256, tss0 + 256); - strand shifted by one (tss 1001 → tss0 1000)
    assert gene_window(1001, "+", w) == (744, 1256)
    assert gene_window(1001, "-", w) == (745, 1257)
    with pytest.raises(ValueError, match="neither"):
        resolve_window("nope", models)


def test_merge_intervals():
    assert merge_intervals([("c", 5, 10), ("c", 0, 6), ("c", 20, 30), ("b", 1, 2)]) == [
        ("b", 1, 2),
        ("c", 0, 10),
        ("c", 20, 30),
    ]


def test_gene_body_window_is_predictdbs(tmp_path):
    """`gene_body_1mb`: variants with start − 1e6 <= POS <= end + 1e6 (PredictDB's
    get_cis_genotype, 1-based gene body), on either strand; checked on POS values at and
    just beyond both edges."""
    w = resolve_window("gene_body_1mb")
    assert w == ("gene_body", 1_000_000)
    start, end = 1_500_000, 1_620_000
    edges = np.array([start - 1_000_001, start - 1_000_000, end + 1_000_000, end + 1_000_001, start + 7])
    for strand, tss in (("+", start), ("-", end)):
        s0, e0 = gene_window(tss, strand, w, start, end)
        inside = (edges - 1 >= s0) & (edges - 1 < e0)  # 0-based half-open
        expected = (edges >= start - 1_000_000) & (edges <= end + 1_000_000)
        np.testing.assert_array_equal(inside, expected)
    # genes.tsv without a body: the TSS ± 1 Mb
    assert gene_window(5_000_000, "+", w) == (5_000_000 - 1 - 1_000_000, 5_000_000 + 1_000_000)
    with pytest.raises(ValueError, match="gene_body_1mb"):
        resolve_window("gene_body_2mb")


def test_chunk_dosages_uses_the_gene_body(tmp_path):
    vcf = _vcf(tmp_path)
    genes = pd.DataFrame(
        {
            "gene_id": ["g"],
            "chrom": ["chr1"],
            "tss": [2_000_100],
            "strand": ["-"],
            "start": [1_000_120],
            "end": [2_000_100],
        }
    )
    d, g = chunk_dosages(vcf, genes, resolve_window("gene_body_1mb"), SAMPLES, 0.0)
    # body 1,000,120..2,000,100: the window starts at POS 120, so POS 100 is out, 150 and 300 in
    assert list(d.pos) == [150, 300] and int(g.start0[0]) == 119
