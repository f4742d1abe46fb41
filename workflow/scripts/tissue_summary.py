"""Rule tissue_summary: a multi-tissue cohort's verdict across tissues."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.tissues import run_tissue_summary

inputs = {k: v for k, v in snakemake.input.items() if k != "summaries"}
outputs = {k: v for k, v in snakemake.output.items() if k != "pdf"}
run_tissue_summary(**inputs, **outputs, **snakemake.params)
