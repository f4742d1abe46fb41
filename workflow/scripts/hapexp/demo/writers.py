"""The demo cohort's files: reference FASTA, phased VCF, and the gene and truth tables.

Files are 1-based (VCF POS, genes.tsv tss, truth.tsv pos); the simulator's objects are
0-based (`pos0`, `tss0`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.demo.genome import Genome
from hapexp.demo.layout import Gene

TRUTH_COLUMNS = ["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "effect", "h2", "motif", "mechanism"]


def sample_sheet(samples: list[str], sex: np.ndarray) -> pd.DataFrame:
    """samples.tsv (multi-tissue demo): sample, sex (female/male; sex covariate 0/1)."""
    return pd.DataFrame({"sample": samples, "sex": np.where(np.asarray(sex) > 0, "male", "female")})


def write_fasta(path: Path, genome: Genome, width: int = 60) -> None:
    with open(path, "w") as fh:
        for c, ref in genome.ref.items():
            seq = ref.tobytes().decode()
            fh.write(f">{c}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")


def write_vcf(path_gz: Path, genome: Genome, samples: list[str], seed: int) -> None:
    """bgzipped, tabix-indexed phased VCF of `genome.variants` (GT only)."""
    import pysam

    lut = [f"{a}|{b}" for a in range(3) for b in range(3)]
    plain = path_gz.with_suffix("")
    with open(plain, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write(f"##source=hapexp.simulate (msprime haplotypes, seed {seed})\n")
        fh.write("##reference=reference.fa\n")
        for c, ref in genome.ref.items():
            fh.write(f"##contig=<ID={c},length={len(ref)}>\n")
        fh.write('##FILTER=<ID=PASS,Description="All filters passed">\n')
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">\n')
        fh.write("#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]))
        fh.write("\t" + "\t".join(samples) + "\n")
        for c, ref in genome.ref.items():
            for v in genome.variants[c]:
                ref_allele = ref[v.pos0 : v.end0].tobytes().decode()
                assert ref_allele == v.ref, (v.variant_id(), ref_allele)
                codes = v.gt[0::2].astype(int) * 3 + v.gt[1::2].astype(int)
                gts = "\t".join(lut[k] for k in codes)
                fh.write(f"{c}\t{v.pos0 + 1}\t.\t{v.ref}\t{','.join(v.alts)}\t.\tPASS\t.\tGT\t{gts}\n")
    pysam.tabix_compress(str(plain), str(path_gz), force=True)
    plain.unlink()
    pysam.tabix_index(str(path_gz), preset="vcf", force=True)


def gene_table(genes: list[Gene]) -> pd.DataFrame:
    """genes.tsv: gene_id, name, chrom, tss (1-based), strand."""
    return pd.DataFrame(
        {
            "gene_id": [g.gene_id for g in genes],
            "name": [g.name for g in genes],
            "chrom": [g.chrom for g in genes],
            "tss": [g.tss0 + 1 for g in genes],  # 1-based
            "strand": [g.strand for g in genes],
        }
    )


def truth_table(genes: list[Gene], motif_names: list[str], track: int = 0) -> pd.DataFrame:
    """truth.tsv: one row per causal variant of tissue `track` (`TRUTH_COLUMNS`; pos 1-based,
    effect = its ISM on that track, h2 = the gene's in that tissue)."""
    rows = []
    for g in genes:
        for c in g.causal:
            if c["track"] != track:
                continue
            v = c["variant"]
            rows.append(
                {
                    "gene_id": g.gene_id,
                    "variant_id": v.variant_id(1),
                    "chrom": v.chrom,
                    "pos": v.pos0 + 1,
                    "ref": v.ref,
                    "alt": v.alts[0],
                    "effect": c["effect"],
                    "h2": g.h2[track],
                    "motif": motif_names[c["motif"]],
                    "mechanism": c["mode"],
                }
            )
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)
