"""Gene table: reading, filtering (expression, FASTA, VCF contigs), chunking."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.inputs.genes import (
    build_gene_table,
    chunk_ids,
    gene_regions,
    read_gene_table,
    sample_overlap,
    write_chunks,
)

V44_GTF = Path(__file__).parent / "data" / "formats" / "gencode_v44_like.gtf"


def _table(tmp_path, text):
    p = tmp_path / "genes.tsv"
    p.write_text(text)
    return p


def test_read_gene_table_checks(tmp_path):
    ok = _table(tmp_path, "gene_id\tchrom\ttss\tstrand\nA\tchr1\t10\t+\nB\tchr1\t5\t-\n")
    df = read_gene_table(ok)
    assert list(df.columns) == ["gene_id", "name", "chrom", "tss", "strand", "start", "end", "gene_type"]
    assert df.name.tolist() == ["A", "B"] and df.tss.tolist() == [10, 5]
    # no gene body given: the TSS alone
    assert df.start.tolist() == [10, 5] and df.end.tolist() == [10, 5] and set(df.gene_type) == {"NA"}
    # the body spans tss and the given ends: GTF convention (start <= end) on either strand,
    # or the gene's other end as `end`
    body = read_gene_table(
        _table(
            tmp_path,
            "gene_id\tchrom\ttss\tstrand\tstart\tend\tgene_type\n"
            "A\tchr1\t100\t+\t100\t900\tprotein_coding\n"
            "B\tchr1\t900\t-\t100\t900\tlncRNA\n"
            "C\tchr1\t900\t-\t\t300\t\n",
        )
    )
    assert body.start.tolist() == [100, 100, 300] and body.end.tolist() == [900, 900, 900]
    assert body.gene_type.tolist() == ["protein_coding", "lncRNA", "NA"]
    with pytest.raises(InputError, match=r"line 2.*end 'x'"):
        read_gene_table(_table(tmp_path, "gene_id\tchrom\ttss\tstrand\tend\nA\tchr1\t10\t+\tx\n"))
    with pytest.raises(InputError, match=r"line 3.*strand '\*'"):
        read_gene_table(_table(tmp_path, "gene_id\tchrom\ttss\tstrand\nA\tchr1\t10\t+\nB\tchr1\t5\t*\n"))
    with pytest.raises(InputError, match=r"line 2.*1-based"):
        read_gene_table(_table(tmp_path, "gene_id\tchrom\ttss\tstrand\nA\tchr1\t0\t+\n"))
    with pytest.raises(InputError, match=r"missing column.*tss"):
        read_gene_table(_table(tmp_path, "gene_id\tchrom\tstrand\nA\tchr1\t+\n"))
    with pytest.raises(InputError, match=r"line 3.*A appears twice"):
        read_gene_table(_table(tmp_path, "gene_id\tchrom\ttss\tstrand\nA\tchr1\t10\t+\nA\tchr1\t5\t-\n"))


def test_build_gene_table_filters_and_counts():
    genes = pd.DataFrame(
        {
            "gene_id": ["ENSG00000000001.3", "ENSG00000000002.1", "G3", "G4", "G5", "G6"],
            "name": ["a", "b", "c", "d", "e", "f"],
            "chrom": ["22", "22", "21", "X", "22", "22"],
            "tss": [500, 100, 50, 10, 99999, 300],
            "strand": ["+", "-", "+", "+", "+", "-"],
        }
    )
    expr = ["ENSG00000000001.5", "ENSG00000000002.1", "G3", "G4", "G5", "G6"]
    fa = {"chr21": 1000, "chr22": 1000, "chrX": 1000}
    out, c = build_gene_table(genes, expr, ["chr22", "chrX"], fa, harmonize=True)
    # version-insensitive match keeps the expression id; 21 has no VCF contig; G5 is past the end
    assert out.gene_id.tolist() == ["ENSG00000000002.1", "G6", "ENSG00000000001.5", "G4"]
    assert out.chrom.tolist() == ["chr22", "chr22", "chr22", "chrX"]
    assert c == {
        "input": 6,
        "dropped_not_in_expression": 0,
        "dropped_chrom_not_in_fasta": 0,
        "dropped_tss_beyond_chrom_end": 1,
        "dropped_chrom_not_in_vcf": 1,
        "kept": 4,
    }
    out2, c2 = build_gene_table(genes, ["G3", "G6"], ["chr21", "chr22"], fa)
    assert out2.gene_id.tolist() == ["G3", "G6"] and c2["dropped_not_in_expression"] == 4
    with pytest.raises(InputError, match="harmonize_chrom"):
        build_gene_table(genes, expr, ["chr22"], fa, harmonize=False)


def test_chunks_and_regions(tmp_path):
    genes = pd.DataFrame(
        {
            "gene_id": list("ABCDE"),
            "name": list("abcde"),
            "chrom": "chr1",
            "tss": [1, 5, 9, 20, 30],
            "strand": "+",
        }
    )
    paths = [tmp_path / "chunks" / f"{i}.tsv" for i in chunk_ids(3)]
    write_chunks(genes, paths)
    parts = [pd.read_csv(p, sep="\t") for p in paths]
    assert [len(p) for p in parts] == [2, 1, 2]  # balanced, none empty
    assert pd.concat(parts).gene_id.tolist() == list("ABCDE")
    with pytest.raises(InputError, match="empty gene chunk after filters: 5 gene"):
        write_chunks(genes, [tmp_path / f"{i}.tsv" for i in chunk_ids(6)])
    r = gene_regions(genes, 4)
    assert r.start0.tolist() == [0, 0, 4, 15, 25] and r.end0.tolist() == [5, 9, 13, 24, 34]
    assert sample_overlap(["a", "b", "c"], ["b", "c", "d"]) == {
        "vcf": 3,
        "expression": 3,
        "both": 2,
        "vcf_only": 1,
        "expression_only": 1,
    }


def test_load_genes_from_table_and_gtf(tmp_path):
    from hapexp.inputs.genes import load_genes

    gtf = tmp_path / "a.gtf"
    gtf.write_text(
        'chr1\tHAVANA\tgene\t100\t500\t.\t+\t.\tgene_id "ENSG00000000001.1"; gene_type "protein_coding"; gene_name "AA";\n'
        'chr1\tHAVANA\tgene\t700\t900\t.\t-\t.\tgene_id "ENSG00000000002.1"; gene_type "lncRNA"; gene_name "BB";\n'
    )
    df = load_genes({"gtf": str(gtf)})
    # GENCODE: TSS = gene start on +, gene end on - (1-based)
    assert df.tss.tolist() == [100, 900] and df.strand.tolist() == ["+", "-"]
    assert list(df.index) == df.gene_id.tolist() and df.name.tolist() == ["AA", "BB"]
    # the gene body and type as written in the GTF (columns 4, 5; gene_type)
    assert df.start.tolist() == [100, 700] and df.end.tolist() == [500, 900]
    assert df.gene_type.tolist() == ["protein_coding", "lncRNA"]
    tx = load_genes({"gtf": str(V44_GTF), "tss_level": "transcript"})
    genes_only = load_genes({"gtf": str(V44_GTF)})
    # transcript-level TSS, but the gene's body
    both = tx.index.intersection(genes_only.index)
    assert len(both) >= 2
    assert (tx.loc[both, ["start", "end"]] == genes_only.loc[both, ["start", "end"]]).all().all()
    df = load_genes({"gtf": str(gtf), "gene_types": ["lncRNA"]})
    assert df.gene_id.tolist() == ["ENSG00000000002.1"]
    t = _table(tmp_path, "gene_id\tchrom\ttss\tstrand\nA\tchr1\t10\t+\n")
    assert load_genes({"table": str(t)}).loc["A", "tss"] == 10
