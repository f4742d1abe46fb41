"""Rule causal_benchmark: every model's |ISM| against fine-mapped causal variants."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.causal import run_causal_benchmark

run_causal_benchmark(**snakemake.input, **snakemake.output, **snakemake.params)
