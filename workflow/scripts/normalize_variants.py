"""Rule normalize_variants: restrict to gene regions and the cohort's samples, harmonize
contigs, norm -m -any -f, check REF."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from pathlib import Path

import pandas as pd

from hapexp import vcf as V
from hapexp.genes import gene_regions

genes = pd.read_csv(snakemake.input.genes, sep="\t", dtype={"chrom": str, "gene_id": str})
half = int(snakemake.params.half_width)
regions = gene_regions(genes, half)
samples = Path(snakemake.input.samples).read_text().split()
log.info("%d genes, regions TSS ± %d bp, %d samples", len(genes), half, len(samples))
stats = V.normalize(
    list(snakemake.input.vcf),
    snakemake.input.fasta,
    snakemake.output.bcf,
    regions=regions,
    harmonize=snakemake.params.harmonize,
    threads=snakemake.threads,
    samples=samples,
)
log.info("normalized: %s", ", ".join(f"{k}={v}" for k, v in stats.items()))
