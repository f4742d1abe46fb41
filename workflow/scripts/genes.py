"""Rule genes: the cohort's gene table, exons and samples."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.genes import run_genes

run_genes(fasta=snakemake.input.fasta, **snakemake.output, **snakemake.params)
