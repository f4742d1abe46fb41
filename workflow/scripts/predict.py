"""Rule predict: one chunk of genes through one model (unique haplotypes only), with the
precision budget of reduced-precision runs (hapexp.engine.precision) and the exon counts of
an exon read-out."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import torch

from hapexp.engine.predict import run_predict

torch.set_num_threads(snakemake.threads)
spec = {**snakemake.params.spec, "name": snakemake.wildcards.model}
run_predict(
    snakemake.input.index,
    spec,
    snakemake.params.audit,
    snakemake.output.table,
    snakemake.output.tracks,
    snakemake.output.precision,
    snakemake.wildcards.model,
    exons_path=snakemake.input.exons,
    exons_out=snakemake.output.exons,
)
