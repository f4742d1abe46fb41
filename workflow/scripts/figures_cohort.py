"""Rule figures_cohort: the cohort's figures (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.figures import run_figures_cohort

run_figures_cohort(
    snakemake.input.performance,
    snakemake.input.raw,
    snakemake.params.raw_format,
    dict(zip(snakemake.params.models, snakemake.input.references, strict=True)),
    dict(zip(snakemake.params.models, snakemake.input.ism, strict=True)),
    snakemake.params.cfg,
    # PDFs are written beside each PNG by the same call; only the PNG paths are passed.
    {k: v for k, v in snakemake.output.items() if not k.endswith("_pdf")},
    prepared_path=snakemake.input.prepared,
    is_level=snakemake.params.is_level,
)
