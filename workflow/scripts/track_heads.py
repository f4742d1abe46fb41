"""Rule track_heads: the per-gene head's chunks gathered, and the cross-gene head of one model."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.heads import run_track_heads

run_track_heads(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
