"""Rule elasticnet: PredictDB's nested-CV elastic net for one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.elasticnet import run_elasticnet

run_elasticnet(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
