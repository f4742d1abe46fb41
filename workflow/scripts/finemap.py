"""Rule finemap: SuSiE fine-mapping of one chunk of genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.finemap import run_finemap

run_finemap(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
