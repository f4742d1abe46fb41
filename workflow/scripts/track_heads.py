"""Rule track_heads: track-combination heads of one model, fitted on the training people."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.heads import run_track_heads

run_track_heads(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
