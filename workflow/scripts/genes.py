"""Rule genes: the cohort's gene table, exons and samples."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.genes import run_genes

run_genes(
    snakemake.params.genes,
    snakemake.params.cohort,
    snakemake.input.fasta,
    snakemake.params.harmonize,
    snakemake.output.genes,
    snakemake.output.exons,
    snakemake.output.samples,
)
