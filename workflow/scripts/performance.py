"""Rule performance: per-gene cross-individual r of every predictor; cross-gene r."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.performance import run_performance

run_performance(**snakemake.input, **snakemake.output, **snakemake.params)
