"""Rule normalize_variants: restrict to gene regions and the cohort's samples, harmonize
contigs, norm -m -any -f, check REF."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from pathlib import Path

import pandas as pd

from hapexp.inputs.genes import gene_body_regions, gene_regions
from hapexp.variants.normalize import normalize

genes = pd.read_csv(snakemake.input.genes, sep="\t", dtype={"chrom": str, "gene_id": str})
half = int(snakemake.params.half_width)
regions = gene_regions(genes, half)
samples = Path(snakemake.input.samples).read_text().split()
log.info("%d genes, regions TSS ± %d bp, %d samples", len(genes), half, len(samples))
body = int(snakemake.params.gene_body_flank)
if body:  # gene-body windows (elasticnet/eqtl window: gene_body_1mb): start - flank .. end + flank
    regions = pd.concat([regions, gene_body_regions(genes, body)], ignore_index=True)
    log.info("plus gene bodies ± %d bp", body)
stats = normalize(
    list(snakemake.input.vcf),
    snakemake.input.fasta,
    snakemake.output.bcf,
    regions=regions,
    harmonize=snakemake.params.harmonize,
    threads=snakemake.threads,
    samples=samples,
)
log.info("normalized: %s", ", ".join(f"{k}={v}" for k, v in stats.items()))
