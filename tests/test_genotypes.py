"""Dosage reading from a phased VCF: windows (1-based POS, inclusive ±W), imputation, MAF."""

from __future__ import annotations

import subprocess
from collections import Counter

import numpy as np
import pandas as pd
import pysam
import pytest

from hapexp.errors import InputError
from hapexp.variants.genotypes import chunk_dosages, read_dosages, span_dosages
from hapexp.variants.windows import gene_window, merge_regions, resolve_window

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


def test_merge_regions():
    """Overlapping and adjacent regions merge; chromosomes stay in order of first appearance
    (read_dosages sorts its regions first: chromosomes in name order)."""
    r = pd.DataFrame({"chrom": ["a", "a", "a", "b"], "start0": [10, 0, 30, 5], "end0": [20, 12, 40, 6]})
    assert merge_regions(r).values.tolist() == [["a", 0, 20], ["a", 30, 40], ["b", 5, 6]]
    iv = [("c", 5, 10), ("c", 0, 6), ("c", 20, 30), ("b", 1, 2), ("c", 10, 12)]
    cols = ["chrom", "start0", "end0"]
    assert merge_regions(pd.DataFrame(iv, columns=cols)).values.tolist() == [
        ["c", 0, 12],
        ["c", 20, 30],
        ["b", 1, 2],
    ]
    assert merge_regions(pd.DataFrame(sorted(iv), columns=cols)).values.tolist()[0] == ["b", 1, 2]


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


# ---------------------------------------------------------------- the one reader, every caller
# Records that tell the callers' semantics apart: deletions reaching into a region from
# before it, symbolic ALTs (<DEL> with END, *), a missing ALT, multi-allelic, identical
# records, haploid and missing calls, a monomorphic record, another contig.
ADVERSARIAL = [
    ("chr1", 50, "A", "<DEL>", "END=99", ["0|1", "1|1", "0|0"]),
    ("chr1", 90, "A", "<DEL>", "END=105", ["0|1", "1|1", "0|0"]),
    ("chr1", 95, "ACGTACGT", "A", ".", ["0|1", "1|1", "0|0"]),
    ("chr1", 98, "AC", "A", ".", ["0|1", "0|0", "1|1"]),
    ("chr1", 99, "AC", "A", ".", ["1|1", "0|1", "0|0"]),
    ("chr1", 99, "A", "AT", ".", ["1|0", "0|1", "0|0"]),
    ("chr1", 100, "A", "G", ".", ["0|1", "1|1", "0|0"]),
    ("chr1", 110, "A", "G,T", ".", ["0|1", "2|1", "0|0"]),
    ("chr1", 120, "A", "<DEL>", "END=130", ["0|1", "0|0", "1|1"]),
    ("chr1", 125, "A", "*", ".", ["0|1", "0|0", "0|0"]),
    ("chr1", 130, "A", ".", ".", ["0|1", "0|0", "0|0"]),
    ("chr1", 140, "A", "G", ".", ["0|1", "0|0", "1|1"]),
    ("chr1", 140, "A", "G", ".", ["0|1", "0|0", "1|1"]),
    ("chr1", 150, "A", "G", ".", ["1", ".", "0"]),
    ("chr1", 160, "A", "G", ".", [".|.", "0|.", "./1"]),
    ("chr1", 170, "A", "G", ".", ["0/1", "1/1", "0|0"]),
    ("chr1", 180, "A", "G", ".", ["0|0", "0|0", "0|0"]),
    ("chr1", 199, "AC", "A", ".", ["0|1", "0|0", "0|0"]),
    ("chr1", 200, "A", "G", ".", ["0|1", "1|1", "0|0"]),
    ("chr1", 201, "A", "G", ".", ["0|1", "0|0", "0|0"]),
    ("chr2", 100, "A", "G", ".", ["0|1", "0|0", "1|0"]),
]
ADV_SAMPLES = ["A", "B", "C"]


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory):
    d = tmp_path_factory.mktemp("adversarial")
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=1000>",
        "##contig=<ID=chr2,length=1000>",
        "##contig=<ID=chr3,length=1000>",
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
        '##ALT=<ID=DEL,Description="Deletion">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(ADV_SAMPLES),
    ]
    for i, (c, pos, ref, alt, info, gts) in enumerate(ADVERSARIAL):
        lines.append(f"{c}\t{pos}\trs{i}\t{ref}\t{alt}\t.\t.\t{info}\tGT\t" + "\t".join(gts))
    (d / "adv.vcf").write_text("\n".join(lines) + "\n")
    bcf = d / "adv.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(d / "adv.vcf")], check=True)
    subprocess.run(["bcftools", "index", "-f", str(bcf)], check=True)
    return bcf


def _alt_count(gt) -> float:
    """ALT alleles of one call (pysam tuple), NaN when any allele is missing."""
    return np.nan if gt is None or None in gt else float(sum(a == 1 for a in gt))


def _pysam_fetch(path, regions, samples) -> pd.DataFrame:
    """Independent answer for the per-gene look-ups: pysam's fetch of each region (records
    overlapping [start0, end0); a record reaching into several regions once, in file
    order), one-ALT records, missing calls NaN, every record kept."""
    rows = {}
    with pysam.VariantFile(str(path)) as vf:
        for c, s, e in sorted(regions):
            seen = Counter()
            for rec in vf.fetch(c, max(s, 0), e) if c in vf.header.contigs else []:
                vid = f"{rec.chrom}_{rec.pos}_{rec.ref}_{','.join(rec.alts or '.')}"
                seen[vid] += 1  # identical records: told apart by their rank
                if rec.alts is not None and len(rec.alts) == 1:
                    rows[(vid, seen[vid])] = [_alt_count(rec.samples[x]["GT"]) for x in samples]
    data = np.array(list(rows.values()), float).reshape(len(rows), len(samples))
    return pd.DataFrame(data, index=[k[0] for k in rows], columns=samples)


def _bcftools_windows(path, regions, samples, maf) -> tuple[pd.DataFrame, list[str]]:
    """Independent answer for the cis windows: `bcftools query -r` per region with POS in
    it, parsed here; biallelic sequence ALTs, first of identical records, mean-imputed,
    MAF-filtered, monomorphic dropped. Returns (dosages, ID column)."""
    out, ids, seen = {}, {}, set()
    for c, s, e in sorted(regions):
        q = subprocess.run(
            ["bcftools", "query", "-r", f"{c}:{s + 1}-{e}", "--regions-overlap", "pos", "-s", ",".join(samples),
             "-f", "%CHROM\t%POS\t%REF\t%ALT\t%ID[\t%GT]\n", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        for line in q.splitlines():
            chrom, pos, ref, alt, rsid, *gts = line.split("\t")
            key = (chrom, pos, ref, alt)
            if "," in alt or alt in (".", "*") or alt.startswith("<") or key in seen:
                continue
            seen.add(key)
            calls = [g.replace("|", "/").split("/") for g in gts]
            d = [np.nan if "." in a else float(sum(x == "1" for x in a)) for a in calls]
            out["_".join(key)], ids["_".join(key)] = d, rsid
    df = pd.DataFrame.from_dict(out, orient="index", columns=samples).astype(float)
    df = df.apply(lambda r: r.fillna(r.mean() if r.notna().any() else 0.0), axis=1)
    af = df.mean(axis=1) / 2
    df = df[(np.minimum(af, 1 - af) >= maf) & (df.max(axis=1) > df.min(axis=1))]
    return df, [ids[v] for v in df.index]


@pytest.mark.parametrize(
    "regions",
    [
        [("chr1", 99, 200)],
        [("chr1", 98, 99)],
        [("chr1", 104, 105)],
        [("chr1", 0, 99)],
        [("chr1", -5, 10)],
        [("chr1", 99, 100), ("chr1", 102, 104)],  # the <DEL> at 90 reaches both: read once
        [("chr2", 0, 1000)],
        [("chr3", 0, 1000)],  # a contig without records
    ],
)
def test_reader_as_the_per_gene_lookups(adversarial, regions):
    """predictdb_predict, legacy_columns and concordance.vcf_dosage_fn read every record
    overlapping their span (as pysam's fetch), missing calls as NaN, symbolic and identical
    records kept: the reader with their parameters equals pysam."""
    samples = ["C", "A"]
    got = read_dosages(
        adversarial, regions, samples, None, missing="nan", overlap="record", symbolic=True, duplicates="keep"
    ).frame()
    want = _pysam_fetch(adversarial, regions, samples)
    assert list(got.index) == list(want.index)
    assert list(got.columns) == samples
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    if len(regions) == 1:  # what those callers call: span_dosages
        span = span_dosages(adversarial, *regions[0], samples)
        assert list(span.index) == list(want.index)
        np.testing.assert_array_equal(span.to_numpy(), want.to_numpy())


@pytest.mark.parametrize("maf", [0.0, 0.2])
def test_reader_as_the_cis_windows(adversarial, maf):
    """The eQTL scan / elastic net (chunk_dosages): records whose POS lies in a window,
    symbolic ALTs skipped, the first of identical records, missing calls mean-imputed,
    MAF-filtered: the reader equals bcftools query parsed here."""
    regions = [("chr2", 0, 1000), ("chr1", 150, 201), ("chr1", 98, 140)]
    samples = ["B", "C", "A"]
    got = read_dosages(adversarial, regions, samples, maf)
    want, want_ids = _bcftools_windows(adversarial, regions, samples, maf)
    assert list(got.variant_id) == list(want.index)
    np.testing.assert_allclose(got.dosage, want.to_numpy(), rtol=0, atol=1e-12)
    assert list(got.ids) == want_ids


def test_reader_parameters_are_checked(adversarial):
    with pytest.raises(ValueError, match="imputed"):
        read_dosages(adversarial, [("chr1", 0, 1000)], ADV_SAMPLES, 0.0, missing="nan")
    with pytest.raises(InputError, match="NOBODY"):
        read_dosages(adversarial, [("chr1", 0, 1000)], ["A", "NOBODY"])
