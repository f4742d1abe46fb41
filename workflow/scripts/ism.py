"""Rule ism: in-silico mutagenesis of one chunk's variants with one model, with the
precision budget of reduced-precision runs (hapexp.engine.precision)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.engine.ism import run
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import torch

torch.set_num_threads(snakemake.threads)
spec = {**snakemake.params.spec, "name": snakemake.wildcards.model}
df = run(
    snakemake.input.index,
    spec,
    snakemake.params.ism,
    snakemake.output.table,
    precision_out=snakemake.output.precision,
    audit_cfg=snakemake.params.audit,
    model=snakemake.wildcards.model,
    exons_path=snakemake.input.exons,
)
log.info(
    "ISM: %d variants in %d genes, %d unresolved (NaN)",
    len(df),
    df["gene_id"].nunique(),
    int(df["score"].isna().sum()),
)
