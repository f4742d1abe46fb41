"""Rule summary: headline numbers per cohort (summary.tsv, summary.md)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.summary import run_summary

run_summary(**snakemake.input, **snakemake.output, **snakemake.params, cohort=snakemake.wildcards.unit)
