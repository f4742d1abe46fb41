"""Rule summary: headline numbers per cohort (summary.tsv, summary.md)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.summary import run_summary

run_summary(
    snakemake.input.performance,
    snakemake.input.cross_gene,
    dict(zip(snakemake.params.models, snakemake.input.concordance, strict=True)),
    snakemake.params.models,
    snakemake.wildcards.cohort,
    snakemake.params.fdr,
    snakemake.output.tsv,
    snakemake.output.md,
    context_params=snakemake.params.context,
    context_paths={
        "validation_path": snakemake.input.validation,
        "egenes_path": snakemake.input.egenes,
        "covariates_path": snakemake.input.covariates,
        "prepared_path": snakemake.input.prepared,
    },
    precision_path=snakemake.input.precision,
    split_paths=(snakemake.input.split_verdict, snakemake.input.individuals, snakemake.input.genes_split),
    finetuned=snakemake.params.finetuned,
    finetune_init=snakemake.params.finetune_init,
)
