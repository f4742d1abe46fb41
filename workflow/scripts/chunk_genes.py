"""Rule chunk_genes: split genes.tsv into genes.chunks chunks (sorted by chrom, tss)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import pandas as pd

from hapexp.inputs.genes import write_chunks
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

genes = pd.read_csv(snakemake.input.genes, sep="\t", dtype={"chrom": str, "gene_id": str})
write_chunks(genes, list(snakemake.output))
log.info("%d genes in %d chunks", len(genes), len(snakemake.output))
