"""Rule validate_inputs: every input check of one cohort, before any heavy job."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.validate import run_validate_inputs

run_validate_inputs(cohort=snakemake.wildcards.cohort, **snakemake.output, **snakemake.params)
