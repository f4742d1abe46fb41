"""Rule gather_ism: a model's per-chunk ISM tables into one."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.ism import run_gather_ism

run_gather_ism(**snakemake.input, **snakemake.output)
