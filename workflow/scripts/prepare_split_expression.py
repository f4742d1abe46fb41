"""Rule prepare_split_expression: the expression fitted on the training people, applied to the others."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.splits import run_prepare_split_expression

run_prepare_split_expression(
    individuals=snakemake.input.individuals,
    genotype_pcs=snakemake.input.get("genotype_pcs"),
    **snakemake.output,
    **snakemake.params,
)
