"""Rule tissue_ism: one tissue's ISM scores from the cohort's ISM table."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.ism import run_tissue_ism

run_tissue_ism(**snakemake.input, **snakemake.output, **snakemake.params)
