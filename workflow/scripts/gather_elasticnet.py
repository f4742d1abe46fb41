"""Rule gather_elasticnet: metrics, out-of-fold predictions, the PredictDB db and covariances."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.elasticnet import run_gather_elasticnet

run_gather_elasticnet(
    list(snakemake.input.metrics),
    list(snakemake.input.oof),
    list(snakemake.input.weights),
    list(snakemake.input.covariances),
    snakemake.input.genes,
    seed=snakemake.params.seed,
    filter_db=snakemake.params.filter_db,
    out_metrics=snakemake.output.metrics,
    out_oof=snakemake.output.oof,
    out_db=snakemake.output.db,
    out_covariances=snakemake.output.covariances,
)
