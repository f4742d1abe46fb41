"""Rule finetune: train a registry model on the training people and genes (hapexp.training.finetune)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import torch

from hapexp.log import setup_rule_logging
from hapexp.training.finetune import run_finetune

setup_rule_logging(snakemake)
torch.set_num_threads(max(1, snakemake.threads))
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
)
