"""Rule chunk_genes: the genes in genes.chunks chunks."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.genes import run_chunk_genes

run_chunk_genes(**snakemake.input, chunks=list(snakemake.output))
