"""Rule figures_model: one model's figures (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.figures import run_figures_model

run_figures_model(**snakemake.input, **snakemake.output, **snakemake.params, model=snakemake.wildcards.model)
