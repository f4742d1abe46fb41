"""Rule track_heads_gene: the per-gene head of one model for one chunk of genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.heads import run_track_heads_gene

run_track_heads_gene(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
