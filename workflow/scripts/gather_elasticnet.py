"""Rule gather_elasticnet: metrics, out-of-fold predictions, the PredictDB db and covariances."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.elasticnet import run_gather_elasticnet

run_gather_elasticnet(**snakemake.input, **snakemake.output, **snakemake.params)
