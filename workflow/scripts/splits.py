"""Rule splits: people into train/validation/test, genes into train/test."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.splits import run_splits

run_splits(
    genes=snakemake.input.genes, prepared=snakemake.input.prepared, **snakemake.output, **snakemake.params
)
