"""Rule export_fasta: personal FASTA of chosen genes and samples."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.sequences.haplotypes import run_export_fasta

run_export_fasta(**snakemake.input, **snakemake.output, **snakemake.params)
