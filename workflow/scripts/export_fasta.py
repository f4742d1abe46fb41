"""Rule export_fasta: personal FASTA of chosen genes and samples."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.sequences.haplotypes import run_export_fasta

run_export_fasta(
    list(snakemake.input.index),
    snakemake.output.fasta,
    genes=snakemake.params.genes,
    samples=snakemake.params.samples,
    length=snakemake.params.length,
    rc_minus=snakemake.params.rc_minus,
)
