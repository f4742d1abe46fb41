"""Rule ism_agreement: ISM agreement between every pair of models."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.concordance import run_ism_agreement

run_ism_agreement(**snakemake.input, **snakemake.output, **snakemake.params)
