"""Rule split_verdict: every predictor on the held-out people, training vs held-out genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.split_verdict import run_split_verdict

run_split_verdict(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
