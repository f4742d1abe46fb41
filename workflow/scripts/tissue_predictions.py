"""Rule tissue_predictions: one tissue's genes × samples matrix from the cohort's predictions."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.predict import run_tissue_predictions

run_tissue_predictions(**snakemake.input, **snakemake.output, **snakemake.params)
