"""Rule concordance_chunk: one model's ISM against the eQTL scan, per gene of one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.concordance import run_concordance_chunk

run_concordance_chunk(**snakemake.input, **snakemake.output, **snakemake.params)
