"""Rule gather_predictions: a model's chunks into the tidy table, the matrix and the reference."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.predict import run_gather_predictions

run_gather_predictions(**snakemake.input, **snakemake.output, **snakemake.params)
