"""Rule splits: individuals → train/validation/test, genes → train/test (hapexp.training.splits)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging
from hapexp.training.splits import run_splits

setup_rule_logging(snakemake)
run_splits(
    snakemake.input.genes,
    snakemake.input.prepared,
    snakemake.params.splits,
    snakemake.output.individuals,
    snakemake.output.genes,
)
