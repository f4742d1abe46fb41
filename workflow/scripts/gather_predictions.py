"""Rule gather_predictions: all chunks of a cohort × model → tidy table, matrix, reference."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from hapexp.engine.predict import gather_predictions

gather_predictions(
    list(snakemake.input),
    snakemake.params.spec["haplotype_aggregation"],
    snakemake.output.table,
    snakemake.output.matrix,
    snakemake.output.reference,
)
