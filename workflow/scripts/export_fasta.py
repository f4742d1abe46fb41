"""Rule export_fasta: personal FASTA (>sample|hap|gene) for chosen genes and samples."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from hapexp.sequences.fasta import export_fasta

n = export_fasta(
    list(snakemake.input.index),
    snakemake.output.fasta,
    genes=snakemake.params.genes,
    samples=snakemake.params.samples,
    length=snakemake.params.length,
    rc_minus=snakemake.params.rc_minus,
)
log.info("wrote %d sequences to %s", n, snakemake.output.fasta)
