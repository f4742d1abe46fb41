"""Rule null_check_elasticnet: the elastic net refitted on each permuted expression, one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.null_check import run_null_check_elasticnet

run_null_check_elasticnet(
    **snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads
)
