"""Rule split_verdict_elasticnet: the elastic net on the training people for one chunk of genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.split_verdict import run_split_verdict_elasticnet

run_split_verdict_elasticnet(
    **snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads
)
