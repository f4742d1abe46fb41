"""Rule head: track-combination heads of one model, fitted on the training people (hapexp.training.heads)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from threadpoolctl import threadpool_limits

from hapexp.log import setup_rule_logging
from hapexp.training.heads import run_head

setup_rule_logging(snakemake)
with threadpool_limits(limits=max(1, snakemake.threads)):
    run_head(
        list(snakemake.input.tracks),
        snakemake.input.prepared,
        snakemake.input.individuals,
        snakemake.input.genes,
        snakemake.params.spec,
        snakemake.params.head,
        dict(snakemake.output),
    )
