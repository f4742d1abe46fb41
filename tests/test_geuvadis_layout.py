"""The Geuvadis preset's first rules on a Geuvadis-shaped layout (issue 12).

config/geuvadis.yaml as shipped, with `chromosomes` cut to two (and `genes.chunks` to
2 for 4 genes), run up to
`normalize_variants` on tiny synthetic files placed at the preset's own paths:
hs37d5-style contigs (`21`, `22`), one phased bgzipped VCF per chromosome named as
1000 Genomes phase 3 names them (with more people than the expression), the
Geuvadis expression layout (with one person the VCFs lack) and a GENCODE v19-style
GTF (`chr21`, `chr22`; a gene type the preset filters out). The normalized BCF must
hold exactly the cohort's people and the records of both chromosomes, as
`bcftools view -S … | bcftools norm -m -any -f …` gives them run directly.
"""

from __future__ import annotations

import gzip
import subprocess

import numpy as np
import pysam
import yaml

from tests.workflow_utils import REPO, run_snakemake

VCF_SAMPLES = [f"HG{n:05d}" for n in range(96, 108)]  # 12 people in the VCFs
EXPRESSION_SAMPLES = ["HG00101", "HG00097", "NA99999", "HG00105", "HG00096", "HG00103", "HG00107"]
LENGTH = 30_000
# (gene_id, name, gene_type, strand, start, end) per contig; 1-based, GENCODE style.
GENES = {
    "21": [
        ("ENSG00000000001.1", "GA", "protein_coding", "+", 5_001, 9_000),
        ("ENSG00000000002.1", "GB", "lincRNA", "-", 12_001, 20_000),
        ("ENSG00000000003.1", "GP", "processed_pseudogene", "+", 22_001, 23_000),
    ],
    "22": [
        ("ENSG00000000004.2", "GC", "protein_coding", "-", 3_001, 10_000),
        ("ENSG00000000005.1", "GD", "protein_coding", "+", 15_001, 25_000),
    ],
}
REPEAT_AT = 7_000  # 1-based start of "GCAAAAAAT" on each contig: a deletion to left-align


def _sequence(rng) -> str:
    seq = list(rng.choice(list("ACGT"), LENGTH))
    seq[REPEAT_AT - 1 : REPEAT_AT - 1 + 9] = "GCAAAAAAT"
    return "".join(seq)


def _records(chrom: str, seq: str, rng) -> list[str]:
    """SNVs, a multi-allelic SNV, and a 1-bp deletion written at the right end of an A run."""
    ns = len(VCF_SAMPLES)

    def gts(n_alt: int = 1):
        a = rng.integers(0, n_alt + 1, size=(ns, 2))
        return "\t".join(f"{x}|{y}" for x, y in a)

    out = []
    positions = sorted(
        set(rng.choice(np.arange(100, LENGTH - 100), size=25, replace=False)) - set(range(6990, 7020))
    )
    for pos in positions:
        ref = seq[pos - 1]
        alt = {"A": "G", "C": "T", "G": "A", "T": "C"}[ref]
        out.append((pos, f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{gts()}"))
    pos = positions[3] + 1
    ref = seq[pos - 1]
    alts = ",".join([b for b in "ACGT" if b != ref][:2])
    out.append((pos, f"{chrom}\t{pos}\t.\t{ref}\t{alts}\t.\tPASS\t.\tGT\t{gts(2)}"))
    # "AA" -> "A" at the last two A's of the run: left-aligned by bcftools norm to the "CA" anchor.
    pos = REPEAT_AT + 6
    out.append((pos, f"{chrom}\t{pos}\t.\tAA\tA\t.\tPASS\t.\tGT\t{gts()}"))
    return [line for _, line in sorted(out, key=lambda x: x[0])]


def _layout(workdir, chromosomes):
    """Write the preset's inputs at the preset's paths; return the preset config (2 chromosomes)."""
    preset = yaml.safe_load((REPO / "config/geuvadis.yaml").read_text())
    preset["cohorts"]["geuvadis"]["chromosomes"] = chromosomes
    preset["genes"]["chunks"] = 2  # 400 chunks need >= 400 genes (validate_inputs says so)
    for entry in ("vcf", "vcf_index"):
        preset["download"][entry]["chromosomes"] = chromosomes
    rng = np.random.default_rng(12)
    seqs = {c: _sequence(rng) for c in chromosomes}

    fasta = workdir / preset["reference"]["fasta"]
    fasta.parent.mkdir(parents=True)
    fasta.write_text(
        "".join(
            f">{c}\n" + "\n".join(s[i : i + 60] for i in range(0, LENGTH, 60)) + "\n" for c, s in seqs.items()
        )
    )
    pysam.faidx(str(fasta))

    vcf_pattern = preset["cohorts"]["geuvadis"]["vcf"]
    for c in chromosomes:
        header = [
            "##fileformat=VCFv4.1",
            f"##contig=<ID={c},length={LENGTH}>",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(VCF_SAMPLES),
        ]
        path = workdir / vcf_pattern.replace("{chrom}", c)
        plain = path.with_suffix("")
        plain.write_text("\n".join(header + _records(c, seqs[c], rng)) + "\n")
        pysam.tabix_compress(str(plain), str(path), force=True)
        pysam.tabix_index(str(path), preset="vcf", force=True)
        plain.unlink()

    gtf = workdir / preset["genes"]["gtf"]
    with gzip.open(gtf, "wt") as fh:
        fh.write("##description: synthetic GENCODE v19-style annotation\n")
        for c in chromosomes:
            for gid, name, gtype, strand, start, end in GENES[c]:
                attrs = (
                    f'gene_id "{gid}"; gene_type "{gtype}"; gene_status "KNOWN"; gene_name "{name}"; level 2;'
                )
                fh.write(f"chr{c}\tHAVANA\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n")

    expr = workdir / preset["cohorts"]["geuvadis"]["expression"]
    with gzip.open(expr, "wt") as fh:
        fh.write("\t".join(["TargetID", "Gene_Symbol", "Chr", "Coord", *EXPRESSION_SAMPLES]) + "\n")
        for c in chromosomes:
            for gid, _name, _t, strand, start, end in GENES[c]:
                values = rng.normal(size=len(EXPRESSION_SAMPLES))
                tss = start if strand == "+" else end
                fh.write("\t".join([gid, gid, c, str(tss), *(f"{v:.4f}" for v in values)]) + "\n")
    return preset


def _bcftools(*args, stdin=None) -> bytes:
    return subprocess.run(["bcftools", *args], input=stdin, capture_output=True, check=True).stdout


def test_preset_validates_and_normalizes_per_chromosome_vcfs(tmp_path):
    chromosomes = ["21", "22"]
    preset = _layout(tmp_path, chromosomes)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(preset, sort_keys=False))
    bcf = "results/geuvadis/variants/normalized.bcf"
    run_snakemake(tmp_path, bcf, "--configfile", "config.yaml")

    validation = tmp_path / "results/geuvadis/validation.json"
    assert validation.is_file()
    cohort = [s for s in EXPRESSION_SAMPLES if s in VCF_SAMPLES]
    assert sorted((tmp_path / "results/geuvadis/samples.txt").read_text().split()) == sorted(cohort)
    got_samples = _bcftools("query", "-l", str(tmp_path / bcf)).decode().split()
    assert sorted(got_samples) == sorted(cohort)
    assert len(got_samples) < len(VCF_SAMPLES)

    # bcftools run directly on each per-chromosome file, in the normalized BCF's sample order.
    samples_file = tmp_path / "cohort_samples.txt"
    samples_file.write_text("\n".join(got_samples) + "\n")
    fasta = str(tmp_path / preset["reference"]["fasta"])
    fmt = "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n"
    expected = b""
    for c in chromosomes:
        vcf = str(tmp_path / preset["cohorts"]["geuvadis"]["vcf"].replace("{chrom}", c))
        view = _bcftools("view", "--no-version", "-S", str(samples_file), "-Ou", vcf)
        norm = _bcftools("norm", "--no-version", "-m", "-any", "-f", fasta, "-Ou", "-", stdin=view)
        expected += _bcftools("query", "-f", fmt, "-", stdin=norm)
    got = _bcftools("query", "-f", fmt, str(tmp_path / bcf))
    assert got.decode().splitlines() == expected.decode().splitlines()
    chroms = {line.split("\t", 1)[0] for line in got.decode().splitlines()}
    assert chroms == set(chromosomes)
    # the multi-allelic records were split and the deletion left-aligned to the A run's anchor
    lines = got.decode().splitlines()
    assert sum(f"\t{REPEAT_AT + 1}\tCA\tC\t" in line for line in lines) == 2
    assert (tmp_path / (bcf + ".csi")).is_file()
