"""Exon gene models (`readout: exons`): GTF/GFF3 and table readers, merging, renaming, exons.tsv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.inputs.exons import EXON_COLUMNS, exon_table, load_exons, merge_exons, read_exons, read_gtf_exons

# Two transcripts of G1 (+, chr1) with overlapping and adjacent exons, one of G2 (-, chr2).
# Merged over transcripts (1-based inclusive, [s, e] and [s2, e2] join when s2 <= e):
# G1: [100, 250] (100-200 and 150-250 overlap), [300, 400], [400, 450] -> [300, 450];
# G2: [50, 80].
EXPECTED = {"G1": [(100, 250), (300, 450)], "G2": [(50, 80)]}
GTF = """\
#!genome-build test
chr1\tT\tgene\t100\t450\t.\t+\t.\tgene_id "G1.3"; gene_name "A";
chr1\tT\ttranscript\t100\t400\t.\t+\t.\tgene_id "G1.3"; transcript_id "T1";
chr1\tT\texon\t100\t200\t.\t+\t.\tgene_id "G1.3"; transcript_id "T1";
chr1\tT\texon\t300\t400\t.\t+\t.\tgene_id "G1.3"; transcript_id "T1";
chr1\tT\ttranscript\t150\t450\t.\t+\t.\tgene_id "G1.3"; transcript_id "T2";
chr1\tT\texon\t150\t250\t.\t+\t.\tgene_id "G1.3"; transcript_id "T2";
chr1\tT\texon\t400\t450\t.\t+\t.\tgene_id "G1.3"; transcript_id "T2";
chr2\tT\tgene\t50\t80\t.\t-\t.\tgene_id "G2.1";
chr2\tT\ttranscript\t50\t80\t.\t-\t.\tgene_id "G2.1"; transcript_id "T3";
chr2\tT\texon\t50\t80\t.\t-\t.\tgene_id "G2.1"; transcript_id "T3";
"""
# The same annotation as Ensembl GFF3: exons name their transcript, transcripts their gene.
GFF3 = """\
##gff-version 3
chr1\tT\tgene\t100\t450\t.\t+\t.\tID=gene:G1.3;Name=A
chr1\tT\tmRNA\t100\t400\t.\t+\t.\tID=transcript:T1;Parent=gene:G1.3
chr1\tT\texon\t100\t200\t.\t+\t.\tParent=transcript:T1
chr1\tT\texon\t300\t400\t.\t+\t.\tParent=transcript:T1
chr1\tT\tmRNA\t150\t450\t.\t+\t.\tID=transcript:T2;Parent=gene:G1.3
chr1\tT\texon\t150\t250\t.\t+\t.\tParent=transcript:T2
chr1\tT\texon\t400\t450\t.\t+\t.\tParent=transcript:T2
chr2\tT\tncRNA_gene\t50\t80\t.\t-\t.\tID=gene:G2.1
chr2\tT\tlnc_RNA\t50\t80\t.\t-\t.\tID=transcript:T3;Parent=gene:G2.1
chr2\tT\texon\t50\t80\t.\t-\t.\tParent=transcript:T3
"""


def _intervals(df):
    return {g: list(zip(d.start, d.end, strict=True)) for g, d in df.groupby("gene_id")}


@pytest.mark.parametrize("name,text", [("a.gtf", GTF), ("a.gff3", GFF3)])
def test_gtf_and_gff3_exons_are_merged_per_gene(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    df = read_gtf_exons(path)
    assert list(df.columns) == EXON_COLUMNS
    assert _intervals(df) == {f"{g}.{v}": e for (g, e), v in zip(EXPECTED.items(), (3, 1), strict=True)}
    assert df.set_index("gene_id").loc["G2.1", "chrom"] == "chr2" and set(df.strand) == {"+", "-"}
    assert _intervals(read_gtf_exons(path, gene_ids=["G2.1"])) == {"G2.1": EXPECTED["G2"]}


def test_merge_exons_is_the_union_of_the_intervals():
    """Against a base-by-base coverage mask: merged runs are the maximal covered runs,
    except that touching intervals ([s, e], [e, x]) join and abutting ones ([s, e], [e + 1, x]) do not."""
    rng = np.random.default_rng(1)
    starts = rng.integers(1, 300, size=40)
    df = pd.DataFrame(
        {
            "gene_id": "G",
            "chrom": "c",
            "start": starts,
            "end": starts + rng.integers(0, 30, 40),
            "strand": "+",
        }
    )
    merged = merge_exons(df)
    got = list(zip(merged.start, merged.end, strict=True))
    # Independent answer: cover 2 * position so that [s, e] and [e + 1, x] leave a gap at 2e + 1.
    cover = np.zeros(700, bool)
    for s, e in zip(df.start, df.end, strict=True):
        cover[2 * s : 2 * e + 1] = True
    edges = np.flatnonzero(np.diff(np.r_[0, cover.astype(int), 0]))
    want = [(int(a) // 2, int(b - 1) // 2) for a, b in zip(edges[0::2], edges[1::2], strict=True)]
    assert got == want


def test_load_exons_from_a_table_and_its_errors(tmp_path):
    assert load_exons({}) is None
    path = tmp_path / "exons.tsv"
    path.write_text(
        "gene_id\tchrom\tstart\tend\nG1\tchr1\t300\t400\nG1\tchr1\t100\t200\nG1\tchr1\t150\t250\n"
    )
    df = load_exons({"exons": str(path)})
    assert _intervals(df) == {"G1": [(100, 250), (300, 400)]} and set(df.strand) == {"."}
    for body, line in (("G1\tchr1\t0\t10\n", 2), ("G1\tchr1\t5\t10\nG1\tchr1\t20\t10\n", 3)):
        path.write_text("gene_id\tchrom\tstart\tend\n" + body)
        with pytest.raises(InputError, match=rf"line {line}: exon .* is not a 1-based \[start, end\]"):
            load_exons({"exons": str(path)})
    path.write_text("gene_id\tchrom\tstart\nG1\tchr1\t5\n")
    with pytest.raises(InputError, match="missing column.*end"):
        load_exons({"exons": str(path)})
    with pytest.raises(InputError, match="exon table not found"):
        load_exons({"exons": str(tmp_path / "none.tsv")})


def test_exon_table_renames_to_the_gene_table_and_reads_back_0_based(tmp_path):
    exons = pd.DataFrame(
        [
            ("G2.1", "2", 50, 80, "."),
            ("ENSG00000000001.3", "1", 300, 450, "."),
            ("ENSG00000000001.3", "1", 100, 250, "."),
            ("G9", "1", 5, 9, "."),
        ],
        columns=EXON_COLUMNS,
    )
    genes = pd.DataFrame(
        {"gene_id": ["ENSG00000000001", "G2.1"], "chrom": ["chr1", "chr2"], "strand": ["+", "-"]}
    )
    table = exon_table(exons, genes)
    # genes.tsv's ids (version-less match), chromosomes and strands; gene order, then start
    assert table.values.tolist() == [
        ["ENSG00000000001", "chr1", 100, 250, "+"],
        ["ENSG00000000001", "chr1", 300, 450, "+"],
        ["G2.1", "chr2", 50, 80, "-"],
    ]
    assert exon_table(None, genes).columns.tolist() == EXON_COLUMNS and exon_table(None, genes).empty
    path = tmp_path / "exons.tsv"
    table.to_csv(path, sep="\t", index=False)
    back = read_exons(path)
    assert list(back) == ["ENSG00000000001", "G2.1"]
    g1 = back["ENSG00000000001"]
    assert g1.tolist() == [[99, 250], [299, 450]] and g1.dtype == np.int64
