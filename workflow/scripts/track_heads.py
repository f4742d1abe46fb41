"""Rule track_heads: track-combination heads of one model, fitted on the training people."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.heads import run_track_heads

run_track_heads(
    list(snakemake.input.tracks),
    snakemake.input.prepared,
    snakemake.input.individuals,
    snakemake.input.genes,
    snakemake.params.spec,
    snakemake.params.head,
    dict(snakemake.output),
    threads=snakemake.threads,
)
