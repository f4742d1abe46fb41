"""Rule summary: headline numbers per cohort (summary.tsv, summary.md)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging
from hapexp.verdict.summary import run, run_context

log = setup_rule_logging(snakemake)
s = run(
    snakemake.input.performance,
    snakemake.input.cross_gene,
    dict(zip(snakemake.params.models, snakemake.input.concordance, strict=True)),
    snakemake.params.models,
    snakemake.wildcards.cohort,
    snakemake.params.fdr,
    snakemake.output.tsv,
    snakemake.output.md,
    context=run_context(
        validation_path=snakemake.input.validation,
        egenes_path=snakemake.input.egenes,
        covariates_path=snakemake.input.covariates,
        prepared_path=snakemake.input.prepared,
        params=snakemake.params.context,
    ),
    precision_path=snakemake.input.precision,
    split_paths=(snakemake.input.split_verdict, snakemake.input.individuals, snakemake.input.genes_split),
    trained=[m for m, cohort in snakemake.params.finetuned.items() if cohort == snakemake.wildcards.cohort],
    finetune_starts={
        m: snakemake.params.finetune_init.get(m)
        for m, cohort in snakemake.params.finetuned.items()
        if cohort == snakemake.wildcards.cohort
    },
)
log.info("summary:\n%s", s.to_string())
