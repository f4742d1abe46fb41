"""Rule simulate_demo: the demo cohort (reference, phased VCF, genes, expression, truth, oracle)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.demo.simulate import run_simulate_demo

run_simulate_demo(outputs=list(snakemake.output), **snakemake.params)
