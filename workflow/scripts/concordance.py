"""Rule concordance: one model's per-gene concordance, its chunks gathered."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.concordance import run_concordance

run_concordance(**snakemake.input, **snakemake.output, **snakemake.params)
