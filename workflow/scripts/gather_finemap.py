"""Rule gather_finemap: the chunks' PIPs in one file, their credible sets in one table."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.finemap import run_gather_finemap

run_gather_finemap(**snakemake.input, **snakemake.output)
