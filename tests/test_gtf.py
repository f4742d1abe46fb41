"""TSSs from GENCODE/Ensembl GTF and GFF3 fixtures (GRCh37 and GRCh38 styles)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hapexp.errors import InputError
from hapexp.inputs.gtf import TRANSCRIPT_COLUMNS, TSS_COLUMNS, match_contigs, one_tss_per_gene, read_gtf_tss

DATA = Path(__file__).parent / "data" / "formats"
V19 = DATA / "gencode_v19_like.gtf.gz"  # GRCh37, chr prefix, lincRNA, PAR gene twice under one id
V44_GTF = DATA / "gencode_v44_like.gtf"  # GRCh38, Ensembl_canonical tags, _PAR_Y ids
V44_GFF3 = DATA / "gencode_v44_like.gff3"
ENSEMBL_GFF3 = DATA / "ensembl_like.gff3"  # no chr, gene:/transcript: ids, Name=, biotype=


def _by_gene(df):
    return {r.gene_id: (r.name, r.chrom, r.tss, r.strand, r.gene_type) for r in df.itertuples()}


def test_gene_level_gencode_v19_gzipped():
    df = read_gtf_tss(V19)
    assert list(df.columns) == TSS_COLUMNS
    assert _by_gene(df) == {
        # + strand: TSS = gene start; - strand: TSS = gene end (1-based, as in the file)
        "ENSG00000000001.5": ("GENEA", "chr1", 1000, "+", "protein_coding"),
        "ENSG00000000002.3": ("GENEB", "chr1", 9000, "-", "lincRNA"),
        "ENSG00000000003.1": ("GENEC", "chr2", 400, "-", "pseudogene"),
        # The PAR gene listed on chrX and chrY under one id keeps its first (chrX) copy.
        "ENSG00000000004.7": ("PARG", "chrX", 60000, "+", "protein_coding"),
    }
    assert df["tss"].dtype == "int64"


@pytest.mark.parametrize("path", [V44_GTF, V44_GFF3, ENSEMBL_GFF3])
def test_gtf_and_gff3_agree(path):
    df = read_gtf_tss(path)
    genes = _by_gene(df)
    versioned = path != ENSEMBL_GFF3
    a = "ENSG00000000001.6" if versioned else "ENSG00000000001"
    b = "ENSG00000000002.4" if versioned else "ENSG00000000002"
    chrom = "chr1" if versioned else "1"
    assert genes[a] == ("GENEA", chrom, 11000, "+", "protein_coding")
    assert genes[b] == ("GENEB", chrom, 19000, "-", "lncRNA")


def test_par_y_ids_are_distinct_genes():
    genes = _by_gene(read_gtf_tss(V44_GTF))
    assert genes["ENSG00000000004.8"][1] == "chrX"
    assert genes["ENSG00000000004.8_PAR_Y"][1] == "chrY"


@pytest.mark.parametrize("path", [V44_GTF, V44_GFF3, ENSEMBL_GFF3])
def test_transcript_level_prefers_the_canonical_transcript(path):
    tx = read_gtf_tss(path, level="transcript")
    assert list(tx.columns) == TRANSCRIPT_COLUMNS
    # Exons, UTRs and the chromosome record are not transcripts.
    assert len(tx) == 4
    tss = dict(zip(tx["transcript_id"].str.split(".").str[0], tx["tss"], strict=True))
    assert tss == {
        "ENST00000000011": 11000,
        "ENST00000000012": 11500,
        "ENST00000000021": 18800,  # - strand: transcript end
        "ENST00000000022": 19000,
    }
    one = one_tss_per_gene(tx)
    assert len(one) == 2 and one["gene_id"].is_unique
    # GENEA's canonical transcript is not the gene's most 5' one: rank 0 follows the tag.
    kept = dict(zip(one["name"], one["transcript_id"].str.split(".").str[0], strict=True))
    assert kept == {"GENEA": "ENST00000000012", "GENEB": "ENST00000000021"}
    assert one["canonical"].all()


def test_transcript_rank_without_canonical_tags_v19():
    tx = read_gtf_tss(V19, level="transcript")
    # The chrY copy of the PAR transcript is dropped with its gene.
    assert tx["transcript_id"].is_unique and set(tx["chrom"]) == {"chr1", "chr2", "chrX"}
    assert not tx["canonical"].any()
    one = one_tss_per_gene(tx).set_index("name")
    # GENEA: only ENST…12 is tagged basic -> kept although ENST…11 starts further 5'.
    assert one.loc["GENEA", "transcript_id"] == "ENST00000000012.1"
    assert one.loc["GENEA", "tss"] == 1500
    # GENEB: both basic, same level, no TSL -> the longer transcript.
    assert one.loc["GENEB", "transcript_id"] == "ENST00000000022.2"
    assert (tx.groupby("gene_id")["rank"].min() == 0).all()


def test_gene_types_filter_and_empty_result():
    df = read_gtf_tss(V19, gene_types=["protein_coding"])
    assert set(df["gene_type"]) == {"protein_coding"} and len(df) == 2
    tx = read_gtf_tss(V44_GFF3, level="transcript", gene_types=["lncRNA"])
    assert set(tx["name"]) == {"GENEB"} and len(tx) == 2
    with pytest.raises(InputError, match="lincRNA.*lncRNA|no genes of type"):
        read_gtf_tss(V19, gene_types=["lncRNA"])


def test_bad_annotations_name_the_line(tmp_path):
    p = tmp_path / "bad.gtf"
    p.write_text('chr1\tX\tgene\t1\t10\t.\t+\t.\tgene_id "G1";\nchr1\tX\tgene\t5\n')
    with pytest.raises(InputError, match=r"line 2: 4 tab-separated fields"):
        read_gtf_tss(p)
    q = tmp_path / "strand.gtf.gz"
    with gzip.open(q, "wt") as fh:
        fh.write('chr1\tX\tgene\t1\t10\t.\t.\t.\tgene_id "G1";\n')
    with pytest.raises(InputError, match=r"line 1: strand '\.'"):
        read_gtf_tss(q)
    with pytest.raises(InputError, match="not found"):
        read_gtf_tss(tmp_path / "missing.gtf")
    with pytest.raises(InputError, match="unknown TSS level"):
        read_gtf_tss(V44_GTF, level="exon")


def test_match_contigs():
    fasta = ["1", "2", "X", "MT", "GL000191.1"]
    assert match_contigs(["chr1", "2", "chrX", "chrM", "chrY"], fasta) == {
        "chr1": "1",
        "2": "2",
        "chrX": "X",
        "chrM": "MT",
        "chrY": None,
    }
    assert match_contigs(["1", "MT"], ["chr1", "chrM"]) == {"1": "chr1", "MT": "chrM"}
