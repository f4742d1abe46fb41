"""Rule eqtl: the cis-eQTL scan and permutations of one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.eqtl import run_eqtl

run_eqtl(
    snakemake.input.prepared,
    snakemake.input.covariates,
    snakemake.input.vcf,
    snakemake.input.chunk,
    window=snakemake.params.window,
    models=snakemake.params.models,
    maf=snakemake.params.maf,
    permutations=snakemake.params.permutations,
    seed=snakemake.params.seed,
    policies=snakemake.params.policies,
    out_nominal=snakemake.output.nominal,
    out_top=snakemake.output.top,
    threads=snakemake.threads,
)
