"""Rule haplotypes: the compact haplotype index of one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.sequences.haplotypes import run_haplotypes

run_haplotypes(
    snakemake.input.chunk,
    snakemake.input.samples,
    snakemake.input.bcf,
    snakemake.input.fasta,
    window=snakemake.params.window,
    policies=snakemake.params.policies,
    out_index=snakemake.output.index,
    out_stats=snakemake.output.stats,
)
