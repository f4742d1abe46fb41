"""Rule predict: one chunk of genes through one model, with its precision budget."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.predict import run_predict

run_predict(
    **snakemake.input,
    **snakemake.output,
    **snakemake.params,
    model=snakemake.wildcards.model,
    threads=snakemake.threads,
)
