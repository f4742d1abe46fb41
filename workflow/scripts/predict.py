"""Rule predict: one chunk of genes through one model, with its precision budget."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.predict import run_predict

run_predict(
    snakemake.input.index,
    snakemake.params.spec,
    snakemake.params.audit,
    snakemake.output.table,
    snakemake.output.tracks,
    snakemake.output.precision,
    snakemake.wildcards.model,
    exons_path=snakemake.input.exons,
    exons_out=snakemake.output.exons,
    threads=snakemake.threads,
)
