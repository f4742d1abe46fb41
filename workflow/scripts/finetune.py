"""Rule finetune: a model trained on the training people and genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.finetune import run_finetune

run_finetune(
    list(snakemake.input.indexes),
    snakemake.input.prepared,
    snakemake.input.individuals,
    snakemake.input.genes,
    snakemake.params.spec,
    snakemake.params.finetune,
    snakemake.params.init,
    snakemake.output.weights,
    snakemake.output.history,
    snakemake.params.checkpoint,
    threads=snakemake.threads,
)
