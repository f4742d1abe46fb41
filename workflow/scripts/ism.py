"""Rule ism: in-silico mutagenesis of one chunk with one model."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.ism import run_ism

run_ism(
    snakemake.input.index,
    snakemake.params.spec,
    snakemake.params.ism,
    snakemake.output.table,
    precision_out=snakemake.output.precision,
    audit_cfg=snakemake.params.audit,
    model=snakemake.wildcards.model,
    exons_path=snakemake.input.exons,
    threads=snakemake.threads,
)
