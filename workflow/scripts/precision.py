"""Rule precision: the precision budgets of a cohort's jobs in one table."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.precision import run_precision

run_precision(**snakemake.input, **snakemake.output)
