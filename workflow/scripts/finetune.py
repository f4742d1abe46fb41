"""Rule finetune: a model trained on the training people and genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.finetune import run_finetune

run_finetune(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
