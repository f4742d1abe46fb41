"""Rule split_verdict: every predictor on the held-out people, training vs held-out genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.split_verdict import run_split_verdict

run_split_verdict(
    {
        **{
            k: snakemake.input[k]
            for k in ("prepared", "covariates", "individuals", "genes_split", "genes", "vcf")
        },
        "matrices": list(snakemake.input.matrices),
        "heads": dict(zip(snakemake.params.heads, snakemake.input.heads, strict=True)),
        "precision": list(snakemake.input.precision),
    },
    snakemake.params.models,
    dict(snakemake.params.verdict),
    dict(snakemake.output),
    threads=snakemake.threads,
)
