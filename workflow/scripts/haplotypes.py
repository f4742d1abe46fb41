"""Rule haplotypes: the compact haplotype index of one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.sequences.haplotypes import run_haplotypes

run_haplotypes(**snakemake.input, **snakemake.output, **snakemake.params)
