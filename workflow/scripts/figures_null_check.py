"""Rule figures_null_check: the QQ figure of the permuted-expression check (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.figures import run_figures_null_check

run_figures_null_check(**snakemake.input, **snakemake.output)
