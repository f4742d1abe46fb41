"""Rule split_verdict: the chunks of the elastic net gathered, every predictor on the test people."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.split_verdict import run_split_verdict

run_split_verdict(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
