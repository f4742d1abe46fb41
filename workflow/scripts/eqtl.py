"""Rule eqtl: the cis-eQTL scan and permutations of one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.eqtl import run_eqtl

run_eqtl(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
