"""Rule finetune_tissues: a model trained on every tissue of a cohort (one track per tissue)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.training.finetune import run_finetune_tissues

run_finetune_tissues(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
