"""Rule ism: in-silico mutagenesis of one chunk's variants with one model."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.ism import run
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import torch

torch.set_num_threads(snakemake.threads)
spec = {**snakemake.params.spec, "name": snakemake.wildcards.model}
df = run(
    snakemake.input.index, spec, snakemake.params.ism, snakemake.output[0], exons_path=snakemake.input.exons
)
log.info("ISM: %d variants in %d genes", len(df), df["gene_id"].nunique())
