"""Rule gather_eqtl: the chunks' pairs in one file; eGenes and nominal thresholds."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.eqtl import run_gather_eqtl

run_gather_eqtl(**snakemake.input, **snakemake.output, **snakemake.params)
