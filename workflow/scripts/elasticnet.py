"""Rule elasticnet: PredictDB's nested-CV elastic net for one chunk."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.elasticnet import run_elasticnet

run_elasticnet(
    snakemake.input.prepared,
    snakemake.input.vcf,
    snakemake.input.chunk,
    window=snakemake.params.window,
    models=snakemake.params.models,
    maf=snakemake.params.maf,
    alpha=snakemake.params.alpha,
    outer_folds=snakemake.params.outer_folds,
    inner_folds=snakemake.params.inner_folds,
    seed=snakemake.params.seed,
    thresh=snakemake.params.thresh,
    policies=snakemake.params.policies,
    predictdb_exclusions=snakemake.params.predictdb_exclusions,
    build=snakemake.params.build,
    out_metrics=snakemake.output.metrics,
    out_oof=snakemake.output.oof,
    out_weights=snakemake.output.weights,
    out_covariances=snakemake.output.covariances,
    threads=snakemake.threads,
)
