"""Rule null_check: every predictor not trained on the cohort against each permuted expression."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.null_check import run_null_check

run_null_check(**snakemake.input, **snakemake.output, **snakemake.params)
