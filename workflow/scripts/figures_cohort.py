"""Rule figures_cohort: the cohort's figures (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.figures import run_figures_cohort

run_figures_cohort(**snakemake.input, **snakemake.output, **snakemake.params)
