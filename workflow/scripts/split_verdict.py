"""Rule split_verdict: every predictor on the held-out people, training vs held-out genes."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from threadpoolctl import threadpool_limits

from hapexp.log import setup_rule_logging
from hapexp.verdict.split_verdict import run

setup_rule_logging(snakemake)
inputs = {
    k: snakemake.input[k] for k in ("prepared", "covariates", "individuals", "genes_split", "genes", "vcf")
}
inputs["matrices"] = list(snakemake.input.matrices)
inputs["heads"] = dict(zip(snakemake.params.heads, snakemake.input.heads, strict=True))
inputs["precision"] = list(snakemake.input.precision)
with threadpool_limits(limits=max(1, snakemake.threads)):
    run(inputs, snakemake.params.models, dict(snakemake.params.verdict), dict(snakemake.output))
